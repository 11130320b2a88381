import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import { Redis } from 'ioredis'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { instantParam } from '../schemas/query.js'
import { MAX_EPOCH_MS } from '../schemas/metric-event.js'
import { createAudit, getAudit, listAudits } from '../repositories/audits.repository.js'
import { announceAudit, auditQueue } from '../../workers/audit.worker.js'

export const auditRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const connection = new Redis(rt.config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true, connectionName: 'lantern-api-audits' })
  connection.on('error', () => undefined)
  const queue = auditQueue(rt, connection)
  app.addHook('onClose', async () => {
    await queue.close()
    connection.disconnect()
  })
  const idParam = Type.Object({ id: Type.Integer({ minimum: 1 }) })

  app.post(
    '/v1/audits',
    {
      schema: {
        tags: ['audit'],
        summary: 'Queue an audit of a time range: a worker re-derives it from the raw log and records every difference',
        description: 'Progress and the result: GET /v1/audits/{id}, and live on the topic {"kind":"audits"}.',
        body: Type.Object({ from: Type.String(), to: Type.String() }, { additionalProperties: false }),
        response: { 202: Type.Unknown(), 400: ErrorBody, 503: ErrorBody },
      },
    },
    async (req, reply) => {
      const b = req.body as { from: string; to: string }
      const fromMs = instantParam('from', b.from, 0)
      const toMs = Math.min(instantParam('to', b.to, MAX_EPOCH_MS), MAX_EPOCH_MS)
      if (toMs <= fromMs) throw new AppError('BAD_REQUEST', '`to` must be after `from`')
      const audit = await createAudit(rt.db, fromMs, toMs)
      try {
        if (connection.status === 'wait') await connection.connect()
        await queue.add('audit', { auditId: audit.id, fromMs, toMs }, { jobId: `audit-${audit.id}`, removeOnComplete: 100, removeOnFail: 100 })
      } catch (err) {
        req.log.error({ err, auditId: audit.id }, 'audit not queued')
        throw new AppError('LOG_UNAVAILABLE', 'the job queue is unavailable; retry later', undefined, { 'retry-after': '2' })
      }
      await announceAudit(rt).catch(() => undefined)
      req.log.info({ auditId: audit.id, fromMs, toMs }, 'audit queued')
      return reply.code(202).send(audit)
    },
  )

  app.get('/v1/audits', { schema: { tags: ['audit'], summary: 'Recent audits with their status and progress' } }, async () => ({ audits: await listAudits(rt.db, 50) }))

  app.get(
    '/v1/audits/:id',
    { schema: { tags: ['audit'], summary: 'One audit: status, events replayed so far, and when done the report of differences', params: idParam, response: { 404: ErrorBody } } },
    async (req) => {
      const audit = await getAudit(rt.db, (req.params as { id: number }).id)
      if (!audit) throw new AppError('NOT_FOUND', 'no such audit')
      return audit
    },
  )
}
