import type { Redis } from '../infra/redis.js'
import type { Keys } from '../infra/keys.js'
import { partitionOf } from '../domain/series-key.js'
import type { EventKind } from '../schemas/log-entry.js'
import { recordArrivals } from './source-health.js'

export interface AppendResult {
  accepted: number
  duplicates: number
  /** Log entry ids per partition, for tracing one request through the drain. */
  entries: Record<number, string>
}

/** Events by partition, each list in the order given: the order their series or cases keep. */
export function groupByPartition<E>(events: readonly E[], orderKey: (e: E) => string, partitions: number): Map<number, E[]> {
  const byPartition = new Map<number, E[]>()
  for (const e of events) {
    const p = partitionOf(orderKey(e), partitions)
    let list = byPartition.get(p)
    if (!list) byPartition.set(p, (list = []))
    list.push(e)
  }
  return byPartition
}

/**
 * Appends validated events to their partitions' logs in one pipelined round trip, which also
 * carries each source's health bookkeeping. Resolves only
 * once Redis has every event (or knows it as a duplicate); rejects if any partition's append
 * failed, in which case the client retries and the idempotency keys absorb what did land.
 */
export async function appendEvents<E extends { source: string; id: string; ts: number }>(
  redis: Redis,
  keys: Keys,
  partitions: number,
  dedupWindowSec: number,
  kind: EventKind,
  events: readonly E[],
  /** What keeps order: the series of a sample, the case of a report. */
  orderKey: (e: E) => string,
  arrivedAt: number,
): Promise<AppendResult> {
  const byPartition = groupByPartition(events, orderKey, partitions)
  const pipeline = redis.pipeline()
  const order: number[] = []
  for (const [p, list] of byPartition) {
    const args: (string | number)[] = [keys.stream(p)]
    for (const e of list) args.push(keys.seen(p, e.source, e.id))
    args.push(dedupWindowSec, arrivedAt, kind)
    for (const e of list) args.push(JSON.stringify(e))
    pipeline.lanternAppend(list.length + 1, ...args)
    order.push(p)
  }
  recordArrivals(pipeline, keys, events, arrivedAt)
  const replies = (await pipeline.exec())?.slice(0, order.length)
  if (!replies) throw new Error('redis pipeline was discarded')
  const result: AppendResult = { accepted: 0, duplicates: 0, entries: {} }
  replies.forEach(([err, reply], i) => {
    if (err) throw err
    const p = order[i] as number
    const [entryId, dups] = reply as [string | null, number[]]
    const total = byPartition.get(p)?.length ?? 0
    result.duplicates += dups.length
    result.accepted += total - dups.length
    if (entryId) result.entries[p] = entryId
  })
  return result
}
