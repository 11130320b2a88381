import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { MetricEvent } from '../schemas/metric-event.js'
import type { ReportEvent } from '../schemas/report-event.js'
import { caseKey } from '../schemas/report-event.js'
import { EVENT_KINDS } from '../schemas/log-entry.js'
import type { FoldSettings } from '../domain/fold.js'
import { deriveCase, sortCaseEvents, type CaseEventRecord } from '../domain/case-state.js'
import { MetricReplay, type DerivedBucket } from './audit/metric-replay.js'
import { parseEntry } from './audit/parse-entry.js'

const PAGE = 500
/** Event ids listed per mismatch: enough to start an investigation, bounded for huge buckets. */
const MAX_IDS = 100
/** Archived entries folded between two turns of the event loop. */
const YIELD_EVERY = 25
/** Progress is reported after about this many replayed events. */
const PROGRESS_EVERY = 20_000

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
 * work side by side, and the event loop gets a turn every few entries, so the next page is read
 * off the socket meanwhile (and the process stays responsive). `onLastPage` runs once the last
 * page has arrived, which may be while the page before it is still being handed out.
 */
async function* archived(db: Db, kind: string, onLastPage?: () => void): AsyncGenerator<{ partition: number; text: string; imported: boolean }> {
  const page = (after: { partition: number; firstSeq: number }) => {
    const read = sql<{ partition: number; first_seq: number; events: string; imported: boolean }>`
      SELECT partition, first_seq, events, import_id IS NOT NULL AS imported FROM log_archive WHERE kind = ${kind} AND (partition, first_seq) > (${after.partition}, ${after.firstSeq})
      ORDER BY partition, first_seq LIMIT ${PAGE}`.execute(db)
    // As soon as it arrives, not when its turn to be folded comes; a failure is thrown below.
    read.then(({ rows }) => rows.length < PAGE && onLastPage?.(), () => undefined)
    return read
  }
  let pending = page({ partition: -1, firstSeq: -1 })
  for (;;) {
    const { rows } = await pending
    const last = rows[rows.length - 1]
    const more = last !== undefined && rows.length === PAGE
    if (more) pending = page({ partition: last.partition, firstSeq: last.first_seq })
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i] as (typeof rows)[number]
      if (r.events !== '') yield { partition: r.partition, text: r.events, imported: r.imported }
      if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise(setImmediate)
    }
    if (!more) return
  }
}

type StoredBucket = { key: string; width_s: number; start: Date } & Record<(typeof BUCKET_FIELDS)[number], number | null>

/**
 * Re-derives, from the raw log archive alone, every aggregate bucket starting in [from, to) and
 * every case with an event in that range, and compares them with what is stored: every exact
 * figure of a bucket (count, sum, min, max, mean, m2, last), not its quantile sketch. The replay runs
 * each partition from its start with the same pure fold the drain uses (the watermark, and so
 * lateness, depends on everything before; entries of the import lane are folded as the drain
 * folded them, never late and without moving the watermark), so untouched data gives no
 * difference at all.
 */
export async function auditRange(db: Db, fromMs: number, toMs: number, settings: FoldSettings, onProgress?: (events: number) => void): Promise<AuditReport> {
  const replay = new MetricReplay(fromMs, toMs, settings)
  // The stored buckets are read once the archive has been read (as ever), while its last page is
  // still being folded.
  let storedRead: Promise<{ rows: StoredBucket[] }> | undefined
  const readStored = (): Promise<{ rows: StoredBucket[] }> => sql<StoredBucket>`
    SELECT s.key, b.width_s, b.start, b.count, b.sum, b.min, b.max, b.mean, b.m2, b.last FROM aggregate_buckets b JOIN series s ON s.id = b.series_id
    WHERE b.start >= ${new Date(fromMs).toISOString()}::timestamptz AND b.start < ${new Date(toMs).toISOString()}::timestamptz`.execute(db)
  const startStoredRead = (): void => {
    storedRead = readStored()
    // Awaited below; until then a failure must not count as unhandled.
    storedRead.catch(() => undefined)
  }
  let reported = 0
  for await (const entry of archived(db, EVENT_KINDS.metric, startStoredRead)) {
    replay.addEntry(entry.partition, entry.text, entry.imported)
    if (replay.events - reported >= PROGRESS_EVERY) onProgress?.((reported = replay.events))
  }
  if (replay.events !== reported) onProgress?.(replay.events)
  let replayed = replay.events

  const mismatches: AuditMismatch[] = []
  const { rows: stored } = await (storedRead ?? readStored())
  // Stored buckets found among the derived ones, and the keys of those that were not.
  const matched = new Set<DerivedBucket>()
  const unmatched = new Set<string>()
  for (const row of stored) {
    const startMs = row.start.getTime()
    const d = replay.find(row.key, row.width_s, startMs)
    if (d) {
      matched.add(d)
      const last = Number.isFinite(d.lastTs) ? d.last : null
      if (
        sameNumber(row.count, d.count) &&
        sameNumber(row.sum, d.sum) &&
        sameNumber(row.min, d.min) &&
        sameNumber(row.max, d.max) &&
        sameNumber(row.mean, d.mean) &&
        sameNumber(row.m2, d.m2) &&
        sameNumber(row.last, last)
      ) {
        continue
      }
    }
    const k = `${row.key}|${row.width_s}|${startMs}`
    if (!d) unmatched.add(k)
    const values: Record<string, number | null> = d
      ? { count: d.count, sum: d.sum, min: d.min, max: d.max, mean: d.mean, m2: d.m2, last: Number.isFinite(d.lastTs) ? d.last : null }
      : { count: 0 }
    for (const f of d ? BUCKET_FIELDS : (['count'] as const)) {
      if (!sameNumber(row[f], values[f] ?? null)) {
        mismatches.push({ what: 'bucket', key: k, field: f, stored: row[f], derived: values[f], eventIds: [] })
      }
    }
  }
  const derived = replay.buckets()
  for (const d of derived) {
    if (matched.has(d)) continue
    mismatches.push({ what: 'bucket', key: d.key, field: 'count', stored: null, derived: d.count, eventIds: [] })
  }
  if (mismatches.length > 0) await attachBucketEvents(db, mismatches)

  const cases = await auditCases(db, fromMs, toMs, (n) => onProgress?.(replayed + n))
  replayed += cases.replayed
  mismatches.push(...cases.mismatches)
  return {
    from: new Date(fromMs).toISOString(),
    to: new Date(toMs).toISOString(),
    eventsReplayed: replayed,
    bucketsCompared: Math.max(matched.size + unmatched.size, derived.length),
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
