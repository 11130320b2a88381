import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { DIM_KEY_PATTERN, METRIC_PATTERN } from '../schemas/metric-event.js'
import { periodParam } from '../schemas/query.js'
import { createTarget, deleteTarget, getTarget, type TargetRow } from '../repositories/targets.repository.js'
import { allTargets, presentTarget } from '../services/target-status.js'
import type { ChangeNotice } from '../live/change-notice.js'

const Indicator = Type.Object(
  {
    metric: Type.String({ pattern: METRIC_PATTERN }),
    dims: Type.Optional(Type.Record(Type.String({ pattern: DIM_KEY_PATTERN }), Type.String({ minLength: 1, maxLength: 1024 }), { maxProperties: 16, additionalProperties: false })),
    aggregate: Type.Union([Type.Literal('last'), Type.Literal('sum'), Type.Literal('mean'), Type.Literal('max'), Type.Literal('min'), Type.Literal('count')], {
      description: 'how the period reads the metric: last (a reported level or share), sum (a running total), ...',
    }),
  },
  { additionalProperties: false },
)

const TargetBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    indicator: Indicator,
    denominator: Type.Optional(Type.Intersect([Indicator], { description: 'makes the indicator a percentage: indicator / denominator x 100' })),
    operator: Type.Union([Type.Literal('>='), Type.Literal('<=')], { default: '>=' }),
    target: Type.Number(),
    unit: Type.Optional(Type.String({ maxLength: 40 })),
    period: Type.Object({ from: Type.String(), to: Type.String() }, { additionalProperties: false, description: 'ISO-8601 or epoch ms; [from, to)' }),
  },
  {
    additionalProperties: false,
    examples: [
      {
        name: 'Online services on the national portal',
        indicator: { metric: 'portal.services_on_portal', aggregate: 'last' },
        denominator: { metric: 'portal.services_online', aggregate: 'last' },
        operator: '>=',
        target: 30,
        unit: '%',
        period: { from: '2020-01-01T00:00:00+07:00', to: '2021-01-01T00:00:00+07:00' },
      },
    ],
  },
)
type TargetBody = Static<typeof TargetBody>

export const targetRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { db, config } = rt
  // Hubs recompute the targets topic on metric changes; a new or removed target is one too.
  const announce = (t: TargetRow): Promise<unknown> => {
    const notice: ChangeNotice = { partition: -1, metrics: { [t.indicator.metric]: {} } }
    return rt.redis.publish(rt.keys.changesChannel, JSON.stringify(notice)).catch(() => undefined)
  }
  const withStatus = (t: TargetRow) => presentTarget(db, t, Date.now(), config.dayOffsetMin * 60_000)
  const idParam = Type.Object({ id: Type.Integer({ minimum: 1 }) })

  app.post(
    '/v1/targets',
    {
      schema: {
        tags: ['targets'],
        summary: 'Register a target for an indicator and period (the indicator arrives as metric events)',
        body: TargetBody,
        response: { 201: Type.Unknown(), 400: ErrorBody },
      },
    },
    async (req, reply) => {
      const b = req.body as TargetBody
      const { fromMs: from, toMs: to } = periodParam(b.period)
      const indicator = { ...b.indicator, dims: b.indicator.dims ?? {} }
      const denominator = b.denominator ? { ...b.denominator, dims: b.denominator.dims ?? {} } : null
      const created = await createTarget(db, { name: b.name, indicator, denominator, operator: b.operator, target: b.target, unit: b.unit ?? null, periodStartMs: from, periodEndMs: to })
      await announce(created)
      return reply.code(201).send(await withStatus(created))
    },
  )

  app.get('/v1/targets', { schema: { tags: ['targets'], summary: 'Every target with its completion, on-track flag and projection' } }, async () => ({
    targets: await allTargets(db, Date.now(), config.dayOffsetMin * 60_000),
  }))

  app.get(
    '/v1/targets/:id',
    { schema: { tags: ['targets'], summary: 'One target: value so far, completion %, trend projection to the period end', params: idParam, response: { 404: ErrorBody } } },
    async (req) => {
      const t = await getTarget(db, (req.params as { id: number }).id)
      if (!t) throw new AppError('NOT_FOUND', 'no such target')
      return withStatus(t)
    },
  )

  app.delete('/v1/targets/:id', { schema: { tags: ['targets'], summary: 'Remove a target', params: idParam, response: { 204: Type.Null(), 404: ErrorBody } } }, async (req, reply) => {
    const t = await getTarget(db, (req.params as { id: number }).id)
    if (!t || !(await deleteTarget(db, t.id))) throw new AppError('NOT_FOUND', 'no such target')
    await announce(t)
    return reply.code(204).send()
  })
}
