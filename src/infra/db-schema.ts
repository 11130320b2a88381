import type { ColumnType, Generated } from 'kysely'

type Timestamp = ColumnType<Date, Date | string, Date | string>

export interface LanternMetaTable {
  key: string
  value: string
}

export interface DrainCheckpointsTable {
  partition: number
  last_id: string
  watermark_ms: number
  events: number
  late_events: number
  archive_seq: number
  archive_hash: Buffer
  /** Position in the partition's import lane (history imports), moved with `last_id` by one compare-and-set. */
  import_last_id: Generated<string>
  updated_at: Generated<Date>
}

export interface SeriesTable {
  id: Generated<number>
  key: string
  metric: string
  dims: Record<string, string>
  partition: number
  first_ts: Timestamp
  last_ts: Timestamp
  events: number
  late_events: number
  last_late_ts: Timestamp | null
  created_at: Generated<Date>
}

export interface AggregateBucketsTable {
  series_id: number
  width_s: number
  start: Timestamp
  count: number
  sum: number
  min: number
  max: number
  mean: number
  m2: number
  sketch: Buffer
  last: number | null
  last_ts: Timestamp | null
  version: number
  updated_at: Generated<Date>
}

export interface LogArchiveTable {
  partition: number
  first_seq: number
  count: number
  entry_id: string
  kind: string
  arrived_at: Timestamp
  min_ts: Timestamp
  max_ts: Timestamp
  events: string
  hash: Buffer
  fingerprints: Buffer
  /** The import job that appended the entry (import lane); null for live traffic. */
  import_id: number | null
}

export interface Database {
  log_archive: LogArchiveTable
  lantern_meta: LanternMetaTable
  drain_checkpoints: DrainCheckpointsTable
  series: SeriesTable
  aggregate_buckets: AggregateBucketsTable
}
