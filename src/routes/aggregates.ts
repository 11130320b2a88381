import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { AggregatesQuery, BucketView, SeriesQuery, SlidingQuery, dimsFromQuery, instantParam } from '../schemas/query.js'
import { WINDOW_MS, bucketStart } from '../domain/windows.js'
import { rollUp, rollUpAll, viewOf } from '../domain/rollup.js'
import { summarize } from '../domain/bucket.js'
import { bucketsInRange } from '../repositories/aggregates.repository.js'
import { listSeries } from '../repositories/series.repository.js'

/** Most buckets one range query may span: keeps a typo in `from` from scanning years of minutes. */
const MAX_BUCKETS = 10_000
const DEFAULT_BUCKETS = 60

const Group = Type.Object({ key: Type.Record(Type.String(), Type.Union([Type.String(), Type.Null()])), buckets: Type.Array(BucketView) })

const groupKeyObject = (groupBy: string[], gk: string): Record<string, string | null> => {
  if (groupBy.length === 0) return {}
  const values = JSON.parse(gk) as (string | null)[]
  return Object.fromEntries(groupBy.map((k, i) => [k, values[i] ?? null]))
}

export const aggregateRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { db, config } = rt
  const r = app.withTypeProvider<TypeBoxTypeProvider>()
  const dayOffsetMs = config.dayOffsetMin * 60_000

  r.get(
    '/v1/series',
    {
      schema: {
        tags: ['query'],
        summary: 'List series (metric + dims), with event and late-event counts',
        querystring: SeriesQuery,
        response: {
          200: Type.Object({
            series: Type.Array(
              Type.Object({
                id: Type.Integer(),
                metric: Type.String(),
                dims: Type.Record(Type.String(), Type.String()),
                firstTs: Type.String(),
                lastTs: Type.String(),
                events: Type.Integer(),
                lateEvents: Type.Integer({ description: 'events older than the allowed lateness, kept out of buckets' }),
                lastLateTs: Type.Union([Type.String(), Type.Null()]),
              }),
            ),
            next: Type.Union([Type.Integer(), Type.Null()], { description: 'pass as `after` for the next page' }),
          }),
          400: ErrorBody,
        },
      },
    },
    async (req) => {
      const q = req.query as SeriesQuery
      const rows = await listSeries(db, { metric: q.metric, dims: dimsFromQuery(q) }, q.limit, q.after)
      return {
        series: rows.map((s) => ({ ...s, firstTs: s.firstTs.toISOString(), lastTs: s.lastTs.toISOString(), lastLateTs: s.lastLateTs?.toISOString() ?? null })),
        next: rows.length === q.limit ? (rows[rows.length - 1]?.id ?? null) : null,
      }
    },
  )

  r.get(
    '/v1/aggregates',
    {
      schema: {
        tags: ['query'],
        summary: 'Tumbling-window aggregates of a metric, rolled up over every series matching the dims filter',
        description:
          'dims.<name>=<value> filters series; group_by=a,b splits the roll-up by those dims. Buckets with start in [from, to); default: the last 60 buckets up to now. Quantiles come from merged DDSketches (1% relative accuracy); count, sum, min, max, mean and stddev are exact.',
        querystring: AggregatesQuery,
        response: {
          200: Type.Object({ metric: Type.String(), window: Type.String(), dims: Type.Record(Type.String(), Type.String()), groups: Type.Array(Group) }),
          400: ErrorBody,
        },
      },
    },
    async (req) => {
      const q = req.query as AggregatesQuery
      const width = WINDOW_MS[q.window]
      const now = Date.now()
      const to = instantParam('to', q.to, bucketStart(now, q.window, dayOffsetMs) + width)
      const from = instantParam('from', q.from, to - DEFAULT_BUCKETS * width)
      if (to <= from) throw new AppError('BAD_REQUEST', '`to` must be after `from`')
      if ((to - from) / width > MAX_BUCKETS) throw new AppError('BAD_REQUEST', `the range spans more than ${MAX_BUCKETS} ${q.window} buckets; narrow it or use a wider window`)
      const dims = dimsFromQuery(q)
      const groupBy = q.group_by ? q.group_by.split(',') : []
      const rows = await bucketsInRange(db, { metric: q.metric, dims, widthS: width / 1000, fromMs: from, toMs: to })
      const groups = [...rollUp(rows, groupBy)].map(([gk, byStart]) => ({
        key: groupKeyObject(groupBy, gk),
        buckets: [...byStart.values()].sort((a, b) => a.startMs - b.startMs).map((b) => viewOf(b, width)),
      }))
      return { metric: q.metric, window: q.window, dims, groups }
    },
  )

  r.get(
    '/v1/aggregates/sliding',
    {
      schema: {
        tags: ['query'],
        summary: 'Sliding "last N minutes" view, merged from 1-minute buckets',
        description: 'Covers the N one-minute buckets ending with the one holding `at` (default now).',
        querystring: SlidingQuery,
        response: {
          200: Type.Object({
            metric: Type.String(),
            minutes: Type.Integer(),
            from: Type.String(),
            to: Type.String(),
            dims: Type.Record(Type.String(), Type.String()),
            groups: Type.Array(Type.Object({ key: Type.Record(Type.String(), Type.Union([Type.String(), Type.Null()])), series: Type.Integer(), summary: Type.Omit(BucketView, ['start', 'end', 'series']) })),
          }),
          400: ErrorBody,
        },
      },
    },
    async (req) => {
      const q = req.query as SlidingQuery
      const at = instantParam('at', q.at, Date.now())
      const to = bucketStart(at, '1m', 0) + 60_000
      const from = to - q.minutes * 60_000
      const dims = dimsFromQuery(q)
      const groupBy = q.group_by ? q.group_by.split(',') : []
      const rows = await bucketsInRange(db, { metric: q.metric, dims, widthS: 60, fromMs: from, toMs: to })
      const groups = [...rollUpAll(rows, groupBy)].map(([gk, g]) => ({ key: groupKeyObject(groupBy, gk), series: g.series, summary: summarize(g.state) }))
      return { metric: q.metric, minutes: q.minutes, from: new Date(from).toISOString(), to: new Date(to).toISOString(), dims, groups }
    },
  )
}
