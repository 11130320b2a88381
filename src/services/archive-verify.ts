import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import { GENESIS, verifyEntries, type Break } from '../domain/hash-chain.js'
import { readArchive } from '../repositories/archive.repository.js'

const PAGE = 500

export interface PartitionVerdict {
  partition: number
  ok: boolean
  /** Events whose links were checked. */
  checked: number
  firstBreak: Break | null
}

/** The stored link of the entry ending just before `seq`: where a range check starts from. */
async function linkBefore(db: Db, partition: number, seq: number): Promise<Buffer | null> {
  if (seq === 0) return GENESIS
  const { rows } = await sql<{ hash: Buffer }>`
    SELECT hash FROM log_archive WHERE partition = ${partition} AND first_seq + count = ${seq}`.execute(db)
  return rows[0]?.hash ?? null
}

/**
 * Re-walks a partition's hash chain over [fromSeq, to) (by default to the head the drain has
 * committed, which is then compared with the final link, so a rewrite of the archive that
 * recomputed every later hash is still caught).
 */
export async function verifyPartition(db: Db, partition: number, fromSeq = 0, to?: number): Promise<PartitionVerdict> {
  // Read the committed head first: the drain may append while the walk runs, and the walk stops
  // at the head it was given, which always falls between two entries.
  const { rows: cps } = await sql<{ archive_seq: number; archive_hash: Buffer }>`SELECT archive_seq, archive_hash FROM drain_checkpoints WHERE partition = ${partition}`.execute(db)
  const head = to === undefined ? cps[0] : undefined
  const toSeq = to ?? head?.archive_seq ?? 0
  // Start at the entry holding `fromSeq`: links are per entry.
  const { rows: at } = await sql<{ first_seq: number }>`
    SELECT first_seq FROM log_archive WHERE partition = ${partition} AND first_seq <= ${fromSeq} ORDER BY first_seq DESC LIMIT 1`.execute(db)
  let seq = at[0]?.first_seq ?? fromSeq
  const start = await linkBefore(db, partition, seq)
  if (!start) return { partition, ok: false, checked: 0, firstBreak: { kind: 'removed', partition, seq: seq - 1, detail: `the entry ending at event ${seq - 1} is not in the archive` } }
  let prev = start
  let checked = 0
  for (;;) {
    const page = (await readArchive(db, partition, seq, PAGE)).filter((e) => e.firstSeq < toSeq)
    if (page.length === 0) break
    const verdict = verifyEntries(page, seq, prev)
    if (!verdict.ok) return { partition, ok: false, checked: checked + Math.max(0, verdict.break.seq - seq), firstBreak: verdict.break }
    checked += verdict.nextSeq - seq
    seq = verdict.nextSeq
    prev = verdict.head
    if (page.length < PAGE) break
  }
  if (head) {
    if (head.archive_seq !== seq) {
      return { partition, ok: false, checked, firstBreak: { kind: 'removed', partition, seq, detail: `the drain archived ${head.archive_seq} events but the archive chains ${seq}` } }
    }
    // Rows past the head the drain has committed by now were not written by the drain.
    const { rows: beyond } = await sql<{ first_seq: number; entry_id: string }>`
      SELECT a.first_seq, a.entry_id FROM log_archive a JOIN drain_checkpoints c ON c.partition = a.partition
      WHERE a.partition = ${partition} AND a.first_seq >= c.archive_seq ORDER BY a.first_seq LIMIT 1`.execute(db)
    if (beyond[0]) {
      return { partition, ok: false, checked, firstBreak: { kind: 'inserted', partition, seq: beyond[0].first_seq, entryId: beyond[0].entry_id, detail: `entry ${beyond[0].entry_id} lies beyond the chain the drain committed` } }
    }
    if (!head.archive_hash.equals(prev)) {
      return { partition, ok: false, checked, firstBreak: { kind: 'changed', partition, seq: seq - 1, entryId: '', index: -1, eventId: null, detail: 'the chain head differs from the one the drain committed: hashes were rewritten' } }
    }
  }
  return { partition, ok: true, checked, firstBreak: null }
}
