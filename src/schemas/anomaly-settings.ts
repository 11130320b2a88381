import { Type, type Static } from '@sinclair/typebox'

export const DETECTOR_NAMES = ['robust_z', 'ewma', 'seasonal'] as const

/** Per-metric detector settings; anything left out takes the default (GET shows the effective values). */
export const AnomalySettings = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean({ description: 'false: the metric is not scored at all (default true)' })),
    detectors: Type.Optional(
      Type.Array(Type.Union(DETECTOR_NAMES.map((d) => Type.Literal(d))), {
        minItems: 1,
        uniqueItems: true,
        description: 'robust_z: rolling median/MAD z-score; ewma: EWMA control chart; seasonal: same time of day/week baseline, once enough history exists',
      }),
    ),
    sensitivity: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'higher flags more readily (default 0.5)' })),
    seasonality: Type.Optional(Type.Union([Type.Literal('daily'), Type.Literal('weekly')], { description: 'period of the seasonal baseline (default daily)' })),
    window: Type.Optional(Type.Integer({ minimum: 8, maximum: 1000, description: 'samples in the robust z-score window' })),
    minHistory: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'samples a series needs before any flag (warm-up)' })),
  },
  { additionalProperties: false, examples: [{ detectors: ['robust_z', 'seasonal'], sensitivity: 0.7, seasonality: 'daily' }] },
)
export type AnomalySettings = Static<typeof AnomalySettings>
