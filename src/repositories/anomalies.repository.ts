import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { Dims } from '../domain/series-key.js'

export interface AnomalyFlag {
  seriesId: number
  metric: string
  ts: number
  eventId: string
  value: number
  score: number
  detectors: string[]
  expected: number
  low: number
  high: number
}

export interface AnomalyView {
  id: string
  metric: string
  dims: Record<string, string>
  seriesId: string
  ts: string
  eventId: string
  value: number
  score: number
  detectors: string[]
  expected: number
  expectedRange: [number, number]
}

/** Returns the ids given to the flags, in order (null where the flag was already stored). */
export async function insertAnomalies(trx: Db, flags: readonly AnomalyFlag[]): Promise<Map<string, number>> {
  if (flags.length === 0) return new Map()
  const { rows } = await sql<{ id: number; series_id: number; ts: Date }>`
    INSERT INTO anomalies (series_id, metric, ts, event_id, value, score, detectors, expected, low, high)
    SELECT s, m, t, e, v, sc, string_to_array(d, ','), ex, lo, hi
    FROM unnest(${flags.map((f) => f.seriesId)}::bigint[], ${flags.map((f) => f.metric)}::text[], ${flags.map((f) => new Date(f.ts).toISOString())}::timestamptz[],
      ${flags.map((f) => f.eventId)}::text[], ${flags.map((f) => f.value)}::float8[], ${flags.map((f) => f.score)}::float8[], ${flags.map((f) => f.detectors.join(','))}::text[],
      ${flags.map((f) => f.expected)}::float8[], ${flags.map((f) => f.low)}::float8[], ${flags.map((f) => f.high)}::float8[]) AS x(s, m, t, e, v, sc, d, ex, lo, hi)
    ON CONFLICT (series_id, ts) DO NOTHING
    RETURNING id, series_id, ts`.execute(trx)
  return new Map(rows.map((r) => [`${r.series_id}|${r.ts.getTime()}`, r.id]))
}

export interface AnomalyQuery {
  metric?: string
  dims: Dims
  fromMs: number | null
  toMs: number | null
  /** Keyset cursor: rows strictly older than (ts, id). */
  before: { ts: number; id: number } | null
  minScore: number
  limit: number
}

interface Raw {
  id: number
  metric: string
  dims: Record<string, string>
  series_id: number
  ts: Date
  event_id: string
  value: number
  score: number
  detectors: string[]
  expected: number
  low: number
  high: number
}

export const presentAnomaly = (r: Raw): AnomalyView => ({
  id: String(r.id),
  metric: r.metric,
  dims: r.dims,
  seriesId: String(r.series_id),
  ts: r.ts.toISOString(),
  eventId: r.event_id,
  value: r.value,
  score: r.score,
  detectors: r.detectors,
  expected: r.expected,
  expectedRange: [r.low, r.high],
})

/** Flagged samples, newest first (ties by id), one page. */
export async function listAnomalies(db: Db, q: AnomalyQuery): Promise<AnomalyView[]> {
  const dims = Object.keys(q.dims).length > 0 ? sql`AND s.dims @> ${JSON.stringify(q.dims)}::jsonb` : sql``
  const metric = q.metric !== undefined ? sql`AND a.metric = ${q.metric}` : sql``
  const from = q.fromMs !== null ? sql`AND a.ts >= ${new Date(q.fromMs).toISOString()}::timestamptz` : sql``
  const to = q.toMs !== null ? sql`AND a.ts < ${new Date(q.toMs).toISOString()}::timestamptz` : sql``
  const before = q.before ? sql`AND (a.ts, a.id) < (${new Date(q.before.ts).toISOString()}::timestamptz, ${q.before.id})` : sql``
  const { rows } = await sql<Raw>`
    SELECT a.id, a.metric, s.dims, a.series_id, a.ts, a.event_id, a.value, a.score, a.detectors, a.expected, a.low, a.high
    FROM anomalies a JOIN series s ON s.id = a.series_id
    WHERE a.score >= ${q.minScore} ${metric} ${dims} ${from} ${to} ${before}
    ORDER BY a.ts DESC, a.id DESC LIMIT ${q.limit}`.execute(db)
  return rows.map(presentAnomaly)
}
