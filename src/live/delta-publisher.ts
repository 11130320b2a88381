import type { Runtime } from '../infra/runtime.js'
import type { ChangeNotice } from './change-notice.js'
import { bucketField, kpiTopicCovers, rollUpForTopic, type AggregateTopic, type TopicBucket, type KpiTopic, type RankingTopic, type TargetsTopic, type AuditsTopic, type SourcesTopic, type ImportsTopic, type Topic } from './topic.js'
import { viewOf } from '../domain/rollup.js'
import { bucketsAtStarts } from '../repositories/aggregates.repository.js'
import { computeKpis } from '../repositories/kpis.repository.js'
import { rankAgencies } from '../services/ranking.js'
import { allTargets } from '../services/target-status.js'
import { listAudits } from '../repositories/audits.repository.js'
import { listImports } from '../repositories/imports.repository.js'
import { listSourceHealth } from '../ingest/source-health.js'

/** Bucket versions remembered per topic for the newer-than check; older buckets rarely change. */
const VERSIONS_KEPT = 5000
/** A single-valued topic (KPIs, a ranking, the targets) is versioned under this one field. */
const VALUE_FIELD = 'value'
/** Targets are recomputed at most this often: any metric change may move one. */
const TARGETS_EVERY_MS = 1000

export type SingleTopic = KpiTopic | RankingTopic | TargetsTopic | AuditsTopic | SourcesTopic | ImportsTopic

export interface SingleValue {
  version: number
  body: Record<string, unknown>
}

/**
 * Turns committed changes into topic deltas. Drainers announce which (metric, window, start) and
 * which case groups changed; each tick this hub reads the changed state once per (metric, window)
 * and once per KPI topic, and publishes each value through the newer-than guard, which assigns
 * the topic sequence. Deltas carry absolute values, so replaying one twice or receiving it after
 * a snapshot that already holds it changes nothing on the screen.
 */
export class DeltaPublisher {
  private dirty = new Map<string, { topic: AggregateTopic; starts: Set<number> }>()
  private dirtySingles = new Map<string, SingleTopic>()
  private targetsComputedAt = 0
  private stopped = false
  private loop: Promise<void> | null = null

  constructor(
    private readonly rt: Runtime,
    private readonly topics: () => Iterable<Topic>,
  ) {}

  onNotice(notice: ChangeNotice): void {
    for (const topic of this.topics()) {
      if (topic.kind === 'aggregate') {
        const starts = notice.metrics[topic.spec.metric]?.[topic.widthS]
        if (starts) this.markDirty(topic, starts)
      } else if ((topic.kind === 'kpi' || topic.kind === 'ranking') && notice.cases?.some((g) => kpiTopicCovers(topic, g))) {
        this.dirtySingles.set(topic.id, topic)
      } else if (topic.kind === 'targets' && Object.keys(notice.metrics).length > 0) {
        this.dirtySingles.set(topic.id, topic)
      } else if (topic.kind === 'audits' && notice.audits) {
        this.dirtySingles.set(topic.id, topic)
      } else if (topic.kind === 'imports' && notice.imports) {
        this.dirtySingles.set(topic.id, topic)
      }
    }
  }

  markDirty(topic: AggregateTopic, starts: Iterable<number>): void {
    let d = this.dirty.get(topic.id)
    if (!d) this.dirty.set(topic.id, (d = { topic, starts: new Set() }))
    for (const s of starts) d.starts.add(s)
  }

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const began = Date.now()
        try {
          await this.tick()
        } catch (err) {
          this.rt.log.warn({ err }, 'live delta tick failed; changes stay queued')
        }
        await new Promise((r) => setTimeout(r, Math.max(0, this.rt.config.liveTickMs - (Date.now() - began))))
      }
    })()
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.loop
  }

  /** Publishes rolled-up buckets through the guard; used by ticks and by resubscribing clients. */
  async publishBuckets(topic: AggregateTopic, buckets: Iterable<TopicBucket>): Promise<number> {
    const width = topic.widthS * 1000
    return publishThroughGuard(
      this.rt,
      topic.id,
      [...buckets].map((b) => ({
        field: bucketField(b),
        version: b.version,
        message: { type: 'delta', topic: topic.id, v: b.version, ...(b.group ? { group: b.group } : {}), bucket: viewOf(b, width) },
      })),
    )
  }

  async publishSingle(topic: SingleTopic, value: SingleValue): Promise<number> {
    return publishSingleValue(this.rt, topic, value)
  }

  private async tick(): Promise<void> {
    await this.tickAggregates()
    await this.tickSingles()
  }

  private async tickAggregates(): Promise<void> {
    if (this.dirty.size === 0) return
    const batch = this.dirty
    this.dirty = new Map()
    try {
      const groups = new Map<string, { metric: string; widthS: number; starts: Set<number>; items: { topic: AggregateTopic; starts: Set<number> }[] }>()
      for (const d of batch.values()) {
        const gk = `${d.topic.widthS}:${d.topic.spec.metric}`
        let g = groups.get(gk)
        if (!g) groups.set(gk, (g = { metric: d.topic.spec.metric, widthS: d.topic.widthS, starts: new Set(), items: [] }))
        for (const s of d.starts) g.starts.add(s)
        g.items.push(d)
      }
      for (const g of groups.values()) {
        const rows = await bucketsAtStarts(this.rt.db, g.metric, g.widthS, [...g.starts])
        for (const { topic, starts } of g.items) {
          await this.publishBuckets(
            topic,
            rollUpForTopic(topic, rows).filter((b) => starts.has(b.startMs)),
          )
        }
      }
    } catch (err) {
      // Nothing is lost: requeue the batch so the next tick retries it.
      for (const d of batch.values()) this.markDirty(d.topic, d.starts)
      throw err
    }
  }

  private async tickSingles(): Promise<void> {
    if (this.dirtySingles.size === 0) return
    const batch = this.dirtySingles
    this.dirtySingles = new Map()
    const now = Date.now()
    try {
      for (const topic of batch.values()) {
        if (topic.kind === 'targets') {
          if (now - this.targetsComputedAt < TARGETS_EVERY_MS) {
            this.dirtySingles.set(topic.id, topic)
            continue
          }
          this.targetsComputedAt = now
        }
        await this.publishSingle(topic, await singleValue(this.rt, topic))
      }
    } catch (err) {
      for (const t of batch.values()) this.dirtySingles.set(t.id, t)
      throw err
    }
  }
}

/**
 * The current value of a single-valued topic. KPI and ranking versions are the newest case
 * version the read saw; targets and audits read many rows, so their version is the instant the
 * read began (later reads see at least as much committed state).
 */
export async function singleValue(rt: Runtime, topic: SingleTopic): Promise<SingleValue> {
  const now = Date.now()
  switch (topic.kind) {
    case 'kpi': {
      const { rows, version } = await computeKpis(rt.db, { filter: topic.spec.filter, groupBy: [], asOfMs: now, fromMs: null })
      return { version, body: { kpis: rows[0]?.kpis } }
    }
    case 'ranking': {
      const { agencies, version } = await rankAgencies(rt.db, topic.spec.filter, topic.spec.by, now, null, 100)
      return { version, body: { agencies } }
    }
    case 'targets':
      return { version: now, body: { targets: await allTargets(rt.db, now, rt.config.dayOffsetMin * 60_000) } }
    case 'audits':
      return { version: now, body: { audits: await listAudits(rt.db, 20) } }
    case 'imports':
      return { version: now, body: { imports: await listImports(rt.db, 20) } }
    case 'sources':
      return { version: now, body: { sources: await listSourceHealth(rt.redis, rt.keys, now, rt.config.sourceSilentSec * 1000) } }
  }
}

/** Publishes the whole value of a single-valued topic, if newer than the last one published. */
export function publishSingleValue(rt: Pick<Runtime, 'redis' | 'keys' | 'config' | 'metrics'>, topic: SingleTopic, value: SingleValue): Promise<number> {
  return publishThroughGuard(rt, topic.id, [{ field: VALUE_FIELD, version: value.version, message: { type: 'delta', topic: topic.id, v: value.version, ...value.body } }])
}

export interface GuardedItem {
  /** What the version is per: a bucket start, or one field for single-valued topics. */
  field: string
  version: number
  message: object
}

/**
 * Publishes each item whose version is newer than the last published for its field: assigns the
 * topic's next sequence, appends to its bounded history and fans out to every hub. Returns how
 * many were published.
 */
export async function publishThroughGuard(rt: Pick<Runtime, 'redis' | 'keys' | 'config' | 'metrics'>, topicId: string, items: readonly GuardedItem[]): Promise<number> {
  if (items.length === 0) return 0
  const { redis, keys, config, metrics } = rt
  const pipeline = redis.pipeline()
  for (const item of items) {
    pipeline.lanternPublishDelta(
      keys.topicSeq(topicId),
      keys.topicHistory(topicId),
      keys.topicVersions(topicId),
      keys.topicChannel(topicId),
      item.field,
      item.version,
      JSON.stringify(item.message),
      config.liveHistory,
      VERSIONS_KEPT,
    )
  }
  const replies = (await pipeline.exec()) ?? []
  let published = 0
  for (const [err, seq] of replies) {
    if (err) throw err
    if ((seq as number) > 0) published++
  }
  metrics.deltasPublished.inc(published)
  return published
}
