import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { MetricEvent } from '../schemas/metric-event.js'
import type { ReportEvent } from '../schemas/report-event.js'
import { caseKey } from '../schemas/report-event.js'
import { EVENT_KINDS } from '../schemas/log-entry.js'
import { judgeLateness, type FoldSettings } from '../domain/fold.js'
import { WINDOWS, WINDOW_MS, bucketStart } from '../domain/windows.js'
import { seriesKey } from '../domain/series-key.js'
import { addMoment, emptyMoments, observeLast, type Moments } from '../domain/bucket.js'
import { deriveCase, sortCaseEvents, type CaseEventRecord } from '../domain/case-state.js'

const PAGE = 500
/** Event ids listed per mismatch: enough to start an investigation, bounded for huge buckets. */
const MAX_IDS = 100
/** Events folded at once in a replay. */
const FOLD_BATCH = 20_000

export interface AuditMismatch {
  what: 'bucket' | 'case'
  /** Series key and window/start for buckets; service and case for cases. */
  key: string
  field: string
  stored: unknown
  derived: unknown
  eventIds: string[]
}

export interface AuditReport {
  from: string
  to: string
  eventsReplayed: number
  bucketsCompared: number
  casesCompared: number
  mismatches: AuditMismatch[]
}

const BUCKET_FIELDS = ['count', 'sum', 'min', 'max', 'mean', 'm2', 'last'] as const

/**
 * Reads every archived entry of one kind in (partition, sequence) order: the order the drain
 * folded them. The next page is fetched while the caller folds this one, so Postgres and the fold
 * work side by side.
 */
async function* archived(db: Db, kind: string): AsyncGenerator<{ partition: number; text: string }> {
  const page = (after: { partition: number; firstSeq: number }) =>
    sql<{ partition: number; first_seq: number; events: string }>`
      SELECT partition, first_seq, events FROM log_archive WHERE kind = ${kind} AND (partition, first_seq) > (${after.partition}, ${after.firstSeq})
      ORDER BY partition, first_seq LIMIT ${PAGE}`.execute(db)
  let pending = page({ partition: -1, firstSeq: -1 })
  for (;;) {
    const { rows } = await pending
    const last = rows[rows.length - 1]
    if (last && rows.length === PAGE) pending = page({ partition: last.partition, firstSeq: last.first_seq })
    for (const r of rows) if (r.events !== '') yield { partition: r.partition, text: r.events }
    if (!last || rows.length < PAGE) return
  }
}

/** An entry's NDJSON as events: one parse of the whole entry is cheaper than one per line. */
const parseEntry = <T>(text: string): T[] => JSON.parse(`[${text.replaceAll('\n', ',')}]`) as T[]

/**
 * Re-derives, from the raw log archive alone, every aggregate bucket starting in [from, to) and
 * every case with an event in that range, and compares them with what is stored: every exact
 * figure of a bucket (count, sum, min, max, mean, m2, last), not its quantile sketch. The replay runs
 * each partition from its start with the same pure fold the drain uses (the watermark, and so
 * lateness, depends on everything before), so untouched data gives no difference at all.
 */
export async function auditRange(db: Db, fromMs: number, toMs: number, settings: FoldSettings, onProgress?: (events: number) => void): Promise<AuditReport> {
  let replayed = 0
  const derived = new Map<string, Moments>()
  const watermark = new Map<number, number>()
  // Consecutive entries of one partition are judged as one run: the lateness rule carries the
  // watermark from event to event, so grouping changes nothing but the overhead.
  let pending: MetricEvent[] = []
  let pendingPartition = -1
  const flush = (): void => {
    if (pending.length === 0) return
    const next = judgeLateness(pending, watermark.get(pendingPartition) ?? 0, settings.latenessMs, (e, late) => {
      if (late) return
      let key: string | null = null
      for (const w of WINDOWS) {
        const startMs = bucketStart(e.ts, w, settings.dayOffsetMs)
        if (startMs < fromMs || startMs >= toMs) continue
        key ??= seriesKey(e.metric, e.dims)
        const k = `${key}|${WINDOW_MS[w] / 1000}|${startMs}`
        let st = derived.get(k)
        if (!st) derived.set(k, (st = emptyMoments()))
        addMoment(st, e.value)
        observeLast(st, e.ts, e.value)
      }
    })
    watermark.set(pendingPartition, next)
    replayed += pending.length
    onProgress?.(replayed)
    pending = []
  }
  for await (const entry of archived(db, EVENT_KINDS.metric)) {
    if (entry.partition !== pendingPartition || pending.length >= FOLD_BATCH) {
      flush()
      pendingPartition = entry.partition
    }
    for (const e of parseEntry<MetricEvent>(entry.text)) pending.push(e)
  }
  flush()

  const mismatches: AuditMismatch[] = []
  const { rows: stored } = await sql<{ key: string; width_s: number; start: Date } & Record<(typeof BUCKET_FIELDS)[number], number | null>>`
    SELECT s.key, b.width_s, b.start, b.count, b.sum, b.min, b.max, b.mean, b.m2, b.last FROM aggregate_buckets b JOIN series s ON s.id = b.series_id
    WHERE b.start >= ${new Date(fromMs).toISOString()}::timestamptz AND b.start < ${new Date(toMs).toISOString()}::timestamptz`.execute(db)
  const seen = new Set<string>()
  for (const row of stored) {
    const startMs = row.start.getTime()
    const k = `${row.key}|${row.width_s}|${startMs}`
    seen.add(k)
    const d = derived.get(k)
    const values: Record<string, number | null> = d
      ? { count: d.count, sum: d.sum, min: d.min, max: d.max, mean: d.mean, m2: d.m2, last: Number.isFinite(d.lastTs) ? d.last : null }
      : { count: 0 }
    for (const f of d ? BUCKET_FIELDS : (['count'] as const)) {
      if (!sameNumber(row[f], values[f] ?? null)) {
        mismatches.push({ what: 'bucket', key: k, field: f, stored: row[f], derived: values[f], eventIds: [] })
      }
    }
  }
  for (const [k, d] of derived) {
    if (seen.has(k)) continue
    mismatches.push({ what: 'bucket', key: k, field: 'count', stored: null, derived: d.count, eventIds: [] })
  }
  if (mismatches.length > 0) await attachBucketEvents(db, mismatches)

  const cases = await auditCases(db, fromMs, toMs, (n) => onProgress?.(replayed + n))
  replayed += cases.replayed
  mismatches.push(...cases.mismatches)
  return {
    from: new Date(fromMs).toISOString(),
    to: new Date(toMs).toISOString(),
    eventsReplayed: replayed,
    bucketsCompared: Math.max(seen.size, derived.size),
    casesCompared: cases.compared,
    mismatches,
  }
}

/**
 * Names the events behind each mismatched bucket: a second pass over the archive, paid only
 * when something differs, so a clean audit costs one replay.
 */
async function attachBucketEvents(db: Db, mismatches: AuditMismatch[]): Promise<void> {
  const wanted = new Map<string, { startMs: number; endMs: number; ids: string[] }[]>()
  for (const m of mismatches) {
    const [seriesKey, widthS, start] = m.key.split('|') as [string, string, string]
    const list = wanted.get(seriesKey) ?? []
    list.push({ startMs: Number(start), endMs: Number(start) + Number(widthS) * 1000, ids: m.eventIds })
    wanted.set(seriesKey, list)
  }
  for await (const entry of archived(db, EVENT_KINDS.metric)) {
    for (const e of parseEntry<MetricEvent>(entry.text)) {
      for (const w of wanted.get(`${e.metric}${JSON.stringify(e.dims)}`) ?? []) {
        if (e.ts >= w.startMs && e.ts < w.endMs && w.ids.length < MAX_IDS) w.ids.push(e.id)
      }
    }
  }
}

/** Floats are compared to the last bit: the replay adds the same values in the same order. */
const sameNumber = (a: number | null, b: number | null): boolean => (a === null || b === null ? a === b : Object.is(a, b) || a === b)

const CASE_FIELDS = ['state', 'received_ts', 'started_ts', 'resolved_ts', 'rejected_ts', 'due_ts', 'rating', 'rated_ts'] as const

async function auditCases(db: Db, fromMs: number, toMs: number, onProgress: (events: number) => void): Promise<{ replayed: number; compared: number; mismatches: AuditMismatch[] }> {
  const byCase = new Map<string, { service: string; caseId: string; events: CaseEventRecord[]; touched: boolean }>()
  let replayed = 0
  for await (const entry of archived(db, EVENT_KINDS.report)) {
    for (const e of parseEntry<ReportEvent>(entry.text)) {
      const k = caseKey(e.service, e.case)
      let c = byCase.get(k)
      if (!c) byCase.set(k, (c = { service: e.service, caseId: e.case, events: [], touched: false }))
      if (c.events.some((x) => x.id === e.id)) continue
      const rec: CaseEventRecord = { id: e.id, status: e.status, ts: e.ts, dims: e.dims }
      if (e.due !== undefined) rec.due = e.due
      if (e.rating !== undefined) rec.rating = e.rating
      c.events.push(rec)
      if (e.ts >= fromMs && e.ts < toMs) c.touched = true
      replayed++
    }
    onProgress(replayed)
  }
  const touched = [...byCase.values()].filter((c) => c.touched)
  if (touched.length === 0) return { replayed, compared: 0, mismatches: [] }
  const { rows } = await sql<Record<string, unknown> & { service: string; case_id: string }>`
    SELECT c.service, c.case_id, c.state, c.received_ts, c.started_ts, c.resolved_ts, c.rejected_ts, c.due_ts, c.rating, c.rated_ts FROM cases c
    JOIN unnest(${touched.map((c) => c.service)}::text[], ${touched.map((c) => c.caseId)}::text[]) AS k(service, case_id)
      ON c.service = k.service AND c.case_id = k.case_id`.execute(db)
  const stored = new Map(rows.map((r) => [caseKey(r.service, r.case_id), r]))
  const mismatches: AuditMismatch[] = []
  for (const c of touched) {
    const s = deriveCase(sortCaseEvents(c.events))
    const derived: Record<(typeof CASE_FIELDS)[number], unknown> = {
      state: s.state,
      received_ts: s.receivedTs,
      started_ts: s.startedTs,
      resolved_ts: s.resolvedTs,
      rejected_ts: s.rejectedTs,
      due_ts: s.dueTs,
      rating: s.rating,
      rated_ts: s.ratedTs,
    }
    const row = stored.get(caseKey(c.service, c.caseId))
    const eventIds = c.events.map((e) => e.id).slice(0, MAX_IDS)
    const key = `${c.service}/${c.caseId}`
    if (!row) {
      mismatches.push({ what: 'case', key, field: 'state', stored: null, derived: s.state, eventIds })
      continue
    }
    for (const f of CASE_FIELDS) {
      const sv = row[f] instanceof Date ? (row[f] as Date).getTime() : (row[f] ?? null)
      if (sv !== derived[f]) mismatches.push({ what: 'case', key, field: f, stored: sv, derived: derived[f], eventIds })
    }
  }
  return { replayed, compared: touched.length, mismatches }
}
