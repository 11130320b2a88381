import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyError } from 'fastify'
import websocket from '@fastify/websocket'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { Runtime } from './infra/runtime.js'
import { AppError, ErrorBody } from './errors.js'
import { Hub } from './live/hub.js'
import { ingestRoutes } from './routes/ingest.js'
import { aggregateRoutes } from './routes/aggregates.js'
import { healthRoutes } from './routes/health.js'
import { liveRoutes } from './routes/live.js'
import { kpiRoutes } from './routes/kpis.js'
import { targetRoutes } from './routes/targets.js'
import { crosscheckRoutes } from './routes/crosschecks.js'
import { archiveRoutes } from './routes/archive.js'
import { auditRoutes } from './routes/audits.js'
import { webRoutes } from './routes/web.js'
import { anomalyRoutes } from './routes/anomalies.js'
import { ruleRoutes } from './routes/rules.js'
import { alertRoutes } from './routes/alerts.js'
import { webhookRoutes } from './routes/webhooks.js'
import { importRoutes } from './routes/imports.js'
import { connectorRoutes } from './routes/connectors.js'
import { ngsiRoutes } from './routes/ngsi.js'
import { sourceRoutes } from './routes/sources.js'

const VERSION = '0.1.0'

/** Client messages on the live socket are small; this bounds what a hostile one can make us buffer. */
const LIVE_MAX_PAYLOAD = 64 * 1024

export interface App {
  app: FastifyInstance
  hub: Hub
}

/** Builds the API/hub application without listening; server.ts listens, tests inject. */
export async function buildApp(rt: Runtime): Promise<App> {
  const app: FastifyInstance = Fastify({
    loggerInstance: rt.log as FastifyBaseLogger,
    requestIdHeader: 'x-request-id',
    // Ingest logs one line per request itself, with the counts and log entry ids that trace it.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true, useDefaults: true } },
  })
  const hub = new Hub(rt)

  app.setErrorHandler((err: FastifyError | AppError, req, reply) => {
    if (err instanceof AppError) {
      if (err.headers) reply.headers(err.headers)
      return reply.code(err.statusCode).send({
        statusCode: err.statusCode,
        code: err.code,
        error: err.code,
        message: err.message,
        ...(err.errors ? { errors: err.errors, errorCount: err.errors.length } : {}),
      })
    }
    // Text PostgreSQL cannot store (a NUL character, a lone surrogate): the statement failed, its transaction rolled back.
    if ((err as { code?: string }).code === '22021' || (err as { code?: string }).code === '22P05') {
      return reply.code(400).send({ statusCode: 400, code: 'BAD_REQUEST', error: 'BAD_REQUEST', message: 'text fields may not contain NUL (\\u0000) or unpaired surrogate characters; nothing was written' })
    }
    const status = err.statusCode ?? 500
    if (status >= 500) {
      req.log.error({ err }, 'request failed')
      return reply.code(status).send({ statusCode: status, code: 'INTERNAL', error: 'INTERNAL', message: 'internal error; see the server log for the request id' })
    }
    const code =
      err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'PAYLOAD_TOO_LARGE' : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'UNSUPPORTED_MEDIA_TYPE' : 'BAD_REQUEST'
    return reply.code(status).send({ statusCode: status, code, error: code, message: err.message })
  })
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ statusCode: 404, code: 'NOT_FOUND', error: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` }),
  )

  await app.register(swagger, {
    openapi: {
      info: { title: 'Lantern', version: VERSION, description: 'Real-time analytics for operations centers: ingest, aggregates, live deltas.' },
      tags: [
        { name: 'ingest', description: 'Sources push events' },
        { name: 'query', description: 'Aggregates and series' },
        { name: 'kpis', description: 'Case processing KPIs, rankings, the cases behind a figure, data-quality findings' },
        { name: 'targets', description: 'Targets for indicators: completion and projection' },
        { name: 'crosschecks', description: 'Reported totals checked against the events' },
        { name: 'audit', description: 'The raw log archive: export and tamper evidence' },
        { name: 'sources', description: 'History import, MQTT subscriptions, FIWARE NGSI notifications' },
        { name: 'alerts', description: 'Anomaly flags, threshold rules, alerts and their delivery (alert stream, webhooks)' },
        { name: 'live', description: 'WebSocket topics' },
        { name: 'ops', description: 'Health and metrics' },
      ],
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.addSchema(ErrorBody)
  await app.register(websocket, { options: { maxPayload: LIVE_MAX_PAYLOAD } })

  await app.register(healthRoutes, { rt })
  await app.register(ingestRoutes, { rt })
  await app.register(aggregateRoutes, { rt })
  await app.register(kpiRoutes, { rt })
  await app.register(targetRoutes, { rt })
  await app.register(crosscheckRoutes, { rt })
  await app.register(archiveRoutes, { rt })
  await app.register(auditRoutes, { rt })
  await app.register(anomalyRoutes, { rt })
  await app.register(ruleRoutes, { rt })
  await app.register(alertRoutes, { rt })
  await app.register(webhookRoutes, { rt })
  await app.register(importRoutes, { rt })
  await app.register(connectorRoutes, { rt })
  await app.register(ngsiRoutes, { rt })
  await app.register(sourceRoutes, { rt })
  await app.register(liveRoutes, { hub, version: VERSION })
  await app.register(webRoutes, { rt })

  app.addHook('onReady', async () => hub.start())
  app.addHook('preClose', async () => hub.stop())
  return { app, hub }
}
