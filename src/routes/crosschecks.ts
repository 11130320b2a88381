import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { periodParam } from '../schemas/query.js'
import { computeKpis, kpiFilterOf, type KpiFigures } from '../repositories/kpis.repository.js'
import { getCrosscheck, listCrosschecks, recordCrosscheck, type Discrepancy } from '../repositories/crosschecks.repository.js'
import { publishThroughGuard } from '../live/delta-publisher.js'
import { DISCREPANCY_TOPIC } from '../live/topic.js'

/** Figures a province may report, and the /v1/cases figures that list the cases behind each. */
const CHECKABLE: Record<string, string[]> = {
  received: ['received'],
  resolved: ['resolved'],
  rejected: ['rejected'],
  processed: ['resolved', 'rejected'],
  pending: ['pending'],
  inProgress: ['in_progress'],
  backlog: ['pending', 'in_progress'],
  overdue: ['overdue'],
  resolvedOnTime: ['resolved'],
  rated: [],
  satisfied: [],
}

const Count = Type.Integer({ minimum: 0 })
const CrosscheckBody = Type.Object(
  {
    source: Type.Optional(Type.String({ maxLength: 64, description: 'who reported the figures' })),
    service: Type.String({ minLength: 1, maxLength: 128 }),
    province: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    agency: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    category: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
    period: Type.Object({ from: Type.String(), to: Type.String() }, { additionalProperties: false, description: 'counts cover [from, to); states are as of `to`' }),
    reported: Type.Object(Object.fromEntries(Object.keys(CHECKABLE).map((k) => [k, Type.Optional(Count)])), { additionalProperties: false, minProperties: 1 }),
  },
  { additionalProperties: false },
)
type CrosscheckBody = Static<typeof CrosscheckBody>

export const crosscheckRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { db } = rt

  app.post(
    '/v1/crosschecks',
    {
      schema: {
        tags: ['crosschecks'],
        summary: 'Check the totals a province reports against what its events give',
        description:
          'Every figure that differs is recorded as a discrepancy with both numbers and links to the cases behind the computed figure, and is published on the live topic {"kind":"discrepancies"}.',
        body: CrosscheckBody,
        response: { 201: Type.Unknown(), 400: ErrorBody },
      },
    },
    async (req, reply) => {
      const b = req.body as CrosscheckBody
      const { fromMs: from, toMs: to } = periodParam(b.period)
      const filter = kpiFilterOf(b)
      // `to` is exclusive; figures are as of the last millisecond inside the period.
      const { rows } = await computeKpis(db, { filter, groupBy: [], asOfMs: to - 1, fromMs: from })
      const kpis = rows[0]?.kpis as KpiFigures
      const reported = b.reported as Record<string, number>
      const computed: Record<string, number> = {}
      const discrepancies: Discrepancy[] = []
      const qs = new URLSearchParams({ ...filter, from: new Date(from).toISOString(), as_of: new Date(to - 1).toISOString() })
      for (const [figure, value] of Object.entries(reported)) {
        const mine = kpis[figure as keyof KpiFigures] as number
        computed[figure] = mine
        if (mine !== value) {
          discrepancies.push({ figure, reported: value, computed: mine, difference: value - mine, cases: (CHECKABLE[figure] ?? []).map((f) => `/v1/cases?${qs}&figure=${f}`) })
        }
      }
      const row = await recordCrosscheck(db, { source: b.source ?? null, filter, periodStart: new Date(from).toISOString(), periodEnd: new Date(to).toISOString(), reported, computed, discrepancies })
      if (discrepancies.length > 0) {
        req.log.warn({ crosscheck: row.id, filter, discrepancies: discrepancies.length }, 'reported figures differ from the events')
        await publishThroughGuard(rt, DISCREPANCY_TOPIC.id, [{ field: 'id', version: row.id, message: { type: 'delta', topic: DISCREPANCY_TOPIC.id, v: row.id, crosscheck: row } }]).catch(
          (err: Error) => req.log.error({ err }, 'discrepancy recorded but not published live'),
        )
      }
      return reply.code(201).send(row)
    },
  )

  app.get(
    '/v1/crosschecks',
    {
      schema: {
        tags: ['crosschecks'],
        summary: 'Recorded cross-checks, newest first',
        querystring: Type.Object({ discrepant: Type.Boolean({ default: false }), limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) }, { additionalProperties: false }),
      },
    },
    async (req) => {
      const q = req.query as { discrepant: boolean; limit: number }
      return { crosschecks: await listCrosschecks(db, q.discrepant, q.limit) }
    },
  )

  app.get(
    '/v1/crosschecks/:id',
    { schema: { tags: ['crosschecks'], summary: 'One cross-check', params: Type.Object({ id: Type.Integer({ minimum: 1 }) }), response: { 404: ErrorBody } } },
    async (req) => {
      const row = await getCrosscheck(db, (req.params as { id: number }).id)
      if (!row) throw new AppError('NOT_FOUND', 'no such cross-check')
      return row
    },
  )
}
