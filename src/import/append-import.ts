import type { Redis } from '../infra/redis.js'
import type { Keys } from '../infra/keys.js'
import { groupByPartition } from '../ingest/append-log.js'
import { recordArrivals } from '../ingest/source-health.js'
import type { EventKind } from '../schemas/log-entry.js'

export interface ChunkAppended {
  /** Events appended now (0 for partitions that already had this chunk). */
  accepted: number
  duplicates: number
  /** Partitions that already held this chunk from an earlier run (skipped whole). */
  alreadyIn: number
}

/**
 * Appends one chunk of an import to the import lanes of its partitions, one pipelined round trip:
 * each partition's share is one entry, written atomically with its idempotency keys and the
 * job's per-partition chunk mark (see IMPORT_APPEND_LUA), so re-sending a chunk after a crash
 * appends nothing twice. Chunks of a job must be sent in order.
 */
export async function appendImportChunk<E extends { source: string; id: string; ts: number }>(
  redis: Redis,
  keys: Keys,
  partitions: number,
  dedupWindowSec: number,
  kind: EventKind,
  jobId: number,
  chunk: number,
  events: readonly E[],
  orderKey: (e: E) => string,
  arrivedAt: number,
): Promise<ChunkAppended> {
  const byPartition = groupByPartition(events, orderKey, partitions)
  const out: ChunkAppended = { accepted: 0, duplicates: 0, alreadyIn: 0 }
  if (byPartition.size === 0) return out
  const pipeline = redis.pipeline()
  const sizes: number[] = []
  for (const [p, list] of byPartition) {
    const args: (string | number)[] = [keys.importStream(p), keys.importJobs(p)]
    for (const e of list) args.push(keys.seen(p, e.source, e.id))
    args.push(dedupWindowSec, arrivedAt, kind, jobId, chunk)
    for (const e of list) args.push(JSON.stringify(e))
    pipeline.lanternImportAppend(list.length + 2, ...args)
    sizes.push(list.length)
  }
  recordArrivals(pipeline, keys, events, arrivedAt)
  const replies = (await pipeline.exec())?.slice(0, sizes.length)
  if (!replies) throw new Error('redis pipeline was discarded')
  replies.forEach(([err, reply], i) => {
    if (err) throw err
    const [, dups] = reply as [string | null, number]
    if (dups < 0) {
      out.alreadyIn++
      return
    }
    out.duplicates += dups
    out.accepted += (sizes[i] as number) - dups
  })
  return out
}

export interface JobTotals {
  /** Events the job appended over all its runs, exactly (kept in Redis with each append). */
  events: number
  duplicates: number
}

/** The job's exact totals, summed over every partition's record of it. */
export async function importTotals(redis: Redis, keys: Keys, partitions: number, jobId: number): Promise<JobTotals> {
  const pipeline = redis.pipeline()
  for (let p = 0; p < partitions; p++) pipeline.hmget(keys.importJobs(p), `${jobId}:events`, `${jobId}:dups`)
  const replies = (await pipeline.exec()) ?? []
  const totals: JobTotals = { events: 0, duplicates: 0 }
  for (const [err, reply] of replies) {
    if (err) throw err
    const [events, dups] = reply as [string | null, string | null]
    totals.events += Number(events ?? 0)
    totals.duplicates += Number(dups ?? 0)
  }
  return totals
}

/** Forgets a finished job's marks and counts (its row in PostgreSQL keeps the figures). */
export async function forgetImportJob(redis: Redis, keys: Keys, partitions: number, jobId: number): Promise<void> {
  const pipeline = redis.pipeline()
  for (let p = 0; p < partitions; p++) pipeline.hdel(keys.importJobs(p), `${jobId}:mark`, `${jobId}:events`, `${jobId}:dups`, `${jobId}:last`)
  await pipeline.exec()
}
