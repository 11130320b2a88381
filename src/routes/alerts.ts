import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { METRIC_PATTERN } from '../schemas/metric-event.js'
import { Cursor, cursorOf, cursorParam } from '../schemas/query.js'
import { ALERT_STATUSES, type AlertStatus } from '../schemas/alert-event.js'
import { getAlert, listAlerts } from '../repositories/alerts.repository.js'

const AlertQuery = Type.Object(
  {
    status: Type.Optional(
      Type.String({ pattern: `^(${ALERT_STATUSES.join('|')}|open)(,(${ALERT_STATUSES.join('|')}|open))*$`, description: 'comma-separated; "open" = pending,firing' }),
    ),
    rule: Type.Optional(Type.Integer({ minimum: 1 })),
    metric: Type.Optional(Type.String({ pattern: METRIC_PATTERN })),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    before: Type.Optional(Cursor),
  },
  { additionalProperties: false },
)
type AlertQuery = Static<typeof AlertQuery>

export const alertRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  app.get(
    '/v1/alerts',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Alerts, most recently changed first: current state (status=open) and history',
        description: 'Live: topic {"kind":"alerts"}. Each alert keeps the values that made it pending or firing (`cause`) and those at its end (`resolution`).',
        querystring: AlertQuery,
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as AlertQuery
      const status = q.status ? [...new Set(q.status.split(',').flatMap((s) => (s === 'open' ? ['pending', 'firing'] : [s])))] as AlertStatus[] : null
      const alerts = await listAlerts(rt.db, { status, ruleId: q.rule ?? null, metric: q.metric ?? null, limit: q.limit, before: cursorParam(q.before) })
      const last = alerts[alerts.length - 1]
      return { alerts, next: last && alerts.length === q.limit ? cursorOf(last.updatedAt, last.id) : null }
    },
  )

  app.get(
    '/v1/alerts/:id',
    { schema: { tags: ['alerts'], summary: 'One alert with every state change, as delivered', params: Type.Object({ id: Type.Integer({ minimum: 1 }) }), response: { 404: ErrorBody } } },
    async (req) => {
      const { id } = req.params as { id: number }
      const alert = await getAlert(rt.db, id)
      if (!alert) throw new AppError('NOT_FOUND', `no alert ${id}`)
      return alert
    },
  )
}
