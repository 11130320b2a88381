import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import { GENESIS } from '../domain/hash-chain.js'

export interface Checkpoint {
  partition: number
  lastId: string
  /** Position in the import lane: the last history-import entry committed. */
  importLastId: string
  watermarkMs: number
  /** Events archived so far in this partition: the sequence number of the next one. */
  archiveSeq: number
  /** Head of the partition's archive hash chain. */
  archiveHash: Buffer
}

export type CheckpointMove = Omit<Checkpoint, 'partition'>

export async function ensureCheckpoints(db: Db, partitions: number): Promise<void> {
  const rows = Array.from({ length: partitions }, (_, partition) => ({ partition, last_id: '0-0', watermark_ms: 0, events: 0, late_events: 0, archive_seq: 0, archive_hash: GENESIS }))
  await db.insertInto('drain_checkpoints').values(rows).onConflict((oc) => oc.column('partition').doNothing()).execute()
}

export async function loadCheckpoint(db: Db, partition: number): Promise<Checkpoint> {
  const row = await db.selectFrom('drain_checkpoints').select(['last_id', 'import_last_id', 'watermark_ms', 'archive_seq', 'archive_hash']).where('partition', '=', partition).executeTakeFirst()
  if (!row) throw new Error(`no checkpoint row for partition ${partition}: migrations or start-up did not run`)
  return { partition, lastId: row.last_id, importLastId: row.import_last_id, watermarkMs: row.watermark_ms, archiveSeq: row.archive_seq, archiveHash: row.archive_hash }
}

export async function listCheckpoints(db: Db): Promise<{ partition: number; lastId: string; watermarkMs: number; events: number; lateEvents: number; updatedAt: Date }[]> {
  const rows = await db.selectFrom('drain_checkpoints').selectAll().orderBy('partition').execute()
  return rows.map((r) => ({ partition: r.partition, lastId: r.last_id, watermarkMs: r.watermark_ms, events: r.events, lateEvents: r.late_events, updatedAt: r.updated_at }))
}

/**
 * Moves the checkpoint from `from` to `to` only if it still stands at `from` (both lanes' positions). Run first in the
 * drain transaction: it row-locks the checkpoint, so a second drainer of the same partition waits
 * here and then finds the checkpoint moved, and its whole transaction is rolled back.
 */
export async function advanceCheckpoint(
  trx: Db,
  from: Checkpoint,
  to: CheckpointMove,
  events: number,
  lateEvents: number,
): Promise<boolean> {
  const result = await trx
    .updateTable('drain_checkpoints')
    .set({
      last_id: to.lastId,
      import_last_id: to.importLastId,
      watermark_ms: to.watermarkMs,
      archive_seq: to.archiveSeq,
      archive_hash: to.archiveHash,
      events: sql`events + ${events}`,
      late_events: sql`late_events + ${lateEvents}`,
      updated_at: sql`now()`,
    })
    .where('partition', '=', from.partition)
    .where('last_id', '=', from.lastId)
    .where('import_last_id', '=', from.importLastId)
    .executeTakeFirst()
  return result.numUpdatedRows === 1n
}
