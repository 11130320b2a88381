import { Type, type Static } from '@sinclair/typebox'
import { DIM_KEY_PATTERN, METRIC_PATTERN } from './metric-event.js'
import { Duration } from './duration.js'

export const RULE_AGGREGATES = ['last', 'mean', 'max', 'min', 'sum', 'count'] as const
export const RULE_OPS = ['>', '>=', '<', '<=', '==', '!='] as const
export const SEVERITIES = ['info', 'warning', 'critical'] as const

const Label = Type.String({ minLength: 1, maxLength: 256 })

export const RuleBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    kind: Type.Optional(
      Type.Union([Type.Literal('threshold'), Type.Literal('anomaly'), Type.Literal('silence')], {
        default: 'threshold',
        description:
          'threshold: the windowed aggregate of the samples against `value`; anomaly: fires when a sample is flagged with a score >= `value` (default 0.5) within the window; silence: fires when a source (dims.source, "*" for every source) has sent nothing for `for` (wall clock), resolves when data returns',
      }),
    ),
    metric: Type.Optional(Type.String({ pattern: METRIC_PATTERN, description: 'required for threshold and anomaly rules' })),
    dims: Type.Optional(
      Type.Record(Type.String({ pattern: DIM_KEY_PATTERN }), Type.String({ minLength: 1, maxLength: 1024 }), {
        maxProperties: 16,
        additionalProperties: false,
        description: 'series whose dims have these values ("*": any value, the dim must be present); each matching series is evaluated on its own',
      }),
    ),
    aggregate: Type.Optional(Type.Union(RULE_AGGREGATES.map((a) => Type.Literal(a)), { description: 'threshold rules: how the window reads the samples (default last)' })),
    window: Type.Optional(Duration('the sliding window ending at each sample, on event time (default 5m)')),
    op: Type.Optional(Type.Union(RULE_OPS.map((o) => Type.Literal(o)), { description: 'default ">" for thresholds, ">=" for anomaly rules' })),
    value: Type.Optional(Type.Number({ description: 'the threshold; for anomaly rules the least score that counts (0..1, default 0.5)' })),
    for: Type.Optional(Duration('how long the condition must hold (event time) before pending turns firing (default 0: fires at once)')),
    severity: Type.Optional(Type.Union(SEVERITIES.map((s) => Type.Literal(s)), { default: 'warning' })),
    labels: Type.Optional(Type.Record(Type.String({ pattern: DIM_KEY_PATTERN }), Label, { maxProperties: 32, additionalProperties: false })),
    enabled: Type.Optional(Type.Boolean({ default: true })),
  },
  {
    additionalProperties: false,
    examples: [
      { name: 'Huong river above alarm level 3', metric: 'water.level', dims: { station: 'kim-long' }, aggregate: 'max', window: '5m', op: '>=', value: 3.0, for: '10m', severity: 'critical', labels: { team: 'flood-desk' } },
      { name: 'PM2.5 anomaly in any province', kind: 'anomaly', metric: 'air.pm25', dims: { province: '*' }, value: 0.8, severity: 'warning' },
      { name: 'A source went quiet', kind: 'silence', dims: { source: '*' }, for: '10m', severity: 'critical' },
    ],
  },
)
export type RuleBody = Static<typeof RuleBody>
export type RuleAggregate = (typeof RULE_AGGREGATES)[number]
export type RuleOp = (typeof RULE_OPS)[number]
