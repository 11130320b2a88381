import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody, type EventError } from '../errors.js'
import { EVENT_KINDS } from '../schemas/log-entry.js'
import { seriesKey } from '../domain/series-key.js'
import { makeMetricValidator } from '../ingest/validate-events.js'
import { appendEvents } from '../ingest/append-log.js'
import { fromLdNotification, fromV2Notification, parseNgsiQuery, QueryProblem, type NgsiOptions, type NgsiResult } from '../connectors/ngsi/notification.js'

/** Skipped attributes listed in one response; skippedCount carries the total. */
const MAX_LISTED_SKIPPED = 1000

const NotifyAccepted = Type.Object({
  accepted: Type.Integer({ description: 'events appended to the log' }),
  duplicates: Type.Integer({ description: 'events already accepted (the same notification sent again)' }),
  events: Type.Integer({ description: 'numeric attributes turned into events' }),
  skipped: Type.Array(Type.Object({ entity: Type.String(), attribute: Type.String(), reason: Type.String() }), { description: 'attributes that are not numbers, with the reason' }),
  skippedCount: Type.Integer(),
})

const QUERY_DOC =
  'Query: metric_prefix (default ngsi; metric = <prefix>.<attribute>), metric.<attribute>=<metric> (a name of its own), source (default ngsi), ' +
  'dims.<name>=<value> (constant dims), dim_attrs=a,b (text attributes that become dims), attrs=a,b (only these attributes). ' +
  'Dims entity_id and entity_type always. Time: the attribute\'s observedAt (LD) or TimeInstant metadata (v2), else the entity\'s TimeInstant/dateObserved (v2), else notifiedAt (LD), else arrival. ' +
  'A body that is not a notification, or an attribute that makes an invalid event, is a 400 and nothing is written; non-numeric attributes are skipped and listed. 202 once every event is in the log.'

export const ngsiRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { config, redis, metrics } = rt
  const limits = { maxDims: config.maxDims, maxDimValueLength: config.maxDimValueLength, maxFutureMs: config.maxFutureSec * 1000 }
  const validate = makeMetricValidator(limits)

  // NGSI-LD brokers may send application/ld+json; both are plain JSON here.
  app.addContentTypeParser('application/ld+json', { parseAs: 'string', bodyLimit: config.maxBodyBytes }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string))
    } catch (err) {
      done(new AppError('INVALID_JSON', `body is not valid JSON: ${(err as Error).message}`), undefined)
    }
  })

  const handler = (convert: (body: unknown, opts: NgsiOptions, arrivedAt: number) => NgsiResult, label: string) => async (req: FastifyRequest, reply: FastifyReply) => {
    let opts: NgsiOptions
    try {
      opts = parseNgsiQuery(req.query as Record<string, unknown>, limits)
    } catch (err) {
      if (err instanceof QueryProblem) throw new AppError('BAD_REQUEST', err.message)
      throw err
    }
    const now = Date.now()
    const converted = convert(req.body, opts, now)
    if (!converted.ok) {
      metrics.eventsRejected.inc({ kind: label, reason: 'invalid' }, 1)
      const errors: EventError[] = converted.problems.map((p, index) => ({ index, path: p.path, reason: p.reason }))
      throw new AppError('INVALID_EVENTS', `not an ${label === 'ngsi-v2' ? 'NGSI-v2' : 'NGSI-LD'} notification: ${converted.problems.slice(0, 3).map((p) => `${p.path || 'body'} ${p.reason}`).join('; ')}; nothing was written`, errors)
    }
    if (converted.events.length > config.maxBatchEvents) {
      throw new AppError('TOO_MANY_EVENTS', `the notification makes ${converted.events.length} events; at most ${config.maxBatchEvents} are accepted in one request`)
    }
    const checked = validate(converted.events, now)
    if (!checked.ok) {
      metrics.eventsRejected.inc({ kind: label, reason: 'invalid' }, checked.errors.length)
      // Point at the attribute (or the time field) of the notification that made the bad event.
      const errors = checked.errors.map((e) => {
        const o = converted.origins[e.index]
        const where = e.path === '/ts' && o?.ts ? o.ts : `${o?.attr ?? ''}`
        const field = e.path === '/ts' ? 'time' : e.path.startsWith('/dims/') ? `dimension ${e.path.slice(6)}` : e.path.slice(1) || 'event'
        return { index: e.index, path: where, reason: `${field} ${e.reason}` }
      })
      throw new AppError('INVALID_EVENTS', `${errors.length} of ${converted.events.length} attributes make invalid events (first: ${errors[0]?.path} ${errors[0]?.reason}); nothing was written`, errors.slice(0, 1000))
    }
    let appended = { accepted: 0, duplicates: 0 }
    if (checked.events.length > 0) {
      try {
        appended = await appendEvents(redis, rt.keys, config.partitions, config.dedupWindowSec, EVENT_KINDS.metric, checked.events, (e) => seriesKey(e.metric, e.dims), now)
      } catch (err) {
        req.log.error({ err }, 'append to log failed')
        throw new AppError('LOG_UNAVAILABLE', 'the event log is unavailable; nothing was acknowledged, retry later (ids make retries safe)', undefined, { 'retry-after': '2' })
      }
    }
    metrics.eventsAccepted.inc({ kind: label }, appended.accepted)
    if (appended.duplicates > 0) metrics.eventsDuplicate.inc({ kind: label }, appended.duplicates)
    req.log.info({ kind: label, accepted: appended.accepted, duplicates: appended.duplicates, skipped: converted.skipped.length, subscriptionId: (req.body as { subscriptionId?: unknown }).subscriptionId }, 'ngsi notification appended')
    return reply.code(202).send({
      accepted: appended.accepted,
      duplicates: appended.duplicates,
      events: checked.events.length,
      skipped: converted.skipped.slice(0, MAX_LISTED_SKIPPED),
      skippedCount: converted.skipped.length,
    })
  }

  const schema = (summary: string) => ({
    tags: ['sources'],
    summary,
    description: QUERY_DOC,
    response: { 202: NotifyAccepted, 400: ErrorBody, 413: ErrorBody, 415: ErrorBody, 503: ErrorBody },
  })
  app.post('/v1/ngsi/v2/notify', { bodyLimit: config.maxBodyBytes, schema: schema('Endpoint for Orion (NGSI-v2) subscription notifications: numeric attributes become metric events') }, handler(fromV2Notification, 'ngsi-v2'))
  app.post('/v1/ngsi/ld/notify', { bodyLimit: config.maxBodyBytes, schema: schema('Endpoint for NGSI-LD (Orion-LD, Scorpio, Stellio) subscription notifications: numeric properties become metric events') }, handler(fromLdNotification, 'ngsi-ld'))
}
