import type { FastifyPluginAsync } from 'fastify'
import type { Runtime } from '../infra/runtime.js'
import { listSourceHealth } from '../ingest/source-health.js'

export const sourceRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  app.get(
    '/v1/sources',
    {
      schema: {
        tags: ['ingest'],
        summary: 'Every source that has sent, with its health: alive or silent, last event, rate, lag, rejections',
        description:
          'A source is the `source` named by its events, whichever way they came (HTTP, MQTT, NGSI, import). status is silent when nothing was accepted for LANTERN_SOURCE_SILENT_SEC; a silence rule ({"kind":"silence"}) turns that into an alert. Live: topic {"kind":"sources"}.',
      },
    },
    async () => ({ sources: await listSourceHealth(rt.redis, rt.keys, Date.now(), rt.config.sourceSilentSec * 1000) }),
  )
}
