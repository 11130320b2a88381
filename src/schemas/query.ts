import { Type, type Static } from '@sinclair/typebox'
import { DIM_KEY_PATTERN, METRIC_PATTERN } from './metric-event.js'
import { WINDOWS } from '../domain/windows.js'
import { parseIsoInstant } from '../domain/timestamp.js'
import { AppError } from '../errors.js'

export const dimFilterProps = {
  patternProperties: { [`^dims\\.${DIM_KEY_PATTERN.slice(1, -1)}$`]: Type.String({ minLength: 1, maxLength: 1024 }) },
}

export const Instant = Type.String({ description: 'ISO-8601 with zone, or epoch milliseconds' })
const GroupBy = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(,[A-Za-z0-9][A-Za-z0-9_.-]{0,63}){0,7}$', description: 'comma-separated dims to group by' })

export const SeriesQuery = Type.Object(
  {
    metric: Type.Optional(Type.String({ pattern: METRIC_PATTERN })),
    limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
    after: Type.Integer({ minimum: 0, default: 0, description: 'cursor: the last id of the previous page' }),
  },
  { additionalProperties: false, ...dimFilterProps, description: 'dims.<name>=<value> filters series by dimension' },
)
export type SeriesQuery = Static<typeof SeriesQuery> & Record<string, unknown>

export const AggregatesQuery = Type.Object(
  {
    metric: Type.String({ pattern: METRIC_PATTERN }),
    window: Type.Union(WINDOWS.map((w) => Type.Literal(w))),
    from: Type.Optional(Instant),
    to: Type.Optional(Instant),
    group_by: Type.Optional(GroupBy),
  },
  { additionalProperties: false, ...dimFilterProps },
)
export type AggregatesQuery = Static<typeof AggregatesQuery> & Record<string, unknown>

export const SlidingQuery = Type.Object(
  {
    metric: Type.String({ pattern: METRIC_PATTERN }),
    minutes: Type.Integer({ minimum: 1, maximum: 1440, default: 15 }),
    at: Type.Optional(Instant),
    group_by: Type.Optional(GroupBy),
  },
  { additionalProperties: false, ...dimFilterProps },
)
export type SlidingQuery = Static<typeof SlidingQuery> & Record<string, unknown>

const Num = Type.Union([Type.Number(), Type.Null()])
export const BucketView = Type.Object({
  start: Type.String(),
  end: Type.String(),
  series: Type.Integer({ description: 'series that contributed' }),
  count: Type.Integer(),
  sum: Type.Number(),
  min: Num,
  max: Num,
  mean: Num,
  stddev: Type.Union([Type.Number({ description: 'population standard deviation' }), Type.Null()]),
  p50: Num,
  p95: Num,
  p99: Num,
  last: Type.Union([Type.Number({ description: 'the sample with the latest event time' }), Type.Null()]),
  lastTs: Type.Union([Type.String(), Type.Null()]),
})

export function dimsFromQuery(query: Record<string, unknown>): Record<string, string> {
  const dims: Record<string, string> = {}
  for (const [k, v] of Object.entries(query)) if (k.startsWith('dims.') && typeof v === 'string') dims[k.slice(5)] = v
  return dims
}

export function instantParam(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback
  if (/^\d{1,15}$/.test(raw)) return Number(raw)
  const parsed = parseIsoInstant(raw)
  if (typeof parsed === 'string') throw new AppError('BAD_REQUEST', `${name} ${parsed}`)
  return parsed
}

/** A period given as {from, to} in a request body: both instants, `to` after `from`. */
export function periodParam(period: { from: string; to: string }): { fromMs: number; toMs: number } {
  const fromMs = instantParam('period.from', period.from, 0)
  const toMs = instantParam('period.to', period.to, 0)
  if (toMs <= fromMs) throw new AppError('BAD_REQUEST', 'period.to must be after period.from')
  return { fromMs, toMs }
}

/** A keyset cursor "<epoch ms>.<id>": rows strictly older than it come next. */
export const Cursor = Type.String({ pattern: '^[0-9]{1,15}\\.[0-9]{1,19}$', description: 'the `next` cursor of the previous page' })

export function cursorParam(raw: string | undefined): { ts: number; id: number } | null {
  if (raw === undefined) return null
  const [ts, id] = raw.split('.')
  return { ts: Number(ts), id: Number(id) }
}

export const cursorOf = (tsIso: string, id: string): string => `${Date.parse(tsIso)}.${id}`
