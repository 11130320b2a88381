import { Type, type Static } from '@sinclair/typebox'

export const ALERT_STATUSES = ['pending', 'firing', 'resolved', 'cancelled'] as const
export type AlertStatus = (typeof ALERT_STATUSES)[number]

export const Sample = Type.Object({ ts: Type.String({ format: 'date-time' }), value: Type.Number(), eventId: Type.String(), score: Type.Optional(Type.Number({ description: 'anomaly rules: the flag score' })) })

/**
 * One change of an alert's state (cancelled: a pending alert whose condition stopped holding before it fired), exactly as every consumer receives it (live topic, alert stream,
 * webhook body). `id` grows with every change and is the idempotency key: a consumer that sees an
 * id again has already handled that change. Changes of one series come in id order.
 */
export const AlertEvent = Type.Object(
  {
    id: Type.String({ description: 'the change id, also the Idempotency-Key of a webhook delivery' }),
    alertId: Type.String(),
    status: Type.Union(ALERT_STATUSES.map((s) => Type.Literal(s))),
    at: Type.String({ format: 'date-time', description: 'event time of the sample that caused the change' }),
    rule: Type.Object({
      id: Type.String(),
      name: Type.String(),
      kind: Type.Union([Type.Literal('threshold'), Type.Literal('anomaly'), Type.Literal('silence')]),
      severity: Type.String(),
      labels: Type.Record(Type.String(), Type.String()),
    }),
    series: Type.Object({ id: Type.String(), key: Type.String(), metric: Type.String(), dims: Type.Record(Type.String(), Type.String()) }),
    condition: Type.Object({
      aggregate: Type.String(),
      window: Type.Integer({ description: 'seconds' }),
      op: Type.String(),
      value: Type.Number(),
      for: Type.Integer({ description: 'seconds' }),
    }),
    value: Type.Number({ description: 'the windowed aggregate at the change' }),
    pendingAt: Type.String({ format: 'date-time' }),
    firingAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    resolvedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    samples: Type.Array(Sample, { description: 'the samples in the window at the change (newest last, at most 50)' }),
    reason: Type.Optional(Type.String({ description: 'why an alert closed without a sample: its rule was disabled or deleted' })),
  },
  { additionalProperties: false },
)
export type AlertEvent = Static<typeof AlertEvent>
