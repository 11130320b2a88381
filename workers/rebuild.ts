import { sql } from 'kysely'
import type { Db } from '../src/infra/db.js'
import type { Runtime } from '../src/infra/runtime.js'
import { PartitionDrainer, type EntrySource } from './drain/partition-drainer.js'

/**
 * Log entries of one partition read back from an archive, in the order the drain first folded
 * them (both lanes, live and import, in the one order they were chained), shaped as the Redis
 * streams hold them. The drainer's checkpoint says where to go on: its archive sequence.
 */
export function archiveSource(source: Db): EntrySource {
  return async (partition, from, count) => {
    const { rows } = await sql<{ entry_id: string; kind: string; arrived_at: Date; count: number; events: string; import_id: number | null }>`
      SELECT entry_id, kind, arrived_at, count, events, import_id FROM log_archive
      WHERE partition = ${partition} AND first_seq >= ${from.archiveSeq}
      ORDER BY first_seq LIMIT ${count}`.execute(source)
    return rows.map((r) => ({ id: r.entry_id, fields: ['n', String(r.count), 'at', String(r.arrived_at.getTime()), 'k', r.kind, 'e', r.events], importId: r.import_id }))
  }
}

/**
 * Rebuilds every piece of state (series, buckets, cases, findings, the archive itself and the
 * checkpoints) into `rt`'s database, which must hold no events yet, by folding the source's
 * archive through the same drain code, partition by partition. The rebuilt archive chains to the
 * same hashes, and the checkpoints end at the same log entries, so draining can carry on from the
 * live log afterwards.
 */
export async function rebuildFromArchive(rt: Runtime, source: Db, onProgress?: (events: number) => void): Promise<number> {
  const { rows } = await sql<{ n: string }>`SELECT (SELECT count(*) FROM log_archive) + (SELECT count(*) FROM series) + (SELECT count(*) FROM cases) AS n`.execute(rt.db)
  if (Number(rows[0]?.n) > 0) throw new Error('the target database already holds state: rebuild only into an empty database')
  const read = archiveSource(source)
  let total = 0
  await Promise.all(
    Array.from({ length: rt.config.partitions }, async (_, p) => {
      const drainer = new PartitionDrainer(p, { ...rt, source: read }, {
        batchEvents: rt.config.drainBatchEvents,
        cacheBuckets: 200_000,
        latenessMs: rt.config.allowedLatenessSec * 1000,
        dayOffsetMs: rt.config.dayOffsetMin * 60_000,
        retentionMs: 0,
        maxEntries: 0,
        live: false,
      })
      for (;;) {
        const n = await drainer.drainOnce()
        if (n === 0) return
        total += n
        onProgress?.(total)
      }
    }),
  )
  return total
}
