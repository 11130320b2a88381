import { sql } from 'kysely'
import pg from 'pg'
import type { Db } from '../infra/db.js'

export type ImportFormat = 'csv' | 'ndjson'
export type ImportKind = 'metric' | 'report'
export type OnError = 'stop' | 'skip'
export type ImportOrigin = 'cli' | 'api'
/**
 * uploading: the API is receiving the file; queued: waiting for a worker; running: reading the
 * file and appending it to the import lane; committing: every row is in the log, the drain is
 * committing the rest; done: every event committed; stopped: a bad row with on_error=stop (the
 * rows before its chunk are in, nothing after); failed: an error (run it again: it resumes).
 */
export type ImportStatus = 'uploading' | 'queued' | 'running' | 'committing' | 'done' | 'stopped' | 'failed'

export interface BadRow {
  /** Line of the file (1-based; for CSV the header is line 1), where the row ends. */
  row: number
  /** JSON pointer of the offending field, '' for the row itself. */
  path: string
  reason: string
  /** 0-based index among the file's records (rows that are not blank), for resuming. */
  record: number
}

export interface ImportRow {
  id: number
  sha256: string
  name: string
  format: ImportFormat
  kind: ImportKind
  onError: OnError
  origin: ImportOrigin
  status: ImportStatus
  bytesTotal: number
  bytesRead: number
  rowsRead: number
  /** Chunks whose events are durably in the log: the import resumes after them. */
  chunksSent: number
  rowsSent: number
  eventsAppended: number
  duplicates: number
  eventsCommitted: number
  badRows: number
  badRowsSent: number
  error: string | null
  runs: number
  createdAt: string
  startedAt: string | null
  updatedAt: string
  finishedAt: string | null
  /** The first bad rows (at most MAX_LISTED_BAD_ROWS), on single reads only. */
  badRowList?: BadRow[]
}

/** Bad rows kept with a job; badRows counts them all. */
export const MAX_LISTED_BAD_ROWS = 1000

interface Raw {
  id: number
  sha256: string
  name: string
  format: ImportFormat
  kind: ImportKind
  on_error: OnError
  origin: ImportOrigin
  status: ImportStatus
  bytes_total: number
  bytes_read: number
  rows_read: number
  chunks_sent: number
  rows_sent: number
  events_appended: number
  duplicates: number
  events_committed: number
  bad_rows: number
  bad_rows_sent: number
  error: string | null
  runs: number
  created_at: Date
  started_at: Date | null
  updated_at: Date
  finished_at: Date | null
  bad_row_list?: BadRow[]
}

const COLUMNS = sql.raw(
  'id, sha256, name, format, kind, on_error, origin, status, bytes_total, bytes_read, rows_read, chunks_sent, rows_sent, events_appended, duplicates, events_committed, bad_rows, bad_rows_sent, error, runs, created_at, started_at, updated_at, finished_at',
)

const fromRaw = (r: Raw): ImportRow => ({
  id: r.id,
  sha256: r.sha256,
  name: r.name,
  format: r.format,
  kind: r.kind,
  onError: r.on_error,
  origin: r.origin,
  status: r.status,
  bytesTotal: r.bytes_total,
  bytesRead: r.bytes_read,
  rowsRead: r.rows_read,
  chunksSent: r.chunks_sent,
  rowsSent: r.rows_sent,
  eventsAppended: r.events_appended,
  duplicates: r.duplicates,
  eventsCommitted: r.events_committed,
  badRows: r.bad_rows,
  badRowsSent: r.bad_rows_sent,
  error: r.error,
  runs: r.runs,
  createdAt: r.created_at.toISOString(),
  startedAt: r.started_at?.toISOString() ?? null,
  updatedAt: r.updated_at.toISOString(),
  finishedAt: r.finished_at?.toISOString() ?? null,
  ...(r.bad_row_list !== undefined ? { badRowList: r.bad_row_list } : {}),
})

export interface NewImport {
  sha256: string
  name: string
  format: ImportFormat
  kind: ImportKind
  onError: OnError
  origin: ImportOrigin
  status: ImportStatus
  bytesTotal: number
}

/**
 * The job for a file (by content, kind and format), created if there is none: `created` false
 * means an earlier job had this file, whatever its state (done: nothing to do; otherwise the
 * caller resumes it).
 */
export async function findOrCreateImport(db: Db, n: NewImport): Promise<{ job: ImportRow; created: boolean }> {
  for (;;) {
    const existing = await findImportByFile(db, n.sha256, n.kind, n.format)
    if (existing) return { job: existing, created: false }
    const { rows } = await sql<Raw>`
      INSERT INTO imports (sha256, name, format, kind, on_error, origin, status, bytes_total)
      VALUES (${n.sha256}, ${n.name}, ${n.format}, ${n.kind}, ${n.onError}, ${n.origin}, ${n.status}, ${n.bytesTotal})
      ON CONFLICT (sha256, kind, format) DO NOTHING
      RETURNING ${COLUMNS}`.execute(db)
    if (rows[0]) return { job: fromRaw(rows[0]), created: true }
  }
}

/** A job row as given (an upload gets a provisional sha256 until its bytes have all arrived). */
export async function createImport(db: Db, n: NewImport): Promise<ImportRow> {
  const { rows } = await sql<Raw>`
    INSERT INTO imports (sha256, name, format, kind, on_error, origin, status, bytes_total)
    VALUES (${n.sha256}, ${n.name}, ${n.format}, ${n.kind}, ${n.onError}, ${n.origin}, ${n.status}, ${n.bytesTotal})
    RETURNING ${COLUMNS}`.execute(db)
  return fromRaw(rows[0] as Raw)
}

/** Names an uploaded job's file once its bytes are in; false when another job already has that file. */
export async function setImportFile(db: Db, id: number, sha256: string, bytesTotal: number, status: ImportStatus): Promise<boolean> {
  try {
    await sql`UPDATE imports SET sha256 = ${sha256}, bytes_total = ${bytesTotal}, status = ${status}, updated_at = now() WHERE id = ${id}`.execute(db)
    return true
  } catch (err) {
    if ((err as { code?: string }).code === '23505') return false
    throw err
  }
}

export async function findImportByFile(db: Db, sha256: string, kind: ImportKind, format: ImportFormat): Promise<ImportRow | null> {
  const { rows } = await sql<Raw>`SELECT ${COLUMNS} FROM imports WHERE sha256 = ${sha256} AND kind = ${kind} AND format = ${format}`.execute(db)
  return rows[0] ? fromRaw(rows[0]) : null
}

export async function getImport(db: Db, id: number, withBadRows = false): Promise<ImportRow | null> {
  const { rows } = await sql<Raw>`SELECT ${COLUMNS}${withBadRows ? sql`, bad_row_list` : sql``} FROM imports WHERE id = ${id}`.execute(db)
  return rows[0] ? fromRaw(rows[0]) : null
}

/** Recent jobs without their bad-row lists: what the list and the live topic show. */
export async function listImports(db: Db, limit: number): Promise<ImportRow[]> {
  const { rows } = await sql<Raw>`SELECT ${COLUMNS} FROM imports WHERE status <> 'uploading' ORDER BY id DESC LIMIT ${limit}`.execute(db)
  return rows.map(fromRaw)
}

export interface ImportChange {
  status?: ImportStatus
  onError?: OnError
  origin?: ImportOrigin
  name?: string
  bytesTotal?: number
  bytesRead?: number
  rowsRead?: number
  chunksSent?: number
  rowsSent?: number
  eventsAppended?: number
  duplicates?: number
  badRows?: number
  badRowsSent?: number
  /** Replaces the stored list. */
  badRowList?: BadRow[]
  /** null clears it. */
  error?: string | null
  /** A run begins: counts it and sets started_at the first time. */
  started?: boolean
}

export async function updateImport(db: Db, id: number, c: ImportChange): Promise<void> {
  const set = [
    c.status !== undefined && sql`status = ${c.status}`,
    c.onError !== undefined && sql`on_error = ${c.onError}`,
    c.origin !== undefined && sql`origin = ${c.origin}`,
    c.name !== undefined && sql`name = ${c.name}`,
    c.bytesTotal !== undefined && sql`bytes_total = ${c.bytesTotal}`,
    c.bytesRead !== undefined && sql`bytes_read = ${c.bytesRead}`,
    c.rowsRead !== undefined && sql`rows_read = ${c.rowsRead}`,
    c.chunksSent !== undefined && sql`chunks_sent = ${c.chunksSent}`,
    c.rowsSent !== undefined && sql`rows_sent = ${c.rowsSent}`,
    c.eventsAppended !== undefined && sql`events_appended = ${c.eventsAppended}`,
    c.duplicates !== undefined && sql`duplicates = ${c.duplicates}`,
    c.badRows !== undefined && sql`bad_rows = ${c.badRows}`,
    c.badRowsSent !== undefined && sql`bad_rows_sent = ${c.badRowsSent}`,
    c.badRowList !== undefined && sql`bad_row_list = ${JSON.stringify(c.badRowList)}::jsonb`,
    c.error !== undefined && sql`error = ${c.error}`,
    c.started === true && sql`runs = runs + 1, started_at = coalesce(started_at, now()), finished_at = NULL`,
    c.status === 'done' || c.status === 'stopped' || c.status === 'failed' ? sql`finished_at = now()` : false,
    sql`updated_at = now()`,
  ].filter((x) => x !== false)
  await sql`UPDATE imports SET ${sql.join(set)} WHERE id = ${id}`.execute(db)
}

/**
 * In the drain transaction: events of import-lane entries committed, per job. A job whose rows
 * are all in the log (committing) is done with its last event committed, importer or not.
 */
export async function addCommittedImportEvents(trx: Db, byJob: ReadonlyMap<number, number>): Promise<void> {
  if (byJob.size === 0) return
  await sql`
    UPDATE imports i SET events_committed = i.events_committed + c.n, updated_at = now(),
      status = CASE WHEN i.status = 'committing' AND i.events_committed + c.n >= i.events_appended THEN 'done' ELSE i.status END,
      finished_at = CASE WHEN i.status = 'committing' AND i.events_committed + c.n >= i.events_appended THEN now() ELSE i.finished_at END
    FROM unnest(${[...byJob.keys()]}::bigint[], ${[...byJob.values()]}::bigint[]) AS c(id, n)
    WHERE i.id = c.id`.execute(trx)
}

export async function deleteImport(db: Db, id: number): Promise<void> {
  await sql`DELETE FROM imports WHERE id = ${id}`.execute(db)
}

// ---------------------------------------------------------------------------------------------
// Uploads: a file posted to the API, kept in PostgreSQL until a worker (on any host) has read it.

export async function addUploadPart(db: Db, importId: number, seq: number, data: Buffer): Promise<void> {
  await sql`INSERT INTO import_uploads (import_id, seq, data) VALUES (${importId}, ${seq}, ${data})`.execute(db)
}

/** The upload's parts, `count` at a time from `fromSeq`. */
export async function readUploadParts(db: Db, importId: number, fromSeq: number, count: number): Promise<{ seq: number; data: Buffer }[]> {
  const { rows } = await sql<{ seq: number; data: Buffer }>`
    SELECT seq, data FROM import_uploads WHERE import_id = ${importId} AND seq >= ${fromSeq} ORDER BY seq LIMIT ${count}`.execute(db)
  return rows
}

/** Gives job `to` the upload of job `from` (replacing any it had). */
export async function moveUpload(db: Db, from: number, to: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await sql`DELETE FROM import_uploads WHERE import_id = ${to}`.execute(trx)
    await sql`UPDATE import_uploads SET import_id = ${to} WHERE import_id = ${from}`.execute(trx)
  })
}

export async function deleteUpload(db: Db, importId: number): Promise<void> {
  await sql`DELETE FROM import_uploads WHERE import_id = ${importId}`.execute(db)
}

// ---------------------------------------------------------------------------------------------
// One importer per job at a time: a session-level advisory lock on a connection of its own, so a
// process killed anywhere (kill -9 included) lets go of it as soon as its connection closes.

const LOCK_SPACE = 0x4c4e_4950 // 'LNIP'

export interface ImportLock {
  release(): Promise<void>
}

export async function tryLockImport(databaseUrl: string, id: number): Promise<ImportLock | null> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: `lantern-import-${id}` })
  client.on('error', () => undefined)
  await client.connect()
  const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [LOCK_SPACE, id])
  if (!rows[0]?.ok) {
    await client.end().catch(() => undefined)
    return null
  }
  return {
    async release() {
      await client.end().catch(() => undefined)
    },
  }
}

/** Whether some importer holds the job right now. */
export async function importLocked(databaseUrl: string, id: number): Promise<boolean> {
  const lock = await tryLockImport(databaseUrl, id)
  if (!lock) return true
  await lock.release()
  return false
}
