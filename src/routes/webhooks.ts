import { randomBytes } from 'node:crypto'
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { Redis } from 'ioredis'
import type { Queue } from 'bullmq'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { METRIC_PATTERN } from '../schemas/metric-event.js'
import { ALERT_STATUSES } from '../schemas/alert-event.js'
import { DEFAULT_WEBHOOK_STATUSES, deliveryJob, webhookQueue, type WebhookJobData } from '../services/alert-dispatch.js'
import {
  createWebhook,
  deleteWebhook,
  getDelivery,
  getWebhook,
  listDeliveries,
  listWebhooks,
  markDeadAgain,
  reviveDead,
  type DeliveryStatus,
  type WebhookFilter,
} from '../repositories/webhooks.repository.js'

const list = <T extends ReturnType<typeof Type.String> | ReturnType<typeof Type.Union>>(item: T, description: string) =>
  Type.Optional(Type.Array(item, { minItems: 1, maxItems: 100, description }))

const Filter = Type.Object(
  {
    severities: list(Type.String({ minLength: 1, maxLength: 64 }), 'only rules of these severities'),
    ruleIds: list(Type.String({ pattern: '^[1-9][0-9]{0,17}$' }), 'only these rules'),
    statuses: list(Type.Union(ALERT_STATUSES.map((s) => Type.Literal(s))), `only these changes (default ${DEFAULT_WEBHOOK_STATUSES.join(', ')})`),
    metrics: list(Type.String({ pattern: METRIC_PATTERN }), 'only series of these metrics'),
  },
  { additionalProperties: false, description: 'which alert changes the webhook receives; an absent list matches all' },
)

const WebhookBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    url: Type.String({ minLength: 1, maxLength: 2048, description: 'http or https URL the changes are POSTed to' }),
    secret: Type.Optional(Type.String({ minLength: 16, maxLength: 256, description: 'HMAC-SHA256 key of X-Lantern-Signature; generated when absent' })),
    filter: Type.Optional(Filter),
  },
  {
    additionalProperties: false,
    examples: [{ name: 'on-call bot', url: 'https://oncall.example.org/hooks/lantern', filter: { severities: ['critical'], statuses: ['firing', 'resolved'] } }],
  },
)
type WebhookBody = Static<typeof WebhookBody>

const DELIVERY_STATUSES = ['pending', 'delivered', 'dead'] as const
const DeliveryQuery = Type.Object(
  {
    status: Type.Optional(Type.Union(DELIVERY_STATUSES.map((s) => Type.Literal(s)))),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    before: Type.Optional(Type.Integer({ minimum: 1, description: 'the `next` cursor of the previous page (a delivery id)' })),
  },
  { additionalProperties: false },
)
type DeliveryQuery = Static<typeof DeliveryQuery>
const DeadLetterQuery = Type.Omit(DeliveryQuery, ['status'], { additionalProperties: false })

const idParam = Type.Object({ id: Type.Integer({ minimum: 1 }) })

function checkUrl(raw: string): string {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new AppError('BAD_REQUEST', `url must be an absolute http or https URL, got "${raw.slice(0, 200)}"`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new AppError('BAD_REQUEST', `url must use http or https, got "${u.protocol}"`)
  return u.toString()
}

/** XINFO replies are flat [field, value, ...] lists. */
const pairs = (reply: unknown[]): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = reply[i + 1]
  return out
}
const entryId = (entry: unknown): string | null => (Array.isArray(entry) ? String(entry[0]) : null)
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v))

export const webhookRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { db, config } = rt
  // The retry endpoint's queue: made on first use, so an API that never retries holds no extra connection.
  let queueConnection: Redis | null = null
  let queue: Queue<WebhookJobData> | null = null
  const getQueue = async (): Promise<Queue<WebhookJobData>> => {
    if (!queueConnection) {
      queueConnection = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true, connectionName: 'lantern-api-webhooks' })
      queueConnection.on('error', () => undefined)
      queue = webhookQueue(rt, queueConnection)
    }
    if (queueConnection.status === 'wait') await queueConnection.connect()
    return queue as Queue<WebhookJobData>
  }
  app.addHook('onClose', async () => {
    await queue?.close()
    queueConnection?.disconnect()
  })

  app.post(
    '/v1/webhooks',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Register a webhook: alert changes matching its filter are POSTed to it, signed, retried, in order per series',
        description: 'The response holds the signing secret; it is never shown again.',
        body: WebhookBody,
        response: { 201: Type.Unknown(), 400: ErrorBody },
      },
    },
    async (req, reply) => {
      const b = req.body as WebhookBody
      const url = checkUrl(b.url)
      const secret = b.secret ?? `whsec_${randomBytes(32).toString('base64url')}`
      const filter: WebhookFilter = { ...b.filter, statuses: b.filter?.statuses ?? [...DEFAULT_WEBHOOK_STATUSES] }
      const created = await createWebhook(db, { name: b.name, url, secret, filter })
      req.log.info({ webhookId: created.id, url: created.url, filter }, 'webhook registered')
      return reply.code(201).send({ ...created, secret })
    },
  )

  app.get('/v1/webhooks', { schema: { tags: ['alerts'], summary: 'Registered webhooks (without their secrets)' } }, async () => ({ webhooks: await listWebhooks(db) }))

  app.get('/v1/webhooks/:id', { schema: { tags: ['alerts'], summary: 'One webhook (without its secret)', params: idParam, response: { 404: ErrorBody } } }, async (req) => {
    const { id } = req.params as { id: number }
    const w = await getWebhook(db, id)
    if (!w) throw new AppError('NOT_FOUND', `no webhook ${id}`)
    return w
  })

  app.delete(
    '/v1/webhooks/:id',
    { schema: { tags: ['alerts'], summary: 'Remove a webhook with its deliveries; queued tries are dropped', params: idParam, response: { 204: Type.Null(), 404: ErrorBody } } },
    async (req, reply) => {
      const { id } = req.params as { id: number }
      if (!(await deleteWebhook(db, id))) throw new AppError('NOT_FOUND', `no webhook ${id}`)
      req.log.info({ webhookId: String(id) }, 'webhook removed')
      return reply.code(204).send()
    },
  )

  app.get(
    '/v1/webhooks/:id/deliveries',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Deliveries of one webhook, newest first: status, tries, the last error and the event',
        params: idParam,
        querystring: DeliveryQuery,
        response: { 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => {
      const { id } = req.params as { id: number }
      const q = req.query as DeliveryQuery
      if (!(await getWebhook(db, id))) throw new AppError('NOT_FOUND', `no webhook ${id}`)
      const deliveries = await listDeliveries(db, { webhookId: id, status: (q.status as DeliveryStatus | undefined) ?? null, limit: q.limit, before: q.before ?? null })
      return { deliveries, next: deliveries.length === q.limit ? Number(deliveries[deliveries.length - 1]!.id) : null }
    },
  )

  app.get(
    '/v1/dead-letters',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Dead-letter list: deliveries of every webhook that failed their last try, newest first',
        description: 'POST /v1/dead-letters/{id}/retry sends one again with a fresh set of tries.',
        querystring: DeadLetterQuery,
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as Omit<DeliveryQuery, 'status'>
      const deliveries = await listDeliveries(db, { webhookId: null, status: 'dead', limit: q.limit, before: q.before ?? null })
      return { deliveries, next: deliveries.length === q.limit ? Number(deliveries[deliveries.length - 1]!.id) : null }
    },
  )

  app.post(
    '/v1/dead-letters/:id/retry',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Queue a dead delivery again with a fresh set of tries',
        description: 'It goes out as soon as it can, even if later changes of its series were delivered meanwhile (the event id tells the receiver).',
        params: idParam,
        response: { 202: Type.Unknown(), 400: ErrorBody, 404: ErrorBody, 503: ErrorBody },
      },
    },
    async (req, reply) => {
      const { id } = req.params as { id: number }
      const revived = await reviveDead(db, id)
      if (!revived) {
        const d = await getDelivery(db, id)
        if (!d) throw new AppError('NOT_FOUND', `no delivery ${id}`)
        throw new AppError('BAD_REQUEST', `delivery ${id} is ${d.status}: only a dead delivery can be retried`)
      }
      try {
        const job = deliveryJob(config, id, `-r${revived.attempts}`)
        await (await getQueue()).add(job.name, job.data, job.opts)
      } catch (err) {
        await markDeadAgain(db, id)
        req.log.error({ err, deliveryId: String(id) }, 'dead delivery not queued again')
        throw new AppError('LOG_UNAVAILABLE', 'the job queue is unavailable; retry later', undefined, { 'retry-after': '2' })
      }
      const ids = { deliveryId: String(id), webhookId: String(revived.webhookId), alertEventId: String(revived.alertEventId), seriesId: String(revived.seriesId) }
      req.log.info(ids, 'dead delivery queued again')
      return reply.code(202).send(await getDelivery(db, id))
    },
  )

  app.get(
    '/v1/alert-stream',
    {
      schema: {
        tags: ['alerts'],
        summary: 'The Redis alert stream consumers read with consumer groups: length, first and last entry, each group and its lag',
        description: 'Each entry has fields id, series, status and event (the alert change as JSON). Consumer groups: XGROUP CREATE <key> <group> 0, then XREADGROUP / XACK.',
      },
    },
    async () => {
      const key = rt.keys.alertStream
      const base = { key, maxLen: config.alertStreamMaxLen }
      if ((await rt.redis.exists(key)) === 0) return { ...base, length: 0, firstEntryId: null, lastEntryId: null, lastGeneratedId: null, entriesAdded: 0, groups: [] }
      const [info, groups] = await Promise.all([
        rt.redis.call('XINFO', 'STREAM', key) as Promise<unknown[]>,
        rt.redis.call('XINFO', 'GROUPS', key) as Promise<unknown[][]>,
      ])
      const s = pairs(info)
      return {
        ...base,
        length: Number(s.length),
        firstEntryId: entryId(s['first-entry']),
        lastEntryId: entryId(s['last-entry']),
        lastGeneratedId: s['last-generated-id'] ?? null,
        entriesAdded: numOrNull(s['entries-added']),
        groups: groups.map((g) => {
          const x = pairs(g)
          return {
            name: String(x.name),
            consumers: Number(x.consumers),
            pending: Number(x.pending),
            lastDeliveredId: String(x['last-delivered-id']),
            entriesRead: numOrNull(x['entries-read']),
            // Entries not yet delivered to the group; null when Redis cannot tell (after trims or deletions).
            lag: numOrNull(x.lag),
          }
        }),
      }
    },
  )
}
