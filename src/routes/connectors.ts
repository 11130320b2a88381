import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { SOURCE_PATTERN } from '../schemas/metric-event.js'
import { compileMapping, MappingError, TS_FORMATS, type CompiledMappings, type MappingSpec } from '../connectors/mqtt/mapping.js'
import { topicFilterProblem } from '../connectors/mqtt/topic.js'
import { mqttKeys, readStatuses, type ConnectorStatus } from '../connectors/mqtt/status.js'
import { DEFAULT_SUPERVISOR } from '../connectors/mqtt/supervisor.js'
import { redactUrl } from '../connectors/mqtt/connector.js'
import {
  ClientIdTaken,
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  presentSubscription,
  updateSubscription,
  type MqttSubscription,
  type SubscriptionInput,
} from '../connectors/mqtt/subscriptions.js'

const BROKER_PROTOCOLS = ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'ws:', 'wss:']
const DEFAULT_SESSION_EXPIRY_S = 7 * 86_400

const MappingDoc =
  'One mapping or a list (one event per mapping and message). Fields: metric (template), value (reference or number), ts (reference; absent: arrival time), ' +
  `tsFormat (${TS_FORMATS.join('|')}), dims (name -> template), id (template; absent: derived from topic and payload), optional (skip when value is missing). ` +
  'References: $ (the payload), $.a.b, $.list[0], $["pm2.5"], topic[n] (topic level n from 0; topic[-1] the last). Templates: text with {reference} placeholders, e.g. "air.{topic[3]}".'

const SubscriptionBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    brokerUrl: Type.String({ minLength: 1, maxLength: 2048, description: 'mqtt://host:1883, mqtts://host:8883, ws:// or wss://' }),
    topics: Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), { minItems: 1, maxItems: 100, description: 'topic filters; + matches one level, # the rest' }),
    qos: Type.Optional(Type.Union([Type.Literal(0), Type.Literal(1)], { description: 'subscription QoS (default 1: at least once, acknowledged once in the log)' })),
    mapping: Type.Unknown({ description: MappingDoc }),
    source: Type.Optional(Type.String({ pattern: SOURCE_PATTERN, description: 'source name of the events (default mqtt-<id>)' })),
    clientId: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'MQTT client id, fixed so the broker keeps the session (default lantern-<prefix>-mqtt-<id>)' })),
    username: Type.Optional(Type.String({ maxLength: 512 })),
    password: Type.Optional(Type.String({ maxLength: 2048, description: 'write-only; on update, absent keeps the stored one and null removes it' })),
    protocolVersion: Type.Optional(Type.Union([Type.Literal(4), Type.Literal(5)], { description: 'MQTT 3.1.1 (4) or 5 (default)' })),
    sessionExpirySec: Type.Optional(Type.Integer({ minimum: 60, maximum: 4_294_967_295, description: `MQTT 5: how long the broker keeps the session while Lantern is away (default ${DEFAULT_SESSION_EXPIRY_S})` })),
    enabled: Type.Optional(Type.Boolean({ default: true })),
  },
  {
    additionalProperties: false,
    examples: [
      {
        name: 'Hue air stations',
        brokerUrl: 'mqtt://broker.example.org:1883',
        topics: ['env/+/+/air', 'env/bulk/#'],
        qos: 1,
        mapping: { metric: 'air.{$.type}', value: '$.reading.value', ts: '$.time', dims: { province: 'topic[1]', station: 'topic[2]' } },
      },
    ],
  },
)
type SubscriptionBody = Static<typeof SubscriptionBody>

const idParam = Type.Object({ id: Type.Integer({ minimum: 1 }) })

function checkBrokerUrl(raw: string): string {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new AppError('BAD_REQUEST', `brokerUrl must be an absolute URL such as mqtt://host:1883, got "${raw.slice(0, 200)}"`)
  }
  if (!BROKER_PROTOCOLS.includes(u.protocol)) throw new AppError('BAD_REQUEST', `brokerUrl must use ${BROKER_PROTOCOLS.map((p) => p.slice(0, -1)).join(', ')}, got "${u.protocol.slice(0, -1)}"`)
  if (!u.hostname) throw new AppError('BAD_REQUEST', 'brokerUrl names no host')
  return raw
}

/** Validates a body and returns the subscription to store and its compiled mapping; every problem is named. */
function checkBody(b: SubscriptionBody, maxDims: number): { input: SubscriptionInput; compiled: CompiledMappings } {
  const brokerUrl = checkBrokerUrl(b.brokerUrl)
  const topicProblems = b.topics.map((f, i) => [f, i, topicFilterProblem(f)] as const).filter(([, , p]) => p !== null)
  if (topicProblems.length > 0) {
    throw new AppError('BAD_REQUEST', `invalid topic filter: ${topicProblems.map(([f, i, p]) => `topics[${i}] "${f}" ${p}`).join('; ')}`)
  }
  if (new Set(b.topics).size !== b.topics.length) throw new AppError('BAD_REQUEST', 'topics lists a filter twice')
  let compiled: CompiledMappings
  try {
    compiled = compileMapping(b.mapping, b.topics, { maxDims })
  } catch (err) {
    if (err instanceof MappingError) throw new AppError('BAD_REQUEST', `invalid mapping: ${err.message}`)
    throw err
  }
  return {
    input: {
      name: b.name,
      brokerUrl,
      topics: b.topics,
      qos: b.qos ?? 1,
      mapping: b.mapping as MappingSpec | MappingSpec[],
      source: b.source ?? null,
      clientId: b.clientId ?? null,
      username: b.username ?? null,
      password: b.password,
      protocolVersion: b.protocolVersion ?? 5,
      sessionExpirySec: b.sessionExpirySec ?? DEFAULT_SESSION_EXPIRY_S,
      enabled: b.enabled ?? true,
    },
    compiled,
  }
}

export const connectorRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { db, config, redis } = rt
  const keys = mqttKeys(config.keyPrefix)
  const ttlMs = DEFAULT_SUPERVISOR.lockTtlMs

  const statusOf = async (ids: string[]): Promise<Map<string, ConnectorStatus | null>> => {
    try {
      return await readStatuses(redis, keys, ids, ttlMs)
    } catch {
      return new Map(ids.map((id) => [id, null]))
    }
  }
  const present = (s: MqttSubscription, status: ConnectorStatus | null | undefined) => {
    let redeliveryDeduped = false
    try {
      redeliveryDeduped = compileMapping(s.mapping, s.topics, { maxDims: config.maxDims }).timeFromMessage
    } catch {
      // shown as false; the status says why it does not run
    }
    return { ...presentSubscription(s), brokerUrl: redactUrl(s.brokerUrl), redeliveryDeduped, status: status ?? null }
  }
  const notify = async (): Promise<void> => {
    await redis.publish(keys.changed, '1').catch(() => undefined)
  }
  const conflict = (err: unknown): never => {
    if (err instanceof ClientIdTaken) throw new AppError('BAD_REQUEST', `clientId: ${err.message}; give another clientId`)
    throw err
  }

  const tags = ['sources']
  const description =
    'A worker runs one MQTT client per subscription (persistent session, fixed client id). A QoS 1 message is acknowledged to the broker only once its events are in the log, ' +
    'so messages published while Lantern is down or restarting are delivered later and counted once. A message that cannot be mapped is counted as rejected and shown in the status; it never stops the connector. ' +
    '`redeliveryDeduped` says whether a redelivered message maps to the same event ids (the mapping takes ts or id from the message).'

  app.post(
    '/v1/connectors/mqtt',
    { schema: { tags, summary: 'Create an MQTT subscription with its mapping to metric events', description, body: SubscriptionBody, response: { 201: Type.Unknown(), 400: ErrorBody } } },
    async (req, reply) => {
      const { input } = checkBody(req.body as SubscriptionBody, config.maxDims)
      const created = await createSubscription(db, input, config.keyPrefix).catch(conflict)
      await notify()
      req.log.info({ subscription: created.id, broker: redactUrl(created.brokerUrl), topics: created.topics }, 'mqtt subscription created')
      return reply.code(201).send(present(created, null))
    },
  )

  app.get('/v1/connectors/mqtt', { schema: { tags, summary: 'MQTT subscriptions with their live status', description } }, async () => {
    const subs = await listSubscriptions(db)
    const statuses = await statusOf(subs.map((s) => s.id))
    return { subscriptions: subs.map((s) => present(s, statuses.get(s.id))) }
  })

  app.get(
    '/v1/connectors/mqtt/:id',
    { schema: { tags, summary: 'One MQTT subscription: settings and status (connected, last message, messages, accepted, rejected, last error)', params: idParam, response: { 404: ErrorBody } } },
    async (req) => {
      const { id } = req.params as { id: number }
      const s = await getSubscription(db, id)
      if (!s) throw new AppError('NOT_FOUND', `no MQTT subscription ${id}`)
      return present(s, (await statusOf([s.id])).get(s.id))
    },
  )

  app.put(
    '/v1/connectors/mqtt/:id',
    {
      schema: {
        tags,
        summary: 'Replace an MQTT subscription; its connector restarts with the new settings (the broker session and counters are kept)',
        params: idParam,
        body: SubscriptionBody,
        response: { 200: Type.Unknown(), 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => {
      const { id } = req.params as { id: number }
      const { input } = checkBody(req.body as SubscriptionBody, config.maxDims)
      const updated = await updateSubscription(db, id, input, config.keyPrefix).catch(conflict)
      if (!updated) throw new AppError('NOT_FOUND', `no MQTT subscription ${id}`)
      await notify()
      req.log.info({ subscription: updated.id, topics: updated.topics, enabled: updated.enabled }, 'mqtt subscription updated')
      return present(updated, (await statusOf([updated.id])).get(updated.id))
    },
  )

  app.delete(
    '/v1/connectors/mqtt/:id',
    { schema: { tags, summary: 'Delete an MQTT subscription: its connector unsubscribes and ends its broker session', params: idParam, response: { 204: Type.Null(), 404: ErrorBody } } },
    async (req, reply) => {
      const { id } = req.params as { id: number }
      if (!(await deleteSubscription(db, id))) throw new AppError('NOT_FOUND', `no MQTT subscription ${id}`)
      await redis.del(keys.status(String(id))).catch(() => undefined)
      await notify()
      req.log.info({ subscription: String(id) }, 'mqtt subscription deleted')
      return reply.code(204).send()
    },
  )
}
