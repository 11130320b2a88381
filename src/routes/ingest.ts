import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { IngestAccepted } from '../schemas/metric-event.js'
import { caseKey } from '../schemas/report-event.js'
import { EVENT_KINDS, type EventKind } from '../schemas/log-entry.js'
import { seriesKey } from '../domain/series-key.js'
import { NDJSON_TYPES, parseEventBody } from '../ingest/parse-body.js'
import { makeMetricValidator, makeReportValidator, type BatchValidator } from '../ingest/validate-events.js'
import { appendEvents } from '../ingest/append-log.js'
import { recordRejections } from '../ingest/source-health.js'

/** Most bad events listed in one 400; errorCount carries the total. */
const MAX_LISTED_ERRORS = 1000

const CONTRACT =
  'Body: one event, a JSON array of events, or NDJSON (Content-Type application/x-ndjson). A batch with any bad event is refused whole (400, each bad event listed by index) and nothing is written. 202 means every event is in the log; repeats of an accepted id (per source, within the idempotency window) are counted as duplicates and not appended again. 503 with Retry-After when the log is unreachable.'

export const ingestRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { config, redis, keys, metrics } = rt
  const limits = { maxDims: config.maxDims, maxDimValueLength: config.maxDimValueLength, maxFutureMs: config.maxFutureSec * 1000 }

  // Bodies stay raw text here: the route parses JSON and NDJSON itself to report bad events by index.
  app.removeContentTypeParser(['application/json', 'text/plain'])
  app.addContentTypeParser(['application/json', ...NDJSON_TYPES], { parseAs: 'string', bodyLimit: config.maxBodyBytes }, (_req, body, done) =>
    done(null, body),
  )

  const handler =
    <E extends { source: string; id: string; ts: number }>(label: string, kind: EventKind, validate: BatchValidator<E>, orderKey: (e: E) => string) =>
    async (req: FastifyRequest, reply: FastifyReply) => {
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
      const items = parseEventBody(req.body as string, NDJSON_TYPES.includes(contentType), config.maxBatchEvents)
      const now = Date.now()
      const result = validate(items, now)
      if (!result.ok) {
        metrics.eventsRejected.inc({ kind: label, reason: 'invalid' }, result.errors.length)
        await recordRejections(redis, keys, items, result.errors, now).catch((err: Error) => req.log.warn({ err }, 'source rejections not recorded'))
        throw new AppError('INVALID_EVENTS', `${result.errors.length} of ${items.length} events are invalid; nothing was written`, result.errors.slice(0, MAX_LISTED_ERRORS))
      }
      let appended
      try {
        appended = await appendEvents(redis, keys, config.partitions, config.dedupWindowSec, kind, result.events, orderKey, now)
      } catch (err) {
        req.log.error({ err }, 'append to log failed')
        throw new AppError('LOG_UNAVAILABLE', 'the event log is unavailable; nothing was acknowledged, retry later (ids make retries safe)', undefined, {
          'retry-after': '2',
        })
      }
      metrics.eventsAccepted.inc({ kind: label }, appended.accepted)
      if (appended.duplicates > 0) metrics.eventsDuplicate.inc({ kind: label }, appended.duplicates)
      req.log.info({ kind: label, accepted: appended.accepted, duplicates: appended.duplicates, entries: appended.entries }, 'events appended')
      return reply.code(202).send({ accepted: appended.accepted, duplicates: appended.duplicates })
    }

  const schema = (summary: string) => ({
    tags: ['ingest'],
    summary,
    description: CONTRACT,
    response: { 202: IngestAccepted, 400: ErrorBody, 413: ErrorBody, 415: ErrorBody, 503: ErrorBody },
  })

  app.post(
    '/v1/metrics',
    { bodyLimit: config.maxBodyBytes, schema: schema('Append metric samples to the log (partitioned by series)') },
    handler('metric', EVENT_KINDS.metric, makeMetricValidator(limits), (e) => seriesKey(e.metric, e.dims)),
  )
  app.post(
    '/v1/reports',
    { bodyLimit: config.maxBodyBytes, schema: schema('Append report (case lifecycle) events to the log (partitioned by case, so a case keeps its order)') },
    handler('report', EVENT_KINDS.report, makeReportValidator(limits), (e) => caseKey(e.service, e.case)),
  )
}
