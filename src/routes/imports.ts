import { createHash, randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { Redis } from 'ioredis'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { NDJSON_TYPES } from '../ingest/parse-body.js'
import {
  addUploadPart,
  createImport,
  deleteImport,
  findImportByFile,
  getImport,
  importLocked,
  listImports,
  moveUpload,
  setImportFile,
  updateImport,
  type ImportFormat,
  type ImportRow,
} from '../repositories/imports.repository.js'
import { announceImports } from '../import/run-import.js'
import { importQueue } from '../../workers/import.worker.js'

/** Largest file one upload may hold; kept in PostgreSQL until a worker has read it. */
export const MAX_IMPORT_UPLOAD_BYTES = 1024 * 1024 * 1024
/** Upload parts as stored. */
const PART_BYTES = 1024 * 1024

const CSV_TYPES = ['text/csv', 'application/csv']
const RAW_TYPES = ['application/octet-stream', 'text/plain']

const ImportQuery = Type.Object(
  {
    kind: Type.Union([Type.Literal('metric'), Type.Literal('report')], { description: 'what the rows are: metric samples or report (case) events' }),
    format: Type.Optional(Type.Union([Type.Literal('csv'), Type.Literal('ndjson')], { description: 'default: from the content type (text/csv or application/x-ndjson)' })),
    on_error: Type.Optional(Type.Union([Type.Literal('stop'), Type.Literal('skip')], { description: 'a bad row stops the import (default) or is skipped; either way it is reported' })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'a name to show for the file' })),
  },
  { additionalProperties: false },
)
type ImportQuery = Static<typeof ImportQuery>

const CONTRACT =
  'The body is the file itself (CSV with a header row, or NDJSON), streamed: it is kept until a worker has imported it. A file imported before (same bytes, kind and format) is not imported again: 200 with alreadyImported and the earlier job. A file whose earlier import stopped, failed or was cut off resumes that job. Progress: GET /v1/imports/{id} and the live topic {"kind":"imports"}.'

export const importRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { db } = rt
  const connection = new Redis(rt.config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true, connectionName: 'lantern-api-imports' })
  connection.on('error', () => undefined)
  const queue = importQueue(rt, connection)
  app.addHook('onClose', async () => {
    await queue.close()
    connection.disconnect()
  })

  // The file is read as a stream by the route itself: never buffered whole.
  app.removeContentTypeParser(['application/json', 'text/plain'])
  app.addContentTypeParser([...CSV_TYPES, ...NDJSON_TYPES, ...RAW_TYPES], (_req, payload, done) => done(null, payload))

  const enqueue = async (job: ImportRow): Promise<void> => {
    if (connection.status === 'wait') await connection.connect()
    await queue.add('import', { importId: job.id }, { jobId: `import-${job.id}-${Date.now()}`, removeOnComplete: 100, removeOnFail: 100, attempts: 5, backoff: { type: 'exponential', delay: 2000 } })
  }

  app.post(
    '/v1/imports',
    {
      bodyLimit: MAX_IMPORT_UPLOAD_BYTES,
      schema: {
        tags: ['ingest'],
        summary: 'Import a history file (CSV or NDJSON of metric or report events) as a job run by a worker',
        description: CONTRACT,
        querystring: ImportQuery,
        response: { 200: Type.Unknown(), 202: Type.Unknown(), 400: ErrorBody, 409: ErrorBody, 413: ErrorBody, 415: ErrorBody, 503: ErrorBody },
      },
    },
    async (req, reply) => {
      const q = req.query as ImportQuery
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
      const format: ImportFormat | undefined = q.format ?? (CSV_TYPES.includes(contentType) ? 'csv' : NDJSON_TYPES.includes(contentType) ? 'ndjson' : undefined)
      if (!format) throw new AppError('BAD_REQUEST', 'say the format: ?format=csv|ndjson, or send text/csv or application/x-ndjson')
      const onError = q.on_error ?? 'stop'
      const name = q.name ?? `upload.${format}`
      const upload = await createImport(db, { sha256: `upload:${randomUUID()}`, name, format, kind: q.kind, onError, origin: 'api', status: 'uploading', bytesTotal: 0 })
      let sha256: string
      let bytes: number
      try {
        ;({ sha256, bytes } = await storeUpload(rt, upload.id, req.body as Readable))
      } catch (err) {
        await deleteImport(db, upload.id).catch(() => undefined)
        throw err
      }
      if (bytes === 0) {
        await deleteImport(db, upload.id)
        throw new AppError('EMPTY_BATCH', 'the file is empty')
      }

      let job: ImportRow
      if (await setImportFile(db, upload.id, sha256, bytes, 'queued')) {
        job = (await getImport(db, upload.id)) as ImportRow
      } else {
        const earlier = (await findImportByFile(db, sha256, q.kind, format)) as ImportRow
        if (earlier.status === 'done') {
          await deleteImport(db, upload.id)
          req.log.info({ importId: earlier.id, sha256 }, 'import: file already imported')
          return reply.code(200).send({ alreadyImported: true, import: earlier })
        }
        if (await importLocked(rt.config.databaseUrl, earlier.id)) {
          await deleteImport(db, upload.id)
          throw new AppError('CONFLICT', `import ${earlier.id} of this file is running now; follow it at /v1/imports/${earlier.id}`)
        }
        // The same file again after a stop, a failure or a cut-off run: that job resumes.
        await moveUpload(db, upload.id, earlier.id)
        await deleteImport(db, upload.id)
        await updateImport(db, earlier.id, { status: 'queued', onError, origin: 'api', name, bytesTotal: bytes })
        job = (await getImport(db, earlier.id)) as ImportRow
      }
      try {
        await enqueue(job)
      } catch (err) {
        req.log.error({ err, importId: job.id }, 'import not queued')
        await updateImport(db, job.id, { status: 'failed', error: 'the job queue was unavailable; post the file again' }).catch(() => undefined)
        throw new AppError('LOG_UNAVAILABLE', 'the job queue is unavailable; retry later', undefined, { 'retry-after': '2' })
      }
      await announceImports(rt).catch(() => undefined)
      req.log.info({ importId: job.id, sha256, bytes, format, kind: q.kind, onError }, 'import queued')
      return reply.code(202).send(job)
    },
  )

  app.get('/v1/imports', { schema: { tags: ['ingest'], summary: 'Recent history imports with their status and progress' } }, async () => ({ imports: await listImports(db, 50) }))

  app.get(
    '/v1/imports/:id',
    {
      schema: {
        tags: ['ingest'],
        summary: 'One history import: status, rows read, events appended and committed, bad rows with their reasons',
        params: Type.Object({ id: Type.Integer({ minimum: 1 }) }),
        response: { 404: ErrorBody },
      },
    },
    async (req) => {
      const job = await getImport(db, (req.params as { id: number }).id, true)
      if (!job) throw new AppError('NOT_FOUND', 'no such import')
      return job
    },
  )
}

/** Streams the request body into upload parts while hashing it. */
async function storeUpload(rt: Runtime, importId: number, body: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256')
  let bytes = 0
  let seq = 0
  let part: Buffer[] = []
  let partBytes = 0
  const flush = async (): Promise<void> => {
    if (partBytes === 0) return
    await addUploadPart(rt.db, importId, seq++, Buffer.concat(part, partBytes))
    part = []
    partBytes = 0
  }
  for await (const chunk of body as AsyncIterable<Buffer>) {
    bytes += chunk.length
    if (bytes > MAX_IMPORT_UPLOAD_BYTES) throw new AppError('PAYLOAD_TOO_LARGE', `an import file may hold at most ${MAX_IMPORT_UPLOAD_BYTES} bytes; import larger files with npm run import`)
    hash.update(chunk)
    part.push(chunk)
    partBytes += chunk.length
    if (partBytes >= PART_BYTES) await flush()
  }
  await flush()
  return { sha256: hash.digest('hex'), bytes }
}
