import { createHash } from 'node:crypto'
import { DIM_KEY_PATTERN, METRIC_PATTERN, SOURCE_PATTERN } from '../../schemas/metric-event.js'

/**
 * FIWARE NGSI notifications to metric events. Orion (NGSI-v2) and Orion-LD / other NGSI-LD brokers
 * POST a notification with the entities that changed; every numeric attribute of every entity
 * becomes one metric sample:
 *
 * - metric `<metric_prefix>.<attribute>` (or the name given by `metric.<attribute>=...`),
 * - dims `entity_id`, `entity_type`, plus constant `dims.<name>=...` and the text attributes named
 *   in `dim_attrs`,
 * - time: the attribute's own observation time (NGSI-LD `observedAt`; NGSI-v2 metadata
 *   `TimeInstant`, `timestamp` or `observedAt`), else the entity's `TimeInstant`, `dateObserved` or
 *   `observedAt` attribute (v2), else the notification's `notifiedAt` (LD), else arrival,
 * - id: a hash of entity id, attribute, dataset id and time, so a notification sent twice is
 *   counted once.
 *
 * Attribute shapes read: v2 normalized (`{"type":"Number","value":41.2,"metadata":{...}}`) and
 * keyValues (`41.2`); LD normalized (`{"type":"Property","value":41.2,"observedAt":...}`), concise
 * (`{"value":41.2,...}` or `41.2`), keyValues/simplified (`41.2`) and multi-attributes (an array of
 * instances with `datasetId`, which becomes the `dataset_id` dim). Anything that is not a number
 * (text, booleans, structured values, relationships, geo-properties) is skipped and reported.
 */

export type NgsiFlavour = 'v2' | 'ld'

export interface NgsiOptions {
  source: string
  metricPrefix: string
  /** attribute -> metric name */
  metricFor: Record<string, string>
  /** Only these attributes become metrics (null: every numeric one). */
  attrs: Set<string> | null
  /** Text attributes whose values become dims of the entity's other events. */
  dimAttrs: string[]
  dims: Record<string, string>
}

export interface NgsiEvent {
  id: string
  source: string
  metric: string
  ts: string | number
  value: number
  dims: Record<string, string>
}

export interface Skipped {
  entity: string
  attribute: string
  reason: string
}

export interface BodyProblem {
  path: string
  reason: string
}

export type NgsiResult =
  | {
      ok: true
      events: NgsiEvent[]
      /** Per event: the JSON pointer of its attribute and of the field its time came from ('' for arrival). */
      origins: { attr: string; ts: string }[]
      skipped: Skipped[]
    }
  | { ok: false; problems: BodyProblem[] }

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const ptr = (...parts: (string | number)[]): string => parts.map((p) => `/${String(p).replace(/~/g, '~0').replace(/\//g, '~1')}`).join('')

const LD_RESERVED = new Set(['@context', 'id', 'type', 'scope', 'location', 'observationSpace', 'operationSpace', 'createdAt', 'modifiedAt', 'deletedAt', 'observedAt'])
const V2_RESERVED = new Set(['id', 'type', 'TimeInstant', 'dateObserved', 'observedAt', 'dateCreated', 'dateModified'])
const V2_TIME_METADATA = ['TimeInstant', 'timestamp', 'observedAt']
const V2_ENTITY_TIME = ['TimeInstant', 'dateObserved', 'observedAt']
const NUMERIC_V2_TYPES = new Set(['Number', 'Integer', 'Float', 'Double', 'Decimal'])

// ---------------------------------------------------------------------------------------------------------------------
// Query parameters

export class QueryProblem extends Error {}

/**
 * `metric_prefix`, `source`, `attrs` (comma list), `dim_attrs` (comma list), `dims.<name>=<value>`,
 * `metric.<attribute>=<metric>`. Anything else is refused, so a misspelt parameter is not ignored.
 */
export function parseNgsiQuery(q: Record<string, unknown>, limits: { maxDims: number; maxDimValueLength: number }): NgsiOptions {
  const opts: NgsiOptions = { source: 'ngsi', metricPrefix: 'ngsi', metricFor: {}, attrs: null, dimAttrs: [], dims: {} }
  const text = (k: string, v: unknown): string => {
    if (typeof v !== 'string' || v === '') throw new QueryProblem(`${k} must be given once, with a value`)
    return v
  }
  const list = (k: string, v: unknown): string[] =>
    text(k, v)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
  for (const [k, raw] of Object.entries(q)) {
    if (k === 'source') {
      opts.source = text(k, raw)
      if (!new RegExp(SOURCE_PATTERN).test(opts.source)) throw new QueryProblem(`source "${opts.source}" does not match ${SOURCE_PATTERN}`)
    } else if (k === 'metric_prefix') {
      opts.metricPrefix = text(k, raw)
      if (!new RegExp(METRIC_PATTERN).test(`${opts.metricPrefix}.x`)) throw new QueryProblem(`metric_prefix "${opts.metricPrefix}" does not make metric names that match ${METRIC_PATTERN}`)
    } else if (k === 'attrs') {
      opts.attrs = new Set(list(k, raw))
    } else if (k === 'dim_attrs') {
      opts.dimAttrs = list(k, raw)
      for (const a of opts.dimAttrs) if (!new RegExp(DIM_KEY_PATTERN).test(a)) throw new QueryProblem(`dim_attrs: "${a}" cannot be a dimension name (${DIM_KEY_PATTERN})`)
    } else if (k.startsWith('dims.')) {
      const name = k.slice(5)
      const v = text(k, raw)
      if (!new RegExp(DIM_KEY_PATTERN).test(name) || name === 'entity_id' || name === 'entity_type') throw new QueryProblem(`${k}: "${name}" cannot be a dimension name here`)
      if (v.length > limits.maxDimValueLength) throw new QueryProblem(`${k} is longer than ${limits.maxDimValueLength} characters`)
      opts.dims[name] = v
    } else if (k.startsWith('metric.')) {
      const v = text(k, raw)
      if (!new RegExp(METRIC_PATTERN).test(v)) throw new QueryProblem(`${k}: "${v}" is not a metric name (${METRIC_PATTERN})`)
      opts.metricFor[k.slice(7)] = v
    } else {
      throw new QueryProblem(`unknown query parameter "${k}" (known: source, metric_prefix, attrs, dim_attrs, dims.<name>, metric.<attribute>)`)
    }
  }
  if (2 + Object.keys(opts.dims).length + opts.dimAttrs.length > limits.maxDims) {
    throw new QueryProblem(`entity_id, entity_type, dims.* and dim_attrs make more than ${limits.maxDims} dimensions`)
  }
  return opts
}

// ---------------------------------------------------------------------------------------------------------------------
// Notifications

interface Reading {
  attr: string
  value: unknown
  /** The attribute's own time (string as sent) and where it was found. */
  time: { value: unknown; path: string } | null
  datasetId: string | null
  path: string
  /** Why it is not a number, when it is known from its shape alone. */
  notNumeric?: string
  /** Declared numeric (v2 type Number...), so numeric text counts as a number. */
  numericText?: boolean
}

/** An NGSI-v2 notification: `{"subscriptionId", "data": [entity, ...]}`, normalized or keyValues. */
export function fromV2Notification(body: unknown, opts: NgsiOptions, arrivedAt: number): NgsiResult {
  return convert(body, opts, arrivedAt, 'v2')
}

/** An NGSI-LD notification: `{"id", "type": "Notification", "subscriptionId", "notifiedAt", "data": [entity, ...]}`. */
export function fromLdNotification(body: unknown, opts: NgsiOptions, arrivedAt: number): NgsiResult {
  return convert(body, opts, arrivedAt, 'ld')
}

function convert(body: unknown, opts: NgsiOptions, arrivedAt: number, flavour: NgsiFlavour): NgsiResult {
  const problems: BodyProblem[] = []
  if (!isObject(body)) return { ok: false, problems: [{ path: '', reason: 'the notification must be a JSON object with a "data" array of entities' }] }
  if (!Array.isArray(body.data)) problems.push({ path: '/data', reason: 'must be an array of entities' })
  else if (body.data.length === 0) problems.push({ path: '/data', reason: 'holds no entities' })
  if (body.subscriptionId !== undefined && typeof body.subscriptionId !== 'string') problems.push({ path: '/subscriptionId', reason: 'must be a string' })
  let notifiedAt: { value: string; path: string } | null = null
  if (flavour === 'ld') {
    if (body.type !== undefined && body.type !== 'Notification') problems.push({ path: '/type', reason: `must be "Notification", got ${JSON.stringify(body.type)?.slice(0, 60)}` })
    if (body.notifiedAt !== undefined) {
      if (typeof body.notifiedAt !== 'string') problems.push({ path: '/notifiedAt', reason: 'must be an ISO-8601 text' })
      else notifiedAt = { value: body.notifiedAt, path: '/notifiedAt' }
    }
  }
  const entities = Array.isArray(body.data) ? body.data : []
  entities.forEach((e, i) => {
    if (!isObject(e)) return void problems.push({ path: ptr('data', i), reason: 'must be an entity object with "id" and "type"' })
    if (typeof e.id !== 'string' || e.id === '') problems.push({ path: ptr('data', i, 'id'), reason: 'must be a non-empty string' })
    const typeOk = typeof e.type === 'string' ? e.type !== '' : Array.isArray(e.type) && e.type.length > 0 && e.type.every((t) => typeof t === 'string' && t !== '')
    if (!typeOk) problems.push({ path: ptr('data', i, 'type'), reason: flavour === 'ld' ? 'must be a type name or a list of them' : 'must be a non-empty string' })
  })
  if (problems.length > 0) return { ok: false, problems }

  const events: NgsiEvent[] = []
  const origins: { attr: string; ts: string }[] = []
  const skipped: Skipped[] = []
  ;(entities as Record<string, unknown>[]).forEach((entity, i) => {
    const entityId = entity.id as string
    const entityType = Array.isArray(entity.type) ? (entity.type as string[]).join(',') : (entity.type as string)
    const base = ptr('data', i)
    const readings = flavour === 'v2' ? v2Readings(entity, base) : ldReadings(entity, base)
    const entityTime = flavour === 'v2' ? v2EntityTime(entity, base) : null
    const dims: Record<string, string> = { ...opts.dims, entity_id: entityId, entity_type: entityType }
    const dimAttrs = new Set(opts.dimAttrs)
    for (const name of opts.dimAttrs) {
      const r = readings.find((x) => x.attr === name && x.datasetId === null)
      if (r && (typeof r.value === 'string' || typeof r.value === 'number')) dims[name] = String(r.value)
    }
    for (const r of readings) {
      if (dimAttrs.has(r.attr)) continue
      if (opts.attrs && !opts.attrs.has(r.attr)) continue
      const skip = (reason: string): void => void skipped.push({ entity: entityId, attribute: r.datasetId ? `${r.attr}#${r.datasetId}` : r.attr, reason })
      const value = r.notNumeric ? null : numeric(r.value, r.numericText === true)
      if (value === null) {
        skip(r.notNumeric ?? `not a number (${describe(r.value)})`)
        continue
      }
      const metric = opts.metricFor[r.attr] ?? `${opts.metricPrefix}.${r.attr}`
      if (!new RegExp(METRIC_PATTERN).test(metric)) {
        skip(`"${metric}" is not a metric name (${METRIC_PATTERN}); name it with metric.${r.attr}=...`)
        continue
      }
      const time = r.time ?? entityTime ?? notifiedAt
      if (time !== null && typeof time.value !== 'string') {
        return void problems.push({ path: time.path, reason: 'must be an ISO-8601 text' })
      }
      const ts: string | number = time ? (time.value as string) : arrivedAt
      const eventDims = r.datasetId ? { ...dims, dataset_id: r.datasetId } : { ...dims }
      const id = `ngsi:${createHash('sha256').update(`${entityId}\u0000${r.attr}\u0000${r.datasetId ?? ''}\u0000${String(ts)}`).digest('base64url')}`
      events.push({ id, source: opts.source, metric, ts, value, dims: eventDims })
      origins.push({ attr: r.path, ts: time?.path ?? '' })
    }
  })
  if (problems.length > 0) return { ok: false, problems }
  return { ok: true, events, origins, skipped }
}

function v2Readings(entity: Record<string, unknown>, base: string): Reading[] {
  const out: Reading[] = []
  for (const [attr, raw] of Object.entries(entity)) {
    if (V2_RESERVED.has(attr)) continue
    const path = `${base}${ptr(attr)}`
    if (isObject(raw) && 'value' in raw) {
      const metadata = isObject(raw.metadata) ? raw.metadata : {}
      let time: Reading['time'] = null
      for (const m of V2_TIME_METADATA) {
        const md = metadata[m]
        if (md === undefined) continue
        time = { value: isObject(md) ? md.value : md, path: `${path}/metadata${ptr(m)}${isObject(md) ? '/value' : ''}` }
        break
      }
      const type = typeof raw.type === 'string' ? raw.type : null
      // Orion keeps what the IoT agent sent: a Number attribute may hold its value as text.
      out.push({ attr, value: raw.value, time, datasetId: null, path, numericText: type !== null && NUMERIC_V2_TYPES.has(type) })
    } else {
      out.push({ attr, value: raw, time: null, datasetId: null, path })
    }
  }
  return out
}

function v2EntityTime(entity: Record<string, unknown>, base: string): Reading['time'] {
  for (const name of V2_ENTITY_TIME) {
    const a = entity[name]
    if (a === undefined) continue
    if (isObject(a)) return { value: a.value, path: `${base}${ptr(name, 'value')}` }
    return { value: a, path: `${base}${ptr(name)}` }
  }
  return null
}

function ldReadings(entity: Record<string, unknown>, base: string): Reading[] {
  const out: Reading[] = []
  const one = (attr: string, raw: unknown, path: string): void => {
    if (isObject(raw)) {
      const type = typeof raw.type === 'string' ? raw.type : null
      if (type === 'Relationship' || 'object' in raw) return void out.push({ attr, value: raw.object, time: null, datasetId: null, path, notNumeric: 'a relationship' })
      if (type === 'GeoProperty' || (type !== null && type !== 'Property' && !('value' in raw))) return void out.push({ attr, value: raw, time: null, datasetId: null, path, notNumeric: 'a geo-property' })
      if (type === 'LanguageProperty' || 'languageMap' in raw) return void out.push({ attr, value: raw, time: null, datasetId: null, path, notNumeric: 'a language property' })
      const datasetId = typeof raw.datasetId === 'string' ? raw.datasetId : null
      const time = raw.observedAt !== undefined ? { value: raw.observedAt, path: `${path}/observedAt` } : null
      if (!('value' in raw)) return void out.push({ attr, value: raw, time, datasetId, path, notNumeric: 'a property without a value' })
      const v = isObject(raw.value) && '@value' in raw.value ? raw.value['@value'] : raw.value
      return void out.push({ attr, value: v, time, datasetId, path })
    }
    out.push({ attr, value: raw, time: null, datasetId: null, path })
  }
  for (const [attr, raw] of Object.entries(entity)) {
    if (LD_RESERVED.has(attr)) continue
    const path = `${base}${ptr(attr)}`
    // A multi-attribute: one instance per datasetId (an array of plain values is a keyValues list, not numeric).
    if (Array.isArray(raw) && raw.length > 0 && raw.every(isObject)) raw.forEach((inst, k) => one(attr, inst, `${path}/${k}`))
    else one(attr, raw, path)
  }
  return out
}

function numeric(v: unknown, numericText: boolean): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null
  if (numericText && typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v)
  return null
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'a list'
  if (typeof v === 'object') return 'a structured value'
  if (typeof v === 'string') return `text ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`
  return `${typeof v} ${String(v)}`
}
