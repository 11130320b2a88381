import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { IngestAccepted } from '../schemas/metric-event.js'
import { NDJSON_TYPES, parseEventBody } from '../ingest/parse-body.js'
import { makeMetricValidator } from '../ingest/validate-metrics.js'
import { appendEvents } from '../ingest/append-log.js'

/** Most bad events listed in one 400; errorCount carries the total. */
const MAX_LISTED_ERRORS = 1000

export const ingestRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { config, redis, keys, metrics } = rt
  const validate = makeMetricValidator({
    maxDims: config.maxDims,
    maxDimValueLength: config.maxDimValueLength,
    maxFutureMs: config.maxFutureSec * 1000,
  })

  // Bodies stay raw text here: the route parses JSON and NDJSON itself to report bad events by index.
  app.removeContentTypeParser(['application/json', 'text/plain'])
  app.addContentTypeParser(['application/json', ...NDJSON_TYPES], { parseAs: 'string', bodyLimit: config.maxBodyBytes }, (_req, body, done) =>
    done(null, body),
  )

  app.withTypeProvider<TypeBoxTypeProvider>().post(
    '/v1/metrics',
    {
      bodyLimit: config.maxBodyBytes,
      schema: {
        tags: ['ingest'],
        summary: 'Append metric samples to the log',
        description:
          'Body: one event, a JSON array of events, or NDJSON (Content-Type application/x-ndjson). A batch with any bad event is refused whole (400, each bad event listed by index) and nothing is written. 202 means every event is in the log; repeats of an accepted id (per source, within the idempotency window) are counted as duplicates and not appended again. 503 with Retry-After when the log is unreachable.',
        response: { 202: IngestAccepted, 400: ErrorBody, 413: ErrorBody, 415: ErrorBody, 503: ErrorBody },
      },
    },
    async (req, reply) => {
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
      const items = parseEventBody(req.body as string, NDJSON_TYPES.includes(contentType), config.maxBatchEvents)
      const now = Date.now()
      const result = validate(items, now)
      if (!result.ok) {
        metrics.eventsRejected.inc({ kind: 'metric', reason: 'invalid' }, result.errors.length)
        throw new AppError(
          'INVALID_EVENTS',
          `${result.errors.length} of ${items.length} events are invalid; nothing was written`,
          result.errors.slice(0, MAX_LISTED_ERRORS),
        )
      }
      let appended
      try {
        appended = await appendEvents(redis, keys, config.partitions, config.dedupWindowSec, result.events, now)
      } catch (err) {
        req.log.error({ err }, 'append to log failed')
        throw new AppError('LOG_UNAVAILABLE', 'the event log is unavailable; nothing was acknowledged, retry later (ids make retries safe)', undefined, {
          'retry-after': '2',
        })
      }
      metrics.eventsAccepted.inc({ kind: 'metric' }, appended.accepted)
      if (appended.duplicates > 0) metrics.eventsDuplicate.inc({ kind: 'metric' }, appended.duplicates)
      req.log.info({ accepted: appended.accepted, duplicates: appended.duplicates, entries: appended.entries }, 'metrics appended')
      return reply.code(202).send({ accepted: appended.accepted, duplicates: appended.duplicates })
    },
  )
}

