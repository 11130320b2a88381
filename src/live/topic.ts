import { createHash } from 'node:crypto'
import { Type, type Static } from '@sinclair/typebox'
import { DIM_KEY_PATTERN, METRIC_PATTERN } from '../schemas/metric-event.js'
import { WINDOWS, WINDOW_MS, type WindowName } from '../domain/windows.js'
import { canonicalDims, dimsMatch } from '../domain/series-key.js'
import { rollUp, type RolledBucket } from '../domain/rollup.js'
import type { MatchedBucketRow } from '../repositories/aggregates.repository.js'
import { KPI_DIMS, kpiFilterOf, type KpiFilter } from '../repositories/kpis.repository.js'
import { RANK_BY, type RankBy } from '../services/ranking.js'
import type { CaseGroup } from './change-notice.js'

export const AggregateTopicSpec = Type.Object(
  {
    kind: Type.Literal('aggregate'),
    metric: Type.String({ pattern: METRIC_PATTERN }),
    window: Type.Union(WINDOWS.map((w) => Type.Literal(w))),
    dims: Type.Optional(
      Type.Record(Type.String({ pattern: DIM_KEY_PATTERN }), Type.String({ minLength: 1, maxLength: 1024 }), {
        maxProperties: 16,
        additionalProperties: false,
        description: 'a value filters; "*" is a wildcard: one roll-up per value of that dim (e.g. {"province":"*"}: every province)',
      }),
    ),
  },
  { additionalProperties: false, description: 'rolled-up tumbling buckets of every series of `metric` whose dims contain `dims`' },
)
export type AggregateTopicSpec = Static<typeof AggregateTopicSpec>

const KpiValue = Type.String({ minLength: 1, maxLength: 128 })
export const KpiTopicSpec = Type.Object(
  {
    kind: Type.Literal('kpi'),
    service: Type.Optional(KpiValue),
    province: Type.Optional(KpiValue),
    agency: Type.Optional(KpiValue),
    category: Type.Optional(KpiValue),
  },
  { additionalProperties: false, description: 'the case KPIs of /v1/kpis for this filter, now' },
)
export type KpiTopicSpec = Static<typeof KpiTopicSpec>

export const RankingTopicSpec = Type.Object(
  {
    kind: Type.Literal('ranking'),
    by: Type.Union(RANK_BY.map((b) => Type.Literal(b))),
    service: Type.Optional(KpiValue),
    province: Type.Optional(KpiValue),
    category: Type.Optional(KpiValue),
  },
  { additionalProperties: false, description: 'agencies ordered by a KPI, now (as /v1/kpis/ranking)' },
)

export const TargetsTopicSpec = Type.Object({ kind: Type.Literal('targets') }, { additionalProperties: false, description: 'every target with its status' })

export const AuditsTopicSpec = Type.Object({ kind: Type.Literal('audits') }, { additionalProperties: false, description: 'recent audits with their status and progress' })

export const ImportsTopicSpec = Type.Object(
  { kind: Type.Literal('imports') },
  { additionalProperties: false, description: 'recent history imports with their status and progress (rows read, events appended and committed, bad rows)' },
)

export const DiscrepancyTopicSpec = Type.Object(
  { kind: Type.Literal('discrepancies') },
  { additionalProperties: false, description: 'every cross-check that found a discrepancy, as it is recorded' },
)

export const AnomaliesTopicSpec = Type.Object(
  { kind: Type.Literal('anomalies'), metric: Type.Optional(Type.String({ pattern: METRIC_PATTERN, description: 'only this metric (default: every metric)' })) },
  { additionalProperties: false, description: 'anomaly flags as the drain commits them (events: the snapshot holds the newest, oldest first)' },
)

export const AlertsTopicSpec = Type.Object(
  { kind: Type.Literal('alerts') },
  { additionalProperties: false, description: 'every alert state change (pending, firing, resolved, cancelled) as committed; the snapshot adds the open alerts' },
)

export const SourcesTopicSpec = Type.Object({ kind: Type.Literal('sources') }, { additionalProperties: false, description: 'every source with its health (as /v1/sources), every few seconds' })

export const TopicSpec = Type.Union([AggregateTopicSpec, KpiTopicSpec, RankingTopicSpec, TargetsTopicSpec, AuditsTopicSpec, DiscrepancyTopicSpec, AnomaliesTopicSpec, AlertsTopicSpec, SourcesTopicSpec, ImportsTopicSpec])
export type TopicSpec = Static<typeof TopicSpec>

export interface AggregateTopic {
  /** Stable id shared by every hub: the same spec always names the same topic and sequence. */
  id: string
  kind: 'aggregate'
  spec: { kind: 'aggregate'; metric: string; window: WindowName; dims: Record<string, string> }
  widthS: number
  /** The dims given a value. */
  filter: Record<string, string>
  /** The dims given "*": one roll-up per combination of their values. */
  groupBy: string[]
}

export const WILDCARD = '*'

export interface KpiTopic {
  id: string
  kind: 'kpi'
  spec: { kind: 'kpi'; filter: KpiFilter }
}

export interface RankingTopic {
  id: string
  kind: 'ranking'
  spec: { kind: 'ranking'; by: RankBy; filter: KpiFilter }
}

export interface TargetsTopic {
  id: string
  kind: 'targets'
  spec: { kind: 'targets' }
}

export const TARGETS_TOPIC: TargetsTopic = { id: 'targets', kind: 'targets', spec: { kind: 'targets' } }

export interface AuditsTopic {
  id: string
  kind: 'audits'
  spec: { kind: 'audits' }
}

export const AUDITS_TOPIC: AuditsTopic = { id: 'audits', kind: 'audits', spec: { kind: 'audits' } }

export interface ImportsTopic {
  id: string
  kind: 'imports'
  spec: { kind: 'imports' }
}

export const IMPORTS_TOPIC: ImportsTopic = { id: 'imports', kind: 'imports', spec: { kind: 'imports' } }

export interface SourcesTopic {
  id: string
  kind: 'sources'
  spec: { kind: 'sources' }
}

export const SOURCES_TOPIC: SourcesTopic = { id: 'sources', kind: 'sources', spec: { kind: 'sources' } }

export interface DiscrepancyTopic {
  id: string
  kind: 'discrepancies'
  spec: { kind: 'discrepancies' }
}

export const DISCREPANCY_TOPIC: DiscrepancyTopic = { id: 'discrepancies', kind: 'discrepancies', spec: { kind: 'discrepancies' } }

export interface AnomaliesTopic {
  id: string
  kind: 'anomalies'
  spec: { kind: 'anomalies'; metric: string | null }
}

export const ALL_ANOMALIES_TOPIC: AnomaliesTopic = { id: 'anomalies', kind: 'anomalies', spec: { kind: 'anomalies', metric: null } }

export interface AlertsTopic {
  id: string
  kind: 'alerts'
  spec: { kind: 'alerts' }
}

export const ALERTS_TOPIC: AlertsTopic = { id: 'alerts', kind: 'alerts', spec: { kind: 'alerts' } }

/** Topics whose deltas are events to append (each its own), not values that replace the last. */
export type EventTopic = DiscrepancyTopic | AnomaliesTopic | AlertsTopic

export type Topic = AggregateTopic | KpiTopic | RankingTopic | TargetsTopic | AuditsTopic | SourcesTopic | ImportsTopic | EventTopic

const digest = (canonical: unknown): string => createHash('sha256').update(JSON.stringify(canonical)).digest('base64url').slice(0, 22)

export function topicOf(spec: TopicSpec): Topic {
  if (spec.kind === 'discrepancies') return DISCREPANCY_TOPIC
  if (spec.kind === 'alerts') return ALERTS_TOPIC
  if (spec.kind === 'anomalies') {
    if (spec.metric === undefined) return ALL_ANOMALIES_TOPIC
    return { id: `anom.${digest({ metric: spec.metric })}`, kind: 'anomalies', spec: { kind: 'anomalies', metric: spec.metric } }
  }
  if (spec.kind === 'targets') return TARGETS_TOPIC
  if (spec.kind === 'audits') return AUDITS_TOPIC
  if (spec.kind === 'imports') return IMPORTS_TOPIC
  if (spec.kind === 'sources') return SOURCES_TOPIC
  if (spec.kind === 'ranking') {
    const filter = kpiFilterOf(spec)
    const canonical = { kind: 'ranking' as const, by: spec.by as RankBy, filter }
    return { id: `rank.${digest(canonical)}`, kind: 'ranking', spec: canonical }
  }
  if (spec.kind === 'kpi') {
    const filter = kpiFilterOf(spec)
    const canonical = { kind: 'kpi' as const, filter }
    return { id: `kpi.${digest(canonical)}`, kind: 'kpi', spec: canonical }
  }
  const canonical = { kind: spec.kind, metric: spec.metric, window: spec.window, dims: canonicalDims(spec.dims ?? {}) }
  const entries = Object.entries(canonical.dims)
  return {
    id: `agg.${digest(canonical)}`,
    kind: 'aggregate',
    spec: canonical,
    widthS: WINDOW_MS[spec.window] / 1000,
    filter: Object.fromEntries(entries.filter(([, v]) => v !== WILDCARD)),
    groupBy: entries.filter(([, v]) => v === WILDCARD).map(([k]) => k),
  }
}

/** Whether a change to cases of this group can move the topic's figures. */
export function kpiTopicCovers(topic: KpiTopic | RankingTopic, group: CaseGroup): boolean {
  return KPI_DIMS.every((d) => topic.spec.filter[d] === undefined || topic.spec.filter[d] === group[d])
}

export interface TopicBucket extends RolledBucket {
  /** The wildcard dims' values of this roll-up; null for a topic without wildcards. */
  group: Record<string, string> | null
}

/** Rolls stored per-series buckets up into the topic's buckets, one set per wildcard group. */
export function rollUpForTopic(topic: AggregateTopic, rows: readonly MatchedBucketRow[]): TopicBucket[] {
  const matching = rows.filter((r) => dimsMatch(r.dims, topic.filter) && topic.groupBy.every((k) => r.dims[k] !== undefined))
  const out: TopicBucket[] = []
  for (const [gk, byStart] of rollUp(matching, topic.groupBy)) {
    const group = topic.groupBy.length === 0 ? null : Object.fromEntries(topic.groupBy.map((k, i) => [k, (JSON.parse(gk) as string[])[i] as string]))
    for (const rb of byStart.values()) out.push({ ...rb, group })
  }
  return out.sort((a, b) => a.startMs - b.startMs)
}

/** The guard field of a topic bucket: its group and start. */
export const bucketField = (b: TopicBucket): string => (b.group ? `${JSON.stringify(b.group)}|${b.startMs}` : String(b.startMs))
