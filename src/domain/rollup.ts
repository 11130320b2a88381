import { emptyBucket, fromStored, mergeInto, summarize, type BucketState, type BucketSummary } from './bucket.js'
import type { MatchedBucketRow } from '../repositories/aggregates.repository.js'

export interface RolledBucket {
  startMs: number
  state: BucketState
  series: number
  /** Sum of the stored rows' versions: grows with every committed change to any of them. */
  version: number
}

export interface BucketView extends BucketSummary {
  start: string
  end: string
  series: number
}

/** Key of a group: the values of the group-by dims, '' for the whole roll-up. */
export const groupKeyOf = (dims: Record<string, string>, groupBy: readonly string[]): string =>
  groupBy.length === 0 ? '' : JSON.stringify(groupBy.map((k) => dims[k] ?? null))

/**
 * Merges stored per-series buckets into one bucket per (group, start): counts and sums add, min
 * and max take the extremes, variance and quantile sketches merge exactly as if every sample had
 * landed in one bucket.
 */
export function rollUp(rows: readonly MatchedBucketRow[], groupBy: readonly string[] = []): Map<string, Map<number, RolledBucket>> {
  const groups = new Map<string, Map<number, RolledBucket>>()
  for (const row of rows) {
    const gk = groupKeyOf(row.dims, groupBy)
    let byStart = groups.get(gk)
    if (!byStart) groups.set(gk, (byStart = new Map()))
    let rb = byStart.get(row.startMs)
    if (!rb) byStart.set(row.startMs, (rb = { startMs: row.startMs, state: emptyBucket(), series: 0, version: 0 }))
    mergeInto(rb.state, fromStored(row))
    rb.series += 1
    rb.version += row.version
  }
  return groups
}

export function viewOf(rb: { startMs: number; state: BucketState; series: number }, widthMs: number): BucketView {
  return {
    start: new Date(rb.startMs).toISOString(),
    end: new Date(rb.startMs + widthMs).toISOString(),
    series: rb.series,
    ...summarize(rb.state),
  }
}

/** Merges every row of a group into one bucket, whatever its start (sliding windows). */
export function rollUpAll(rows: readonly MatchedBucketRow[], groupBy: readonly string[] = []): Map<string, { state: BucketState; series: number }> {
  const groups = new Map<string, { state: BucketState; ids: Set<number> }>()
  for (const row of rows) {
    const gk = groupKeyOf(row.dims, groupBy)
    let g = groups.get(gk)
    if (!g) groups.set(gk, (g = { state: emptyBucket(), ids: new Set() }))
    mergeInto(g.state, fromStored(row))
    g.ids.add(row.seriesId)
  }
  return new Map([...groups].map(([k, g]) => [k, { state: g.state, series: g.ids.size }]))
}
