import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { METRIC_PATTERN } from '../schemas/metric-event.js'
import { Cursor, Instant, cursorOf, cursorParam, dimFilterProps, dimsFromQuery, instantParam } from '../schemas/query.js'
import { AnomalySettings } from '../schemas/anomaly-settings.js'
import { listAnomalies } from '../repositories/anomalies.repository.js'
import { allAnomalySettings, deleteAnomalySettings, getAnomalySettings, putAnomalySettings } from '../repositories/anomaly-settings.repository.js'
import { bumpConfigVersion } from '../services/alerting-config.js'
import { DEFAULT_DETECTOR_CONFIG, SeriesDetector } from '../domain/anomaly/series-detector.js'

const AnomalyQuery = Type.Object(
  {
    metric: Type.Optional(Type.String({ pattern: METRIC_PATTERN })),
    from: Type.Optional(Instant),
    to: Type.Optional(Instant),
    min_score: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    before: Type.Optional(Cursor),
  },
  { additionalProperties: false, ...dimFilterProps, description: 'dims.<name>=<value> filters by dimension' },
)
type AnomalyQuery = Static<typeof AnomalyQuery> & Record<string, unknown>

const MAX_SCORED = 200_000

const ScoreBody = Type.Object(
  {
    metric: Type.Optional(Type.String({ pattern: METRIC_PATTERN, description: "score with this metric's detector settings (default: the defaults)" })),
    settings: Type.Optional(AnomalySettings),
    samples: Type.Array(Type.Object({ ts: Type.Union([Type.Integer({ minimum: 0 }), Instant]), value: Type.Number() }, { additionalProperties: false }), {
      minItems: 1,
      maxItems: MAX_SCORED,
      description: 'one series, in event-time order; samples not newer than the one before are not scored (score null)',
    }),
  },
  { additionalProperties: false },
)
type ScoreBody = Static<typeof ScoreBody>

const MetricParam = Type.Object({ metric: Type.String({ pattern: METRIC_PATTERN }) })

const effective = (s: AnomalySettings | null) => ({ enabled: true, ...DEFAULT_DETECTOR_CONFIG, ...(s ?? {}) })

export const anomalyRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { db } = rt

  app.get(
    '/v1/anomalies',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Flagged samples, newest first, a page at a time (follow `next`)',
        description: 'Each flag carries the value, the score in [0,1], the detectors that flagged it and the range they expected. Live: topic {"kind":"anomalies"} (optionally with "metric").',
        querystring: AnomalyQuery,
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as AnomalyQuery
      const fromMs = q.from !== undefined ? instantParam('from', q.from, 0) : null
      const toMs = q.to !== undefined ? instantParam('to', q.to, 0) : null
      if (fromMs !== null && toMs !== null && toMs <= fromMs) throw new AppError('BAD_REQUEST', 'to must be after from')
      const anomalies = await listAnomalies(db, {
        ...(q.metric !== undefined ? { metric: q.metric } : {}),
        dims: dimsFromQuery(q),
        fromMs,
        toMs,
        before: cursorParam(q.before),
        minScore: q.min_score,
        limit: q.limit,
      })
      const last = anomalies[anomalies.length - 1]
      return { anomalies, next: last && anomalies.length === q.limit ? cursorOf(last.ts, last.id) : null }
    },
  )

  app.post(
    '/v1/anomalies/score',
    {
      bodyLimit: 64 * 1024 * 1024,
      schema: {
        tags: ['alerts'],
        summary: 'Score a series with the detectors, without storing anything',
        description:
          'Runs the same detectors the drain runs, from a fresh state, over the given samples and returns every sample\'s verdict (score in [0,1], flagged, detectors, expected range). For trying settings on past data and for benchmarks.',
        body: ScoreBody,
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const b = req.body as ScoreBody
      const own = b.metric !== undefined ? await getAnomalySettings(db, b.metric) : null
      const { enabled: _enabled, ...config } = effective({ ...(own ?? {}), ...(b.settings ?? {}) })
      const detector = SeriesDetector.create(config)
      const verdicts = b.samples.map((s, i) => {
        const ts = typeof s.ts === 'number' ? s.ts : instantParam(`samples[${i}].ts`, s.ts, 0)
        const v = detector.observe(ts, s.value)
        return v ? { ts: new Date(ts).toISOString(), value: s.value, score: v.score, flagged: v.flagged, detectors: v.detectors, expected: v.expected, expectedRange: [v.low, v.high] } : { ts: new Date(ts).toISOString(), value: s.value, score: null, flagged: false }
      })
      return { settings: config, flagged: verdicts.filter((v) => v.flagged).length, verdicts }
    },
  )

  app.get('/v1/anomaly-settings', { schema: { tags: ['alerts'], summary: 'Detector settings of every metric that has its own, and the defaults' } }, async () => {
    const all = await allAnomalySettings(db)
    return { defaults: effective(null), metrics: Object.fromEntries([...all].map(([m, s]) => [m, effective(s)])) }
  })

  app.get(
    '/v1/anomaly-settings/:metric',
    { schema: { tags: ['alerts'], summary: "A metric's effective detector settings", params: MetricParam } },
    async (req) => {
      const { metric } = req.params as { metric: string }
      const own = await getAnomalySettings(db, metric)
      return { metric, custom: own !== null, settings: effective(own) }
    },
  )

  app.put(
    '/v1/anomaly-settings/:metric',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Set which detectors run on a metric and how sensitive they are',
        description: 'Applies from the next drained batch. Changing the window or seasonality restarts the affected detectors\' history (warm-up again).',
        params: MetricParam,
        body: AnomalySettings,
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const { metric } = req.params as { metric: string }
      const body = req.body as AnomalySettings
      await putAnomalySettings(db, metric, body)
      await bumpConfigVersion(rt.redis, rt.keys)
      req.log.info({ metric, settings: body }, 'anomaly settings changed')
      return { metric, custom: true, settings: effective(body) }
    },
  )

  app.delete(
    '/v1/anomaly-settings/:metric',
    { schema: { tags: ['alerts'], summary: 'Back to the default detector settings', params: MetricParam, response: { 204: Type.Null(), 404: ErrorBody } } },
    async (req, reply) => {
      const { metric } = req.params as { metric: string }
      if (!(await deleteAnomalySettings(db, metric))) throw new AppError('NOT_FOUND', `metric ${metric} has no settings of its own`)
      await bumpConfigVersion(rt.redis, rt.keys)
      return reply.code(204).send()
    },
  )
}
