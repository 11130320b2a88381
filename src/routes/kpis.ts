import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { instantParam } from '../schemas/query.js'
import { bucketStart } from '../domain/windows.js'
import { computeKpis, dailyKpis, kpiFilterOf, listCases, type KpiDim, type KpiFilter } from '../repositories/kpis.repository.js'
import { listFindings } from '../repositories/findings.repository.js'
import { rankAgencies, RANK_BY, type RankBy } from '../services/ranking.js'

const DimValue = Type.String({ minLength: 1, maxLength: 128 })
const Filter = {
  service: Type.Optional(DimValue),
  province: Type.Optional(DimValue),
  agency: Type.Optional(DimValue),
  category: Type.Optional(DimValue),
}
const Instant = Type.String({ description: 'ISO-8601 with zone, or epoch milliseconds' })
const GroupBy = Type.String({ pattern: '^(service|province|agency|category)(,(service|province|agency|category)){0,3}$' })

export const KpiQuerystring = Type.Object(
  {
    ...Filter,
    group_by: Type.Optional(GroupBy),
    as_of: Type.Optional(Type.String({ description: 'the instant the figures describe, ISO-8601 or epoch ms (default now): what a screen showed then' })),
    from: Type.Optional(Type.String({ description: 'count received/resolved/rejected/rated events only from here (a period); states are always as of as_of' })),
  },
  { additionalProperties: false },
)
type KpiQuerystring = Static<typeof KpiQuerystring>

const RankingQuerystring = Type.Object(
  {
    ...Filter,
    by: Type.Union(RANK_BY.map((b) => Type.Literal(b))),
    as_of: Type.Optional(Instant),
    from: Type.Optional(Instant),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  },
  { additionalProperties: false },
)
type RankingQuerystring = Static<typeof RankingQuerystring> & { by: RankBy }


export const kpiRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { db, config } = rt
  const period = (q: { as_of?: string; from?: string }) => {
    const asOfMs = instantParam('as_of', q.as_of, Date.now())
    const fromMs = q.from === undefined ? null : instantParam('from', q.from, 0)
    if (fromMs !== null && fromMs > asOfMs) throw new AppError('BAD_REQUEST', '`from` must not be after `as_of`')
    return { asOfMs, fromMs }
  }

  app.get(
    '/v1/kpis',
    {
      schema: {
        tags: ['kpis'],
        summary: 'Case KPIs (received, resolved, in progress, overdue, on-time rate, time to resolve, satisfaction) as of an instant',
        description:
          'Filters and group_by over service, province, agency and category (agency, province and category are the dims of that name on report events). Counts cover events up to as_of (and from `from` on, if given); pending, in progress, backlog and overdue are states at as_of. processed = resolved + rejected. Time to resolve quantiles are exact (from the case rows).',
        querystring: KpiQuerystring,
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as KpiQuerystring
      const { asOfMs, fromMs } = period(q)
      const groupBy = (q.group_by?.split(',') ?? []) as KpiDim[]
      const { rows } = await computeKpis(db, { filter: kpiFilterOf(q), groupBy, asOfMs, fromMs })
      return { asOf: new Date(asOfMs).toISOString(), from: fromMs === null ? null : new Date(fromMs).toISOString(), filter: kpiFilterOf(q), groups: rows }
    },
  )

  app.get(
    '/v1/kpis/daily',
    {
      schema: {
        tags: ['kpis'],
        summary: 'Per-day case counts and the backlog at the end of each day',
        querystring: Type.Object({ ...Filter, from: Instant, to: Instant }, { additionalProperties: false }),
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as KpiFilter & { from: string; to: string }
      const offset = config.dayOffsetMin * 60_000
      const from = bucketStart(instantParam('from', q.from, 0), '1d', offset)
      const to = bucketStart(instantParam('to', q.to, 0) - 1, '1d', offset) + 86_400_000
      if (to <= from) throw new AppError('BAD_REQUEST', '`to` must be after `from`')
      if ((to - from) / 86_400_000 > 366) throw new AppError('BAD_REQUEST', 'at most 366 days per request')
      return { filter: kpiFilterOf(q), days: await dailyKpis(db, kpiFilterOf(q), from, to) }
    },
  )

  app.get(
    '/v1/kpis/ranking',
    {
      schema: {
        tags: ['kpis'],
        summary: 'Agencies ordered by a KPI (best first), for a period and optionally a province or service',
        querystring: RankingQuerystring,
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as RankingQuerystring
      const { asOfMs, fromMs } = period(q)
      const { agencies } = await rankAgencies(db, kpiFilterOf(q), q.by, asOfMs, fromMs, q.limit)
      return { by: q.by, asOf: new Date(asOfMs).toISOString(), from: fromMs === null ? null : new Date(fromMs).toISOString(), filter: kpiFilterOf(q), agencies }
    },
  )

  app.get(
    '/v1/cases',
    {
      schema: {
        tags: ['kpis'],
        summary: 'The cases behind a KPI figure (same filters and instant as /v1/kpis)',
        querystring: Type.Object(
          {
            ...Filter,
            figure: Type.Union(['received', 'resolved', 'rejected', 'pending', 'in_progress', 'overdue'].map((s) => Type.Literal(s))),
            as_of: Type.Optional(Instant),
            from: Type.Optional(Instant),
            limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
            after: Type.Optional(Type.String({ description: 'cursor from the previous page' })),
          },
          { additionalProperties: false },
        ),
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as KpiFilter & { figure: 'received'; as_of?: string; from?: string; limit: number; after?: string }
      const { asOfMs, fromMs } = period(q)
      let after: { service: string; caseId: string } | null = null
      if (q.after !== undefined) {
        try {
          const [service, caseId] = JSON.parse(Buffer.from(q.after, 'base64url').toString()) as [string, string]
          after = { service, caseId }
        } catch {
          throw new AppError('BAD_REQUEST', '`after` is not a cursor this API returned')
        }
      }
      const cases = await listCases(db, kpiFilterOf(q), q.figure, asOfMs, fromMs, q.limit, after)
      const last = cases[cases.length - 1]
      return {
        figure: q.figure,
        asOf: new Date(asOfMs).toISOString(),
        cases,
        next: cases.length === q.limit && last ? Buffer.from(JSON.stringify([last.service, last.caseId])).toString('base64url') : null,
      }
    },
  )

  app.get(
    '/v1/findings',
    {
      schema: {
        tags: ['kpis'],
        summary: 'Data-quality findings: impossible transitions kept out of the KPIs, each with its event id',
        querystring: Type.Object(
          { service: Type.Optional(DimValue), province: Type.Optional(DimValue), case: Type.Optional(DimValue), limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }) },
          { additionalProperties: false },
        ),
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as { service?: string; province?: string; case?: string; limit: number }
      return { findings: await listFindings(db, q, q.limit) }
    },
  )
}
