import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { Dims } from '../domain/series-key.js'
import type { StoredBucket } from '../domain/bucket.js'

export interface BucketRef {
  seriesId: number
  widthS: number
  startMs: number
}

export interface BucketRow extends BucketRef, StoredBucket {
  version: number
}

export interface MatchedBucketRow extends BucketRow {
  dims: Record<string, string>
}

const iso = (ms: number): string => new Date(ms).toISOString()

interface RawBucket {
  series_id: number
  width_s: number
  start: Date
  count: number
  sum: number
  min: number
  max: number
  mean: number
  m2: number
  sketch: Buffer
  version: number
  last: number | null
  last_ts: Date | null
}

const fromRaw = (r: RawBucket): BucketRow => ({
  seriesId: r.series_id,
  widthS: r.width_s,
  startMs: r.start.getTime(),
  count: r.count,
  sum: r.sum,
  min: r.min,
  max: r.max,
  mean: r.mean,
  m2: r.m2,
  sketch: r.sketch,
  version: r.version,
  last: r.last,
  lastTs: r.last_ts ? r.last_ts.getTime() : null,
})

export async function loadBuckets(db: Db, refs: readonly BucketRef[]): Promise<BucketRow[]> {
  if (refs.length === 0) return []
  const { rows } = await sql<RawBucket>`
    SELECT b.* FROM aggregate_buckets b
    JOIN unnest(${refs.map((r) => r.seriesId)}::bigint[], ${refs.map((r) => r.widthS)}::int[],
                ${refs.map((r) => iso(r.startMs))}::timestamptz[]) AS k(series_id, width_s, start)
      ON b.series_id = k.series_id AND b.width_s = k.width_s AND b.start = k.start`.execute(db)
  return rows.map(fromRaw)
}

/** A Postgres array literal of numbers (JS number text, which float8 and bigint read back exactly). */
const numbers = (values: readonly (number | null)[]): string => `{${values.map((v) => (v === null ? 'NULL' : String(v))).join(',')}}`

/**
 * Writes the full new state of each bucket; every write bumps the row's version. Columns go as
 * array literals built with one join each and the sketches as one binary parameter cut by
 * offsets (the driver's per-element escaping and hex encoding were most of a bulk batch's cost);
 * times as epoch milliseconds, turned into timestamps exactly in SQL.
 */
export async function upsertBuckets(trx: Db, rows: readonly (BucketRef & StoredBucket)[]): Promise<void> {
  if (rows.length === 0) return
  const offsets: number[] = []
  const lengths: number[] = []
  let at = 0
  for (const r of rows) {
    offsets.push(at + 1)
    lengths.push(r.sketch.length)
    at += r.sketch.length
  }
  const sketches = Buffer.concat(rows.map((r) => r.sketch), at)
  await sql`
    INSERT INTO aggregate_buckets (series_id, width_s, start, count, sum, min, max, mean, m2, sketch, last, last_ts, version, updated_at)
    SELECT series_id, width_s, timestamptz 'epoch' + start_ms * interval '1 millisecond', count, sum, min, max, mean, m2,
           substring(${sketches}::bytea FROM sketch_at FOR sketch_len), last,
           timestamptz 'epoch' + last_ms * interval '1 millisecond', 1, now()
    FROM unnest(${numbers(rows.map((r) => r.seriesId))}::bigint[], ${numbers(rows.map((r) => r.widthS))}::int[],
                ${numbers(rows.map((r) => r.startMs))}::bigint[], ${numbers(rows.map((r) => r.count))}::bigint[],
                ${numbers(rows.map((r) => r.sum))}::float8[], ${numbers(rows.map((r) => r.min))}::float8[], ${numbers(rows.map((r) => r.max))}::float8[],
                ${numbers(rows.map((r) => r.mean))}::float8[], ${numbers(rows.map((r) => r.m2))}::float8[],
                ${numbers(offsets)}::int[], ${numbers(lengths)}::int[], ${numbers(rows.map((r) => r.last))}::float8[],
                ${numbers(rows.map((r) => r.lastTs))}::bigint[])
      AS t(series_id, width_s, start_ms, count, sum, min, max, mean, m2, sketch_at, sketch_len, last, last_ms)
    ON CONFLICT (series_id, width_s, start) DO UPDATE SET
      count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max,
      mean = excluded.mean, m2 = excluded.m2, sketch = excluded.sketch, last = excluded.last, last_ts = excluded.last_ts,
      version = aggregate_buckets.version + 1, updated_at = now()`.execute(trx)
}

export interface RangeQuery {
  metric: string
  dims: Dims
  widthS: number
  fromMs: number
  toMs: number
}

/** Buckets of every series of `metric` whose dims contain `dims`, with start in [from, to). */
export async function bucketsInRange(db: Db, q: RangeQuery): Promise<MatchedBucketRow[]> {
  const { rows } = await sql<RawBucket & { dims: Record<string, string> }>`
    SELECT b.*, s.dims FROM series s
    JOIN aggregate_buckets b ON b.series_id = s.id
    WHERE s.metric = ${q.metric} AND s.dims @> ${JSON.stringify(q.dims)}::jsonb
      AND b.width_s = ${q.widthS} AND b.start >= ${iso(q.fromMs)}::timestamptz AND b.start < ${iso(q.toMs)}::timestamptz
    ORDER BY b.start`.execute(db)
  return rows.map((r) => ({ ...fromRaw(r), dims: r.dims }))
}

/** Buckets of the given starts for every series of `metric` (the hub's per-tick read). */
export async function bucketsAtStarts(db: Db, metric: string, widthS: number, startsMs: readonly number[]): Promise<MatchedBucketRow[]> {
  const { rows } = await sql<RawBucket & { dims: Record<string, string> }>`
    SELECT b.*, s.dims FROM series s
    JOIN aggregate_buckets b ON b.series_id = s.id
    WHERE s.metric = ${metric} AND b.width_s = ${widthS} AND b.start = ANY(${startsMs.map(iso)}::timestamptz[])`.execute(db)
  return rows.map((r) => ({ ...fromRaw(r), dims: r.dims }))
}

/** Start of the newest bucket of any matching series, or null when none has data. */
export async function newestStart(db: Db, metric: string, dims: Dims, widthS: number): Promise<number | null> {
  const { rows } = await sql<{ start: Date | null }>`
    SELECT max(b.start) AS start FROM series s
    JOIN aggregate_buckets b ON b.series_id = s.id
    WHERE s.metric = ${metric} AND s.dims @> ${JSON.stringify(dims)}::jsonb AND b.width_s = ${widthS}`.execute(db)
  return rows[0]?.start ? rows[0].start.getTime() : null
}
