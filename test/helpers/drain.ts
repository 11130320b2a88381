import type { Runtime } from '../../src/infra/runtime.js'
import { PartitionDrainer } from '../../workers/drain/partition-drainer.js'

export function makeDrainers(rt: Runtime): PartitionDrainer[] {
  return Array.from(
    { length: rt.config.partitions },
    (_, p) =>
      new PartitionDrainer(p, rt, {
        batchEvents: rt.config.drainBatchEvents,
        cacheBuckets: 10_000,
        latenessMs: rt.config.allowedLatenessSec * 1000,
        dayOffsetMs: rt.config.dayOffsetMin * 60_000,
        retentionMs: rt.config.logRetentionSec * 1000,
        maxEntries: rt.config.logMaxEntries,
      }),
  )
}

/** Drains every partition until the log is caught up; returns the events committed. */
export async function drainAll(drainers: readonly PartitionDrainer[]): Promise<number> {
  let total = 0
  for (;;) {
    const counts = await Promise.all(drainers.map((d) => d.drainOnce()))
    const n = counts.reduce((a, b) => a + b, 0)
    total += n
    if (n === 0) return total
  }
}
