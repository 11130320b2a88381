import { Type, type Static } from '@sinclair/typebox'

/** Latest instant an epoch-millisecond `ts` may name (9999-12-31T23:59:59.999Z). */
export const MAX_EPOCH_MS = 253_402_300_799_999

export const SOURCE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'
export const METRIC_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'
export const DIM_KEY_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'

export const Timestamp = Type.Union(
  [
    Type.String({ minLength: 10, maxLength: 40, description: 'ISO-8601 with a time zone (Z or +hh:mm)' }),
    Type.Integer({ minimum: 0, maximum: MAX_EPOCH_MS, description: 'epoch milliseconds' }),
  ],
  { description: 'event time: ISO-8601 with zone, or epoch milliseconds' },
)

export const Dimensions = (maxDims: number, maxValueLength: number) =>
  Type.Record(Type.String({ pattern: DIM_KEY_PATTERN }), Type.String({ minLength: 1, maxLength: maxValueLength }), {
    maxProperties: maxDims,
    additionalProperties: false,
    description: 'flat string map; with the metric it names the series',
  })

export const metricEventSchema = (maxDims: number, maxValueLength: number) =>
  Type.Object(
    {
      id: Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\u0000-\\u001f]+$', description: 'idempotency key, unique per source' }),
      source: Type.String({ pattern: SOURCE_PATTERN, description: 'name of the sending system' }),
      metric: Type.String({ pattern: METRIC_PATTERN }),
      ts: Timestamp,
      value: Type.Number({ description: 'finite number' }),
      dims: Type.Optional(Dimensions(maxDims, maxValueLength)),
    },
    { additionalProperties: false, $id: 'MetricEvent' },
  )

export type MetricEventInput = Static<ReturnType<typeof metricEventSchema>>

/** The form an event has in the log: time in epoch ms, dims canonical (sorted, never absent). */
export interface MetricEvent {
  id: string
  source: string
  metric: string
  ts: number
  value: number
  dims: Record<string, string>
}

export const IngestAccepted = Type.Object({
  accepted: Type.Integer({ description: 'events appended to the log' }),
  duplicates: Type.Integer({ description: 'events whose id was already accepted within the idempotency window' }),
})
