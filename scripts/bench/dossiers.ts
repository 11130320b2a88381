/**
 * What the reports scenario posts: the dossiers of a province one-stop system (service dvc,
 * province 48) over the past year, each received with a due time 5 working days later and then
 * resolved, a fixed 1% of them after their due. Generated from a seed, so the KPIs they must give
 * are known exactly. Bodies are serialized before timing; the events are shuffled across all of
 * them, so a case's resolved often reaches the log before its received.
 */
import { SOURCE } from './workload.js'

export const SERVICE = 'dvc'
export const PROVINCE = '48'
export const EVENTS_PER_CASE = 2
export const AGENCIES = 20
const CATEGORIES = ['land', 'business', 'construction', 'civil-status'] as const
const LATE_SHARE = 0.01
const SEED = 48_393_000

const MINUTE_MS = 60_000
const HOUR_MS = 60 * MINUTE_MS
const DAY_MS = 24 * HOUR_MS
const SPAN_MS = 365 * DAY_MS
/** Working days and the 17:00 due hour are Vietnam's (UTC+7, no daylight saving). */
const LOCAL_OFFSET_MS = 7 * HOUR_MS
const DUE_HOUR_LOCAL = 17
const WORKING_DAYS_TO_DUE = 5
/** Late dossiers are received early enough that due + the longest delay is still in the past. */
const LATE_RECEIVED_BEFORE_MS = 30 * DAY_MS
const MAX_LATE_DELAY_MS = 10 * DAY_MS

export interface Dossiers {
  count: number
  late: number
  receivedTs: Float64Array
  dueTs: Float64Array
  resolvedTs: Float64Array
  agency: Uint8Array
  category: Uint8Array
}

/** What GET /v1/kpis?service=dvc&province=48 must answer once every event is committed. */
export interface ExpectedKpis {
  received: number
  resolved: number
  rejected: number
  processed: number
  pending: number
  inProgress: number
  backlog: number
  overdue: number
  resolvedOnTime: number
  onTimeRate: number
  timeToResolveP50Sec: number
  timeToResolveP90Sec: number
  rated: number
}

export interface Bodies {
  bodies: Buffer[]
  /** Events in each body. */
  events: number[]
  bytes: number
}

/** mulberry32: small, fast and seedable, so every run posts the same data. */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function shuffle(a: Uint32Array, rnd: () => number, first = a.length): void {
  for (let i = 0; i < Math.min(first, a.length - 1); i++) {
    const j = i + Math.floor(rnd() * (a.length - i))
    const x = a[i] as number
    a[i] = a[j] as number
    a[j] = x
  }
}

const identity = (n: number): Uint32Array => Uint32Array.from({ length: n }, (_, i) => i)

/** 17:00 local on the 5th working day (Monday to Friday) after the day of `receivedMs`. */
export function dueAfter(receivedMs: number): number {
  let day = Math.floor((receivedMs + LOCAL_OFFSET_MS) / DAY_MS)
  for (let counted = 0; counted < WORKING_DAYS_TO_DUE; ) {
    day++
    // Day 0 (1970-01-01) was a Thursday; 0 is Sunday, 6 Saturday.
    const weekday = (day + 4) % 7
    if (weekday !== 0 && weekday !== 6) counted++
  }
  return day * DAY_MS + DUE_HOUR_LOCAL * HOUR_MS - LOCAL_OFFSET_MS
}

/** `count` dossiers, all received and resolved before `nowMs`; exactly round(1%) of them resolved after due. */
export function generateDossiers(count: number, nowMs: number): Dossiers {
  const rnd = random(SEED)
  const late = Math.round(count * LATE_SHARE)
  const lateSet = new Uint8Array(count)
  const order = identity(count)
  shuffle(order, rnd, late)
  for (let i = 0; i < late; i++) lateSet[order[i] as number] = 1
  const d: Dossiers = {
    count,
    late,
    receivedTs: new Float64Array(count),
    dueTs: new Float64Array(count),
    resolvedTs: new Float64Array(count),
    agency: new Uint8Array(count),
    category: new Uint8Array(count),
  }
  for (let i = 0; i < count; i++) {
    const isLate = lateSet[i] === 1
    const latestReceived = nowMs - (isLate ? LATE_RECEIVED_BEFORE_MS : HOUR_MS)
    const received = Math.floor(nowMs - SPAN_MS + rnd() * (latestReceived - (nowMs - SPAN_MS)))
    const due = dueAfter(received)
    d.receivedTs[i] = received
    d.dueTs[i] = due
    d.resolvedTs[i] = isLate ? due + HOUR_MS + Math.floor(rnd() * MAX_LATE_DELAY_MS) : resolvedOnTime(received, due, nowMs, rnd())
    d.agency[i] = Math.floor(rnd() * AGENCIES)
    d.category[i] = Math.floor(rnd() * CATEGORIES.length)
  }
  return d
}

/** Strictly after received and before both due and now, at least a minute from each. */
function resolvedOnTime(received: number, due: number, nowMs: number, u: number): number {
  const span = Math.min(due, nowMs) - received
  return received + MINUTE_MS + Math.floor(u * (span - 2 * MINUTE_MS))
}

/** percentile_cont as PostgreSQL computes it: linear between the two nearest ranks. */
function percentileCont(sorted: Float64Array, p: number): number {
  const pos = p * (sorted.length - 1)
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  const a = sorted[lo] as number
  return a + ((sorted[hi] as number) - a) * (pos - lo)
}

export function expectedKpis(d: Dossiers): ExpectedKpis {
  const ttr = new Float64Array(d.count)
  let onTime = 0
  for (let i = 0; i < d.count; i++) {
    ttr[i] = ((d.resolvedTs[i] as number) - (d.receivedTs[i] as number)) / 1000
    if ((d.resolvedTs[i] as number) <= (d.dueTs[i] as number)) onTime++
  }
  ttr.sort()
  return {
    received: d.count,
    resolved: d.count,
    rejected: 0,
    processed: d.count,
    pending: 0,
    inProgress: 0,
    backlog: 0,
    overdue: 0,
    resolvedOnTime: onTime,
    onTimeRate: onTime / d.count,
    timeToResolveP50Sec: percentileCont(ttr, 0.5),
    timeToResolveP90Sec: percentileCont(ttr, 0.9),
    rated: 0,
  }
}

const caseId = (i: number): string => `${SERVICE.toUpperCase()}-${PROVINCE}-${String(i + 1).padStart(7, '0')}`
const agencyName = (a: number): string => `agency-${String(a + 1).padStart(2, '0')}`

/** Event k of the data set: case k >> 1, received when k is even, resolved when odd. */
function eventJson(d: Dossiers, k: number): string {
  const i = k >> 1
  const id = caseId(i)
  const dims = `{"province":"${PROVINCE}","agency":"${agencyName(d.agency[i] as number)}","category":"${CATEGORIES[d.category[i] as number] as string}"}`
  const head = `{"source":"${SOURCE}","service":"${SERVICE}","case":"${id}"`
  if ((k & 1) === 0) return `${head},"id":"${id}-received","status":"received","ts":${d.receivedTs[i]},"due":${d.dueTs[i]},"dims":${dims}}`
  return `${head},"id":"${id}-resolved","status":"resolved","ts":${d.resolvedTs[i]},"dims":${dims}}`
}

/** Every event of every dossier, shuffled, as JSON array bodies of `batch` events. */
export function serializeBodies(d: Dossiers, batch: number): Bodies {
  const order = identity(d.count * EVENTS_PER_CASE)
  shuffle(order, random(SEED + 1))
  const out: Bodies = { bodies: [], events: [], bytes: 0 }
  for (let from = 0; from < order.length; from += batch) {
    const slice = order.subarray(from, from + batch)
    const body = Buffer.from(`[${Array.from(slice, (k) => eventJson(d, k)).join(',')}]`, 'latin1')
    out.bodies.push(body)
    out.events.push(slice.length)
    out.bytes += body.length
  }
  return out
}
