import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync } from 'fastify'
import { transform } from 'esbuild'
import type { Hub } from '../live/hub.js'
import { asyncApiDocument } from '../live/asyncapi.js'

const CLIENT_SOURCE = fileURLToPath(new URL('../client/live-client.ts', import.meta.url))

export const liveRoutes: FastifyPluginAsync<{ hub: Hub; version: string }> = async (app, { hub, version }) => {
  app.get(
    '/v1/live',
    {
      websocket: true,
      schema: { tags: ['live'], summary: 'Live socket: subscribe to topics, get a snapshot, then every delta (AsyncAPI: /docs/asyncapi.json)' },
    },
    (socket) => hub.accept(socket),
  )

  const doc = asyncApiDocument(version)
  app.get('/docs/asyncapi.json', { schema: { tags: ['live'], summary: 'AsyncAPI 3.0 document of the live socket protocol' } }, async () => doc)

  // The typed client, as a browser ES module: type-only imports vanish, nothing else is bundled.
  const client = (await transform(await readFile(CLIENT_SOURCE, 'utf8'), { loader: 'ts', format: 'esm', target: 'es2022' })).code
  app.get('/client/live-client.js', { schema: { tags: ['live'], summary: 'The typed live client as an ES module for dashboards' } }, async (_req, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(client),
  )
}
