import type { Readable } from 'node:stream'
import { sql } from 'kysely'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { Db } from '../infra/db.js'
import type { Keys } from '../infra/keys.js'
import type { Redis } from '../infra/redis.js'
import type { ChangeNotice } from '../live/change-notice.js'
import { seriesKey } from '../domain/series-key.js'
import { makeMetricValidator, makeReportValidator, type BatchValidator } from '../ingest/validate-events.js'
import { EVENT_KINDS } from '../schemas/log-entry.js'
import type { MetricEvent } from '../schemas/metric-event.js'
import { caseKey, type ReportEvent } from '../schemas/report-event.js'
import {
  getImport,
  MAX_LISTED_BAD_ROWS,
  tryLockImport,
  updateImport,
  type BadRow,
  type ImportRow,
  type OnError,
} from '../repositories/imports.repository.js'
import { appendImportChunk, forgetImportJob, importTotals } from './append-import.js'
import { readRows, type RawRow } from './rows.js'

/**
 * Rows per chunk: the unit of appending, of progress and of resuming. Chunk k is always records
 * [k * CHUNK_ROWS, (k + 1) * CHUNK_ROWS) of the file, so a run that starts again cuts the same
 * chunks and the per-partition chunk marks recognise the ones already in.
 */
export const CHUNK_ROWS = 5000
/** Progress is written to the job row (and announced live) at most this often. */
const PROGRESS_EVERY_MS = 500
const COMMIT_POLL_MS = 100
/**
 * Events appended but not yet committed past which the importer waits for the drain: the log
 * (Redis memory) holds at most about this much of a file at a time, however large the file.
 */
const MAX_BACKLOG_EVENTS = 400_000

export interface ImportDeps {
  redis: Redis
  db: Db
  keys: Keys
  config: Config
  log: Logger
}

export interface ImportInput {
  /** The file from its first byte (called once per run). */
  open(): Readable
  /** Bytes of the file read so far by the stream open() gave. */
  bytesRead(): number
  bytesTotal: number
}

export type ImportPhase = 'reading' | 'committing' | 'finished'

export interface RunOptions {
  /** Stop or skip bad rows; the job's own setting when absent. */
  onError?: OnError
  onProgress?: (job: ImportRow, phase: ImportPhase) => void
  /** Every bad row, as it is found. */
  onBadRow?: (bad: BadRow) => void
  /** Return once every row is in the log, without waiting for the drain to commit it. */
  noWait?: boolean
}

/** Another process is running this job now. */
export class ImportBusy extends Error {
  override name = 'ImportBusy'
}

/** Tells hubs an import moved, so screens on the imports topic see its progress. */
export async function announceImports(deps: Pick<ImportDeps, 'redis' | 'keys'>): Promise<void> {
  const notice: ChangeNotice = { partition: -1, metrics: {}, imports: true }
  await deps.redis.publish(deps.keys.changesChannel, JSON.stringify(notice))
}

/**
 * Runs (or resumes) one import job: reads the file as a stream, validates each chunk of rows with
 * ingest's own validation, and appends the chunk to the import lanes of its partitions, one
 * chunk in flight while the next is parsed. Progress (chunks whose events are durably in the log)
 * is written to the job row, so a run killed anywhere resumes after the last chunk it recorded;
 * a chunk that had landed without being recorded is recognised by its per-partition marks and
 * not appended again. Then waits until the drain has committed every event of the job.
 * One process at a time runs a job: an advisory lock, released when the process's connection
 * goes, whatever ended it.
 */
export async function runImport(deps: ImportDeps, jobId: number, input: ImportInput, opts: RunOptions = {}): Promise<ImportRow> {
  const { redis, db, keys, config, log } = deps
  const lock = await tryLockImport(config.databaseUrl, jobId)
  if (!lock) throw new ImportBusy(`import ${jobId} is being run by another process`)
  try {
    const stored = await getImport(db, jobId, true)
    if (!stored) throw new Error(`no import ${jobId}`)
    if (stored.status === 'done') return stored
    const onError = opts.onError ?? stored.onError
    const job: ImportRow = { ...stored, onError, status: 'running', error: null, badRows: stored.badRowsSent }
    // Bad rows of chunks already in stay reported; those of the chunk a stop ended on are found again.
    const badList = (stored.badRowList ?? []).filter((b) => b.record < stored.rowsSent)
    await updateImport(db, jobId, { status: 'running', onError, error: null, started: true, badRows: job.badRows, badRowList: badList })
    log.info({ importId: jobId, name: job.name, format: job.format, kind: job.kind, onError, resumeAtRow: stored.rowsSent, chunksSent: stored.chunksSent }, 'import started')

    const progress = new ProgressWriter(deps, job, badList, opts)
    progress.now('reading')
    const limits = { maxDims: config.maxDims, maxDimValueLength: config.maxDimValueLength, maxFutureMs: config.maxFutureSec * 1000 }
    const append = (
      job.kind === 'metric'
        ? chunkAppender(deps, job, EVENT_KINDS.metric, makeMetricValidator(limits), (e: MetricEvent) => seriesKey(e.metric, e.dims))
        : chunkAppender(deps, job, EVENT_KINDS.report, makeReportValidator(limits), (e: ReportEvent) => caseKey(e.service, e.case))
    ) as ChunkAppender<MetricEvent | ReportEvent>

    const backlog = new Backlog(db, jobId, stored.eventsCommitted)
    const skip = stored.rowsSent
    let chunk = stored.chunksSent
    let record = 0
    let pending: RawRow[] = []
    let inflight: Promise<void> = Promise.resolve()
    let stopped: { bad: BadRow; fromRow: number } | null = null
    const send = async (rows: RawRow[]): Promise<boolean> => {
      const k = chunk++
      const { events, bad } = append.validate(rows, k * CHUNK_ROWS)
      for (const b of bad) opts.onBadRow?.(b)
      if (bad.length > 0 && onError === 'stop') {
        // Nothing of this chunk is written; the chunks before it are (once the last one lands).
        await inflight
        stopped = { bad: bad[0] as BadRow, fromRow: (rows[0] as RawRow).row }
        job.badRows += bad.length
        progress.addBad(bad)
        return false
      }
      // One chunk in flight: this one goes once the previous has landed, while the next is parsed.
      const previous = inflight
      inflight = (async () => {
        await previous
        await backlog.wait(job.eventsAppended)
        const res = await append.send(k, events)
        job.eventsAppended += res.accepted
        job.duplicates += res.duplicates
        job.chunksSent = k + 1
        job.rowsSent = k * CHUNK_ROWS + rows.length
        job.badRows += bad.length
        job.badRowsSent = job.badRows
        progress.addBad(bad)
        progress.soon('reading')
      })()
      // Surfaces a failed append at the next await, not as an unhandled rejection.
      inflight.catch(() => undefined)
      return true
    }

    // A run that ended while the drain was committing has every row in already.
    const stream = stored.status === 'committing' ? null : input.open()
    if (stream) try {
      reading: for await (const rows of readRows(stream, job.format, job.kind)) {
        for (const r of rows) {
          job.rowsRead = ++record
          if (record <= skip) continue
          pending.push(r)
          if (pending.length === CHUNK_ROWS) {
            const ok = await send(pending)
            pending = []
            if (!ok) break reading
          }
        }
        job.bytesRead = input.bytesRead()
        progress.soon('reading')
      }
      if (!stopped && pending.length > 0) await send(pending)
      await inflight
    } finally {
      stream.destroy()
    }
    job.bytesRead = stopped || !stream ? Math.max(job.bytesRead, stream ? input.bytesRead() : 0) : Math.max(input.bytesRead(), job.bytesTotal)

    // Exact totals over every run of the job, from the counts kept with the appends.
    const totals = await importTotals(redis, keys, config.partitions, jobId)
    job.eventsAppended = totals.events
    job.duplicates = totals.duplicates
    await progress.flush()
    if (stopped) {
      const { bad: s, fromRow } = stopped as { bad: BadRow; fromRow: number }
      job.status = 'stopped'
      job.error = `row ${s.row}${s.path ? ` ${s.path}` : ''}: ${s.reason}; stopped (on_error=stop): the rows before row ${fromRow} are imported, nothing from row ${fromRow} on`
      await updateImport(db, jobId, { status: 'stopped', error: job.error, eventsAppended: job.eventsAppended, duplicates: job.duplicates, badRows: job.badRows })
    } else {
      // Done at once if the drain already committed everything; else the drain marks it done.
      const { rows } = await sql<{ status: ImportRow['status'] }>`
        UPDATE imports SET status = CASE WHEN events_committed >= ${totals.events} THEN 'done' ELSE 'committing' END,
          finished_at = CASE WHEN events_committed >= ${totals.events} THEN now() ELSE NULL END,
          events_appended = ${totals.events}, duplicates = ${totals.duplicates}, bytes_read = ${job.bytesRead}, rows_read = ${job.rowsRead}, updated_at = now()
        WHERE id = ${jobId} RETURNING status`.execute(db)
      job.status = rows[0]?.status ?? 'committing'
    }
    await announceImports(deps).catch(() => undefined)
    log.info({ importId: jobId, status: job.status, rows: job.rowsRead, events: job.eventsAppended, duplicates: job.duplicates, badRows: job.badRows }, 'import appended')

    if (!opts.noWait) {
      for (;;) {
        const now = await getImport(db, jobId)
        if (!now) break
        Object.assign(job, { eventsCommitted: now.eventsCommitted, status: now.status, finishedAt: now.finishedAt })
        if (now.eventsCommitted >= job.eventsAppended) break
        opts.onProgress?.({ ...job }, 'committing')
        await new Promise((r) => setTimeout(r, COMMIT_POLL_MS))
      }
      if (job.status === 'done') await forgetImportJob(redis, keys, config.partitions, jobId)
    }
    const final = (await getImport(db, jobId, true)) as ImportRow
    opts.onProgress?.(final, 'finished')
    log.info({ importId: jobId, status: final.status, committed: final.eventsCommitted }, 'import finished')
    return final
  } catch (err) {
    if (!(err instanceof ImportBusy)) {
      await updateImport(db, jobId, { status: 'failed', error: (err as Error).message }).catch(() => undefined)
      await announceImports(deps).catch(() => undefined)
    }
    throw err
  } finally {
    await lock.release()
  }
}

/** Holds the importer back while the drain is far behind it. */
class Backlog {
  constructor(
    private readonly db: Db,
    private readonly jobId: number,
    private committed: number,
  ) {}

  async wait(appended: number): Promise<void> {
    while (appended - this.committed > MAX_BACKLOG_EVENTS) {
      await new Promise((r) => setTimeout(r, COMMIT_POLL_MS))
      const { rows } = await sql<{ n: number }>`SELECT events_committed AS n FROM imports WHERE id = ${this.jobId}`.execute(this.db)
      this.committed = Number(rows[0]?.n ?? this.committed)
    }
  }
}

interface ChunkAppender<E> {
  validate(rows: readonly RawRow[], firstRecord: number): { events: E[]; bad: BadRow[] }
  send(chunk: number, events: readonly E[]): ReturnType<typeof appendImportChunk>
}

function chunkAppender<E extends { source: string; id: string; ts: number }>(
  deps: ImportDeps,
  job: ImportRow,
  kind: (typeof EVENT_KINDS)[keyof typeof EVENT_KINDS],
  validator: BatchValidator<E>,
  orderKey: (e: E) => string,
): ChunkAppender<E> {
  const { redis, keys, config } = deps
  return {
    validate(rows, firstRecord) {
      const now = Date.now()
      const result = validator(
        rows.map((r) => r.item),
        now,
      )
      if (result.ok) return { events: result.events, bad: [] }
      const bad = result.errors.map((e) => {
        const r = rows[e.index] as RawRow
        return { row: r.row, path: e.path, reason: e.reason, record: firstRecord + e.index }
      })
      const badIndex = new Set(result.errors.map((e) => e.index))
      const again = validator(
        rows.filter((_, i) => !badIndex.has(i)).map((r) => r.item),
        now,
      )
      return { events: again.ok ? again.events : [], bad }
    },
    send(chunk, events) {
      return appendImportChunk(redis, keys, config.partitions, config.dedupWindowSec, kind, job.id, chunk, events, orderKey, Date.now())
    },
  }
}

/** Writes the job's progress to its row and announces it, at most every PROGRESS_EVERY_MS, one write at a time. */
class ProgressWriter {
  private writing: Promise<void> = Promise.resolve()
  private lastAt = 0
  private dirtyBad = false

  constructor(
    private readonly deps: ImportDeps,
    private readonly job: ImportRow,
    private readonly badList: BadRow[],
    private readonly opts: RunOptions,
  ) {}

  addBad(bad: readonly BadRow[]): void {
    for (const b of bad) {
      if (this.badList.length >= MAX_LISTED_BAD_ROWS) break
      this.badList.push(b)
      this.dirtyBad = true
    }
  }

  now(phase: ImportPhase): void {
    this.opts.onProgress?.({ ...this.job }, phase)
  }

  soon(phase: ImportPhase): void {
    this.now(phase)
    if (Date.now() - this.lastAt < PROGRESS_EVERY_MS) return
    this.lastAt = Date.now()
    this.writing = this.writing.then(() => this.write()).catch((err: Error) => this.deps.log.warn({ importId: this.job.id, err }, 'import progress not recorded'))
  }

  async flush(): Promise<void> {
    await this.writing
    await this.write()
  }

  private async write(): Promise<void> {
    const j = this.job
    const bad = this.dirtyBad ? { badRowList: [...this.badList] } : {}
    this.dirtyBad = false
    await updateImport(this.deps.db, j.id, {
      bytesRead: j.bytesRead,
      rowsRead: j.rowsRead,
      chunksSent: j.chunksSent,
      rowsSent: j.rowsSent,
      eventsAppended: j.eventsAppended,
      duplicates: j.duplicates,
      badRows: j.badRows,
      badRowsSent: j.badRowsSent,
      ...bad,
    })
    await announceImports(this.deps).catch(() => undefined)
  }
}
