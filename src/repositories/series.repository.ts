import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import { canonicalDims, type Dims } from '../domain/series-key.js'

export interface SeriesTouch {
  key: string
  metric: string
  dims: Dims
  partition: number
  firstTs: number
  lastTs: number
  events: number
  lateEvents: number
  lastLateTs: number | null
}

const iso = (ms: number): string => new Date(ms).toISOString()

/** Creates new series and folds a batch's counts into existing ones; returns key -> id. */
export async function touchSeries(trx: Db, touches: readonly SeriesTouch[]): Promise<Map<string, number>> {
  if (touches.length === 0) return new Map()
  const rows = await sql<{ id: number; key: string }>`
    INSERT INTO series (key, metric, dims, partition, first_ts, last_ts, events, late_events, last_late_ts)
    SELECT key, metric, dims::jsonb, partition, first_ts, last_ts, events, late_events, last_late_ts
    FROM unnest(${touches.map((t) => t.key)}::text[], ${touches.map((t) => t.metric)}::text[],
                ${touches.map((t) => JSON.stringify(t.dims))}::text[], ${touches.map((t) => t.partition)}::int[],
                ${touches.map((t) => iso(t.firstTs))}::timestamptz[], ${touches.map((t) => iso(t.lastTs))}::timestamptz[],
                ${touches.map((t) => t.events)}::bigint[], ${touches.map((t) => t.lateEvents)}::bigint[],
                ${touches.map((t) => (t.lastLateTs === null ? null : iso(t.lastLateTs)))}::timestamptz[])
      AS t(key, metric, dims, partition, first_ts, last_ts, events, late_events, last_late_ts)
    ON CONFLICT (key) DO UPDATE SET
      first_ts = least(series.first_ts, excluded.first_ts),
      last_ts = greatest(series.last_ts, excluded.last_ts),
      events = series.events + excluded.events,
      late_events = series.late_events + excluded.late_events,
      last_late_ts = greatest(series.last_late_ts, excluded.last_late_ts)
    RETURNING id, key`.execute(trx)
  return new Map(rows.rows.map((r) => [r.key, r.id]))
}

export interface SeriesRow {
  id: number
  metric: string
  dims: Record<string, string>
  firstTs: Date
  lastTs: Date
  events: number
  lateEvents: number
  lastLateTs: Date | null
}

export interface SeriesFilter {
  metric?: string
  dims: Dims
}

export async function listSeries(db: Db, filter: SeriesFilter, limit: number, afterId: number): Promise<SeriesRow[]> {
  let q = db
    .selectFrom('series')
    .select(['id', 'metric', 'dims', 'first_ts', 'last_ts', 'events', 'late_events', 'last_late_ts'])
    .where('id', '>', afterId)
  if (filter.metric !== undefined) q = q.where('metric', '=', filter.metric)
  if (Object.keys(filter.dims).length > 0) q = q.where(sql<boolean>`dims @> ${JSON.stringify(filter.dims)}::jsonb`)
  const rows = await q.orderBy('id').limit(limit).execute()
  return rows.map((r) => ({
    id: r.id,
    metric: r.metric,
    dims: canonicalDims(r.dims),
    firstTs: r.first_ts,
    lastTs: r.last_ts,
    events: r.events,
    lateEvents: r.late_events,
    lastLateTs: r.last_late_ts,
  }))
}
