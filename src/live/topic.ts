import { createHash } from 'node:crypto'
import { Type, type Static } from '@sinclair/typebox'
import { DIM_KEY_PATTERN, METRIC_PATTERN } from '../schemas/metric-event.js'
import { WINDOWS, WINDOW_MS, type WindowName } from '../domain/windows.js'
import { canonicalDims } from '../domain/series-key.js'

export const AggregateTopicSpec = Type.Object(
  {
    kind: Type.Literal('aggregate'),
    metric: Type.String({ pattern: METRIC_PATTERN }),
    window: Type.Union(WINDOWS.map((w) => Type.Literal(w))),
    dims: Type.Optional(Type.Record(Type.String({ pattern: DIM_KEY_PATTERN }), Type.String({ minLength: 1, maxLength: 1024 }), { maxProperties: 16 })),
  },
  { additionalProperties: false, description: 'rolled-up tumbling buckets of every series of `metric` whose dims contain `dims`' },
)
export type AggregateTopicSpec = Static<typeof AggregateTopicSpec>

export interface Topic {
  /** Stable id shared by every hub: the same spec always names the same topic and sequence. */
  id: string
  spec: { kind: 'aggregate'; metric: string; window: WindowName; dims: Record<string, string> }
  widthS: number
}

export function topicOf(spec: AggregateTopicSpec): Topic {
  const canonical = { kind: spec.kind, metric: spec.metric, window: spec.window, dims: canonicalDims(spec.dims ?? {}) }
  const digest = createHash('sha256').update(JSON.stringify(canonical)).digest('base64url').slice(0, 22)
  return { id: `agg.${digest}`, spec: canonical, widthS: WINDOW_MS[spec.window] / 1000 }
}
