import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { ArchivedEntry } from '../domain/hash-chain.js'

export interface ArchiveRow extends ArchivedEntry {
  kind: string
  arrivedAtMs: number
  minTsMs: number
  maxTsMs: number
}

const iso = (ms: number): string => new Date(ms).toISOString()

/**
 * One parameter per value rather than unnest arrays: an entry's text is large and full of quotes,
 * which array literals would escape character by character.
 */
export async function archiveEntries(trx: Db, rows: readonly ArchiveRow[]): Promise<void> {
  if (rows.length === 0) return
  await trx
    .insertInto('log_archive')
    .values(
      rows.map((r) => ({
        partition: r.partition,
        first_seq: r.firstSeq,
        count: r.count,
        entry_id: r.entryId,
        kind: r.kind,
        arrived_at: iso(r.arrivedAtMs),
        min_ts: iso(r.minTsMs),
        max_ts: iso(r.maxTsMs),
        events: r.events,
        hash: r.hash,
        fingerprints: r.fingerprints,
        import_id: r.importId ?? null,
      })),
    )
    .execute()
}

/** One partition's archive in sequence order, from `fromSeq` (keyset pages). */
export async function readArchive(db: Db, partition: number, fromSeq: number, limit: number): Promise<ArchivedEntry[]> {
  const { rows } = await sql<{ partition: number; first_seq: number; count: number; entry_id: string; events: string; hash: Buffer; fingerprints: Buffer; import_id: number | null }>`
    SELECT partition, first_seq, count, entry_id, events, hash, fingerprints, import_id FROM log_archive
    WHERE partition = ${partition} AND first_seq + count > ${fromSeq}
    ORDER BY first_seq LIMIT ${limit}`.execute(db)
  return rows.map((r) => ({ partition: r.partition, firstSeq: r.first_seq, count: r.count, entryId: r.entry_id, events: r.events, hash: r.hash, fingerprints: r.fingerprints, importId: r.import_id }))
}

export interface ExportPage {
  partition: number
  firstSeq: number
  kind: string
  events: string
}

/** Entries whose event times overlap [fromMs, toMs), in (partition, sequence) order, after a cursor. */
export async function archivePage(
  db: Db,
  kind: string | null,
  fromMs: number,
  toMs: number,
  after: { partition: number; firstSeq: number },
  limit: number,
): Promise<ExportPage[]> {
  const { rows } = await sql<{ partition: number; first_seq: number; kind: string; events: string }>`
    SELECT partition, first_seq, kind, events FROM log_archive
    WHERE (partition, first_seq) > (${after.partition}, ${after.firstSeq})
      AND max_ts >= ${iso(fromMs)}::timestamptz AND min_ts < ${iso(toMs)}::timestamptz
      AND (${kind}::text IS NULL OR kind = ${kind})
    ORDER BY partition, first_seq LIMIT ${limit}`.execute(db)
  return rows.map((r) => ({ partition: r.partition, firstSeq: r.first_seq, kind: r.kind, events: r.events }))
}

/** An upper bound of the events an export will consider: every event of the overlapping entries. */
export async function archiveEstimate(db: Db, kind: string | null, fromMs: number, toMs: number): Promise<number> {
  const { rows } = await sql<{ n: string }>`
    SELECT coalesce(sum(count), 0)::text AS n FROM log_archive
    WHERE max_ts >= ${iso(fromMs)}::timestamptz AND min_ts < ${iso(toMs)}::timestamptz AND (${kind}::text IS NULL OR kind = ${kind})`.execute(db)
  return Number(rows[0]?.n ?? 0)
}
