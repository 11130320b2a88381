import { createHash } from 'node:crypto'
import { DIM_KEY_PATTERN, METRIC_PATTERN } from '../../schemas/metric-event.js'
import { topicFilterLevels } from './topic.js'

/**
 * The declarative mapping from an MQTT message (topic and JSON payload) to metric events.
 *
 *   {"metric": "air.{topic[3]}", "value": "$.reading.value", "ts": "$.time", "tsFormat": "iso",
 *    "dims": {"province": "topic[1]", "station": "topic[2]", "kind": "$.type"}}
 *
 * A field is a *reference*, a *template* or a constant:
 * - `$` is the whole payload (a bare number such as `21.5` is JSON too), `$.a.b`, `$.list[0].x` and
 *   `$["pm2.5"]` go into it;
 * - `topic[n]` is level n of the message's topic (0-based; `topic[-1]` is the last level), which is
 *   how the levels a `+` or `#` matched are captured;
 * - any other string is a template: literal text with `{ref}` placeholders (`{{` and `}}` stand for
 *   braces), so `"air.pm25"` is a constant and `"env.{topic[2]}.{$.kind}"` builds a name;
 * - `value` may also be a number (e.g. 1 to count messages).
 *
 * `ts` is optional (absent: the time the message arrived) and read as `tsFormat`: `auto` (default:
 * ISO-8601 text, or epoch milliseconds as a number or digit string), `iso`, `epoch_ms`, `epoch_s`.
 * `id` is optional: a template whose value is the event's idempotency key; without it the id is
 * derived from the message (see eventIdFor). A subscription may give a list of mappings, one event
 * each per message (e.g. pm25 and pm10 from one payload); `optional: true` skips that event when its
 * value is absent or null instead of refusing the message.
 */
export const TS_FORMATS = ['auto', 'iso', 'epoch_ms', 'epoch_s'] as const
export type TsFormat = (typeof TS_FORMATS)[number]

export interface MappingSpec {
  metric: string
  value: string | number
  ts?: string
  tsFormat?: TsFormat
  dims?: Record<string, string>
  id?: string
  optional?: boolean
}

export const MAX_MAPPINGS = 32
const MAX_TEMPLATE_LENGTH = 512

type Step = { key: string } | { index: number }
type Ref = { kind: 'payload'; steps: Step[]; text: string } | { kind: 'topic'; level: number; text: string }
type Part = string | Ref
interface Template {
  parts: Part[]
  /** The only part, when the template is one reference: its value keeps its JSON type. */
  single: Ref | null
}

interface CompiledMapping {
  metric: Template
  value: Template | number
  ts: Ref | null
  tsFormat: TsFormat
  dims: [string, Template][]
  id: Template | null
  optional: boolean
}

export interface CompiledMappings {
  mappings: CompiledMapping[]
  /** Whether any mapping reads the payload (a non-JSON payload is then refused). */
  readsPayload: boolean
  /** Whether every mapping takes its time from the message (so a redelivered message maps to the same id). */
  timeFromMessage: boolean
}

export interface MappingProblem {
  path: string
  reason: string
}

export class MappingError extends Error {
  override name = 'MappingError'
  constructor(readonly problems: MappingProblem[]) {
    super(problems.map((p) => `${p.path}: ${p.reason}`).join('; '))
  }
}

class ParseError extends Error {}

// ---------------------------------------------------------------------------------------------------------------------
// Parsing

function parseRef(text: string): Ref {
  const t = text.trim()
  const topic = /^topic\[(-?\d{1,3})\]$/.exec(t)
  if (topic) return { kind: 'topic', level: Number(topic[1]), text: t }
  if (!t.startsWith('$')) throw new ParseError(`"${t}" is not a reference: use $, $.path.to.field or topic[n]`)
  const steps: Step[] = []
  let i = 1
  while (i < t.length) {
    const c = t[i]
    if (c === '.') {
      const m = /^[^.[\]]+/.exec(t.slice(i + 1))
      if (!m) throw new ParseError(`"${t}": a name must follow "." at position ${i}`)
      steps.push({ key: m[0] })
      i += 1 + m[0].length
    } else if (c === '[') {
      const num = /^\[(\d{1,6})\]/.exec(t.slice(i))
      const quoted = /^\[(?:"([^"]*)"|'([^']*)')\]/.exec(t.slice(i))
      if (num) {
        steps.push({ index: Number(num[1]) })
        i += num[0].length
      } else if (quoted) {
        steps.push({ key: quoted[1] ?? quoted[2] ?? '' })
        i += quoted[0].length
      } else {
        throw new ParseError(`"${t}": "[" at position ${i} must hold an index ([0]) or a quoted name (["pm2.5"])`)
      }
    } else {
      throw new ParseError(`"${t}": unexpected "${c}" at position ${i} (use .name, [n] or ["name"])`)
    }
  }
  return { kind: 'payload', steps, text: t }
}

const looksLikeRef = (s: string): boolean => s.startsWith('$') || /^topic\[/.test(s)

function parseTemplate(raw: string): Template {
  if (raw.length === 0) throw new ParseError('must not be empty')
  if (raw.length > MAX_TEMPLATE_LENGTH) throw new ParseError(`is longer than ${MAX_TEMPLATE_LENGTH} characters`)
  if (looksLikeRef(raw)) {
    const ref = parseRef(raw)
    return { parts: [ref], single: ref }
  }
  const parts: Part[] = []
  let literal = ''
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as string
    if (c === '{' && raw[i + 1] === '{') {
      literal += '{'
      i++
    } else if (c === '}' && raw[i + 1] === '}') {
      literal += '}'
      i++
    } else if (c === '{') {
      const end = raw.indexOf('}', i)
      if (end < 0) throw new ParseError(`"{" at position ${i} is not closed (write {{ for a literal brace)`)
      if (literal) parts.push(literal)
      literal = ''
      parts.push(parseRef(raw.slice(i + 1, end)))
      i = end
    } else if (c === '}') {
      throw new ParseError(`"}" at position ${i} has no "{" (write }} for a literal brace)`)
    } else {
      literal += c
    }
  }
  if (literal) parts.push(literal)
  const only = parts.length === 1 ? parts[0] : undefined
  return { parts, single: only !== undefined && typeof only !== 'string' ? only : null }
}

const refsOf = (t: Template): Ref[] => t.parts.filter((p): p is Ref => typeof p !== 'string')

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

const MAPPING_FIELDS = new Set(['metric', 'value', 'ts', 'tsFormat', 'dims', 'id', 'optional'])

/**
 * Checks a mapping (one object or a list) against the subscription's topic filters and compiles
 * it; every problem is listed with its path, e.g. `mapping[1].dims.station`.
 */
export function compileMapping(raw: unknown, topicFilters: readonly string[], limits: { maxDims: number }): CompiledMappings {
  const problems: MappingProblem[] = []
  const list = Array.isArray(raw) ? raw : [raw]
  if (Array.isArray(raw) && (raw.length === 0 || raw.length > MAX_MAPPINGS)) {
    throw new MappingError([{ path: 'mapping', reason: `must hold 1 to ${MAX_MAPPINGS} mappings, got ${raw.length}` }])
  }
  // The deepest level every filter guarantees: a topic[n] beyond it may be missing from some messages.
  const levels = topicFilters.map(topicFilterLevels)
  const guaranteed = Math.min(...levels.map((l) => l.fixed))
  const unbounded = levels.some((l) => l.multi)
  const mappings: CompiledMapping[] = []
  list.forEach((m, i) => {
    const at = Array.isArray(raw) ? `mapping[${i}]` : 'mapping'
    const problem = (path: string, reason: string): void => void problems.push({ path: `${at}${path}`, reason })
    if (!isObject(m)) return problem('', 'must be an object with at least "metric" and "value"')
    for (const k of Object.keys(m)) if (!MAPPING_FIELDS.has(k)) problem('', `unknown field "${k}" (allowed: ${[...MAPPING_FIELDS].join(', ')})`)
    const template = (path: string, v: unknown, required: boolean): Template | null => {
      if (v === undefined) {
        if (required) problem(path, 'is required')
        return null
      }
      if (typeof v !== 'string') {
        problem(path, 'must be a string: a reference ($.path, topic[n]) or a template ("air.{topic[2]}")')
        return null
      }
      try {
        const t = parseTemplate(v)
        for (const r of refsOf(t)) {
          if (r.kind === 'topic' && r.level >= 0 && r.level >= guaranteed && !unbounded) {
            problem(path, `${r.text} is past the last level of topic filter(s) ${topicFilters.filter((_, k) => (levels[k]?.fixed ?? 0) <= r.level).map((f) => `"${f}"`).join(', ')} (levels count from 0)`)
          }
        }
        return t
      } catch (err) {
        if (!(err instanceof ParseError)) throw err
        problem(path, err.message)
        return null
      }
    }
    const metric = template('.metric', m.metric, true)
    if (metric && metric.parts.every((p) => typeof p === 'string') && !new RegExp(METRIC_PATTERN).test(metric.parts.join(''))) {
      problem('.metric', `"${metric.parts.join('')}" is not a metric name (${METRIC_PATTERN})`)
    }
    let value: Template | number | null = null
    if (typeof m.value === 'number') {
      if (Number.isFinite(m.value)) value = m.value
      else problem('.value', 'must be a finite number')
    } else {
      value = template('.value', m.value, true)
      if (value && !value.single) problem('.value', 'must be one reference ($.path or topic[n]) or a number, not a template')
    }
    let ts: Ref | null = null
    if (m.ts !== undefined) {
      const t = template('.ts', m.ts, false)
      if (t && !t.single) problem('.ts', 'must be one reference ($.path or topic[n]), not a template')
      ts = t?.single ?? null
    }
    let tsFormat: TsFormat = 'auto'
    if (m.tsFormat !== undefined) {
      if (typeof m.tsFormat === 'string' && (TS_FORMATS as readonly string[]).includes(m.tsFormat)) tsFormat = m.tsFormat as TsFormat
      else problem('.tsFormat', `must be one of ${TS_FORMATS.join(', ')}`)
      if (m.ts === undefined) problem('.tsFormat', 'is given without "ts"')
    }
    const dims: [string, Template][] = []
    if (m.dims !== undefined) {
      if (!isObject(m.dims)) problem('.dims', 'must be an object of dimension name to reference or template')
      else {
        const entries = Object.entries(m.dims)
        if (entries.length > limits.maxDims) problem('.dims', `has ${entries.length} dimensions; at most ${limits.maxDims} are allowed`)
        for (const [k, v] of entries) {
          if (!new RegExp(DIM_KEY_PATTERN).test(k) || k === '__proto__' || k === 'constructor' || k === 'prototype') {
            problem(`.dims`, `"${k}" is not a dimension name (${DIM_KEY_PATTERN})`)
            continue
          }
          const t = template(`.dims.${k}`, v, true)
          if (t) dims.push([k, t])
        }
      }
    }
    const id = template('.id', m.id, false)
    if (m.optional !== undefined && typeof m.optional !== 'boolean') problem('.optional', 'must be true or false')
    if (metric && value !== null) mappings.push({ metric, value, ts, tsFormat, dims, id, optional: m.optional === true })
  })
  if (problems.length > 0) throw new MappingError(problems)
  const allRefs = mappings.flatMap((m) => [
    ...refsOf(m.metric),
    ...(typeof m.value === 'number' ? [] : refsOf(m.value)),
    ...(m.ts ? [m.ts] : []),
    ...m.dims.flatMap(([, t]) => refsOf(t)),
    ...(m.id ? refsOf(m.id) : []),
  ])
  return {
    mappings,
    readsPayload: allRefs.some((r) => r.kind === 'payload'),
    timeFromMessage: mappings.every((m) => m.ts !== null || m.id !== null),
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Applying

export interface MqttMessage {
  topic: string
  payload: Buffer
  /** When Lantern received it (epoch ms): the event time when the mapping names no `ts`. */
  receivedAt: number
}

/** An event as the mapping built it, before the ingest validator checks it. */
export interface MappedEvent {
  id: string
  metric: string
  value: number
  ts: string | number
  dims: Record<string, string>
}

export type MapResult = { ok: true; events: MappedEvent[] } | { ok: false; reason: string }

class Refusal extends Error {}

const MISSING = Symbol('missing')

function resolve(ref: Ref, levels: string[], payload: () => unknown, what: string): unknown {
  if (ref.kind === 'topic') {
    const i = ref.level < 0 ? levels.length + ref.level : ref.level
    const v = levels[i]
    if (v === undefined) throw new Refusal(`${what}: ${ref.text}: the topic has ${levels.length} levels`)
    if (v === '') throw new Refusal(`${what}: ${ref.text}: that topic level is empty`)
    return v
  }
  let cur: unknown = payload()
  for (const s of ref.steps) {
    if ('index' in s) cur = Array.isArray(cur) ? cur[s.index] : undefined
    else cur = isObject(cur) && Object.hasOwn(cur, s.key) ? cur[s.key] : undefined
    if (cur === undefined) return MISSING
  }
  return cur
}

function renderTemplate(t: Template, what: string, levels: string[], payload: () => unknown): string {
  let out = ''
  for (const p of t.parts) {
    if (typeof p === 'string') {
      out += p
      continue
    }
    const v = resolve(p, levels, payload, what)
    if (v === MISSING || v === null) throw new Refusal(`${what}: ${p.text} is missing from the payload`)
    if (typeof v === 'string') out += v
    else if (typeof v === 'number' || typeof v === 'boolean') out += String(v)
    else throw new Refusal(`${what}: ${p.text} is ${Array.isArray(v) ? 'an array' : 'an object'}, not text or a number`)
  }
  return out
}

function toNumber(v: unknown, what: string, text: string): number {
  if (typeof v === 'number') return v
  if (typeof v === 'boolean') return v ? 1 : 0
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v)
  throw new Refusal(`${what}: ${text} is ${JSON.stringify(v)?.slice(0, 60)}, not a number`)
}

function toTime(v: unknown, format: TsFormat, text: string): string | number {
  const digits = typeof v === 'string' && /^\d+(\.\d+)?$/.test(v.trim())
  switch (format) {
    case 'iso':
      if (typeof v !== 'string') throw new Refusal(`ts: ${text} is ${JSON.stringify(v)?.slice(0, 60)}, not ISO-8601 text`)
      return v
    case 'epoch_ms':
    case 'epoch_s': {
      if (typeof v !== 'number' && !digits) throw new Refusal(`ts: ${text} is ${JSON.stringify(v)?.slice(0, 60)}, not ${format === 'epoch_s' ? 'epoch seconds' : 'epoch milliseconds'}`)
      const n = Number(v)
      return Math.round(format === 'epoch_s' ? n * 1000 : n)
    }
    default:
      if (typeof v === 'number') return Math.round(v)
      if (typeof v === 'string') return digits ? Math.round(Number(v)) : v
      throw new Refusal(`ts: ${text} is ${JSON.stringify(v)?.slice(0, 60)}, not a time`)
  }
}

/** sha256 of topic and payload, as the stable part of an id derived from the message. */
export function messageDigest(topic: string, payload: Buffer): string {
  return createHash('sha256').update(topic).update('\u0000').update(payload).digest('base64url')
}

/**
 * Maps one message to its events, or says why it cannot be mapped. Ids: the mapping's `id` when
 * given; otherwise `mqtt:<subscription>:<sha256 of topic and payload>` (plus `:<arrival ms>` when
 * the event time is the arrival time, so that two identical readings sent at different times stay
 * two events), plus `:<n>` for the n-th mapping of a list.
 */
export function mapMessage(compiled: CompiledMappings, subscriptionId: string, msg: MqttMessage): MapResult {
  const levels = msg.topic.split('/')
  let parsed: unknown = MISSING
  const payload = (): unknown => {
    if (parsed === MISSING) {
      try {
        parsed = JSON.parse(msg.payload.toString('utf8'))
      } catch (err) {
        throw new Refusal(`payload is not JSON (${(err as Error).message}): ${JSON.stringify(msg.payload.toString('utf8').slice(0, 60))}`)
      }
    }
    return parsed
  }
  let digest: string | undefined
  const events: MappedEvent[] = []
  const many = compiled.mappings.length > 1
  try {
    compiled.mappings.forEach((m, i) => {
      const at = many ? `mapping[${i}].` : ''
      let value: number
      if (typeof m.value === 'number') value = m.value
      else {
        const ref = m.value.single as Ref
        const raw = resolve(ref, levels, payload, `${at}value`)
        if (raw === MISSING || raw === null) {
          if (m.optional) return
          throw new Refusal(`${at}value: ${ref.text} is missing from the payload`)
        }
        value = toNumber(raw, `${at}value`, ref.text)
      }
      let ts: string | number = msg.receivedAt
      if (m.ts) {
        const raw = resolve(m.ts, levels, payload, `${at}ts`)
        if (raw === MISSING || raw === null) throw new Refusal(`${at}ts: ${m.ts.text} is missing from the payload`)
        ts = toTime(raw, m.tsFormat, m.ts.text)
      }
      const dims: Record<string, string> = {}
      for (const [k, t] of m.dims) dims[k] = renderTemplate(t, `${at}dims.${k}`, levels, payload)
      let id: string
      if (m.id) id = renderTemplate(m.id, `${at}id`, levels, payload)
      else {
        digest ??= messageDigest(msg.topic, msg.payload)
        id = `mqtt:${subscriptionId}:${digest}${m.ts ? '' : `:${msg.receivedAt}`}`
      }
      if (many) id += `:${i}`
      events.push({ id, metric: renderTemplate(m.metric, `${at}metric`, levels, payload), value, ts, dims })
    })
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, reason: err.message }
    throw err
  }
  return { ok: true, events }
}
