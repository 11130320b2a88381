import type { FastifyPluginAsync } from 'fastify'
import type { Hub } from '../live/hub.js'

export const liveRoutes: FastifyPluginAsync<{ hub: Hub }> = async (app, { hub }) => {
  app.get(
    '/v1/live',
    {
      websocket: true,
      schema: {
        tags: ['live'],
        summary: 'Live socket: subscribe to topics, get a snapshot, then every delta (see the AsyncAPI notes in the README)',
      },
    },
    (socket) => hub.accept(socket),
  )
}
