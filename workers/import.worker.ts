import { Readable } from 'node:stream'
import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import type { Runtime } from '../src/infra/runtime.js'
import type { Db } from '../src/infra/db.js'
import { deleteUpload, getImport, readUploadParts } from '../src/repositories/imports.repository.js'
import { ImportBusy, runImport, type ImportInput } from '../src/import/run-import.js'

export interface ImportJobData {
  importId: number
}

/** Upload parts read from PostgreSQL at a time (1 MiB each). */
const PARTS_PER_READ = 4

export function importQueue(rt: Runtime, connection: Redis): Queue<ImportJobData> {
  return new Queue<ImportJobData>(rt.keys.importQueue, { connection, prefix: rt.keys.bullPrefix })
}

/** A file uploaded through the API, read back from PostgreSQL as a stream. */
export function uploadInput(db: Db, importId: number, bytesTotal: number): ImportInput {
  let read = 0
  return {
    bytesTotal,
    bytesRead: () => read,
    open() {
      read = 0
      let next = 0
      let done = false
      return new Readable({
        read() {
          if (done) return
          readUploadParts(db, importId, next, PARTS_PER_READ).then(
            (parts) => {
              if (parts.length === 0) {
                done = true
                this.push(null)
                return
              }
              for (const p of parts) {
                next = p.seq + 1
                read += p.data.length
                this.push(p.data)
              }
            },
            (err: Error) => this.destroy(err),
          )
        },
      })
    },
  }
}

/**
 * Runs history imports uploaded through the API (POST /v1/imports), one at a time per worker
 * process. A worker that dies mid-import leaves a stalled job that BullMQ hands to another
 * worker, which resumes it after the last chunk recorded; the upload is kept until the job is
 * done or stopped on a bad row.
 */
export function startImportWorker(rt: Runtime): { close(): Promise<void> } {
  const connection = new Redis(rt.config.redisUrl, { maxRetriesPerRequest: null, connectionName: 'lantern-worker-import' })
  connection.on('error', (err) => rt.log.warn({ err: err.message }, 'queue connection error'))
  const worker = new Worker<ImportJobData>(
    rt.keys.importQueue,
    async (job) => {
      const { importId } = job.data
      const stored = await getImport(rt.db, importId)
      if (!stored || stored.status === 'done') return { status: stored?.status ?? 'missing' }
      let lastAt = 0
      const final = await runImport(rt, importId, uploadInput(rt.db, importId, stored.bytesTotal), {
        onProgress: (p) => {
          if (Date.now() - lastAt < 1000) return
          lastAt = Date.now()
          void job.updateProgress({ rowsRead: p.rowsRead, eventsAppended: p.eventsAppended, eventsCommitted: p.eventsCommitted }).catch(() => undefined)
        },
      })
      if (final.status === 'done' || final.status === 'stopped') await deleteUpload(rt.db, importId)
      return { status: final.status }
    },
    { connection, prefix: rt.keys.bullPrefix, concurrency: 1, lockDuration: 30_000, maxStalledCount: 100 },
  )
  worker.on('failed', (job, err) => {
    if (err instanceof ImportBusy || err.name === 'ImportBusy') rt.log.info({ importId: job?.data.importId }, 'import is running elsewhere; retried later')
    else rt.log.error({ importId: job?.data.importId, err }, 'import failed; retried with backoff')
  })
  worker.on('error', (err) => rt.log.warn({ err: err.message }, 'import worker error'))
  return {
    async close() {
      await worker.close()
      connection.disconnect()
    },
  }
}
