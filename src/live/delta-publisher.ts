import type { Runtime } from '../infra/runtime.js'
import type { ChangeNotice } from './change-notice.js'
import type { Topic } from './topic.js'
import { dimsMatch } from '../domain/series-key.js'
import { rollUp, viewOf, type RolledBucket } from '../domain/rollup.js'
import { bucketsAtStarts } from '../repositories/aggregates.repository.js'

/** Bucket versions remembered per topic for the newer-than check; older buckets rarely change. */
const VERSIONS_KEPT = 5000

/**
 * Turns committed changes into topic deltas. Drainers announce which (metric, window, start)
 * changed; each tick this hub reads those buckets once per (metric, window) for every topic it
 * serves, rolls them up per topic, and publishes each bucket through the newer-than guard, which
 * assigns the topic sequence. Deltas carry absolute bucket values, so replaying one twice or
 * receiving it after a snapshot that already holds it changes nothing on the screen.
 */
export class DeltaPublisher {
  private dirty = new Map<string, { topic: Topic; starts: Set<number> }>()
  private stopped = false
  private loop: Promise<void> | null = null

  constructor(
    private readonly rt: Runtime,
    private readonly topics: () => Iterable<Topic>,
  ) {}

  onNotice(notice: ChangeNotice): void {
    for (const topic of this.topics()) {
      const starts = notice.metrics[topic.spec.metric]?.[topic.widthS]
      if (starts) this.markDirty(topic, starts)
    }
  }

  markDirty(topic: Topic, starts: Iterable<number>): void {
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
  async publish(topic: Topic, buckets: Iterable<RolledBucket>): Promise<number> {
    const { redis, keys, config, metrics } = this.rt
    const width = topic.widthS * 1000
    const pipeline = redis.pipeline()
    let n = 0
    for (const rb of buckets) {
      const message = JSON.stringify({ type: 'delta', topic: topic.id, v: rb.version, bucket: viewOf(rb, width) })
      pipeline.lanternPublishDelta(
        keys.topicSeq(topic.id),
        keys.topicHistory(topic.id),
        keys.topicVersions(topic.id),
        keys.topicChannel(topic.id),
        String(rb.startMs),
        rb.version,
        message,
        config.liveHistory,
        VERSIONS_KEPT,
      )
      n++
    }
    if (n === 0) return 0
    const replies = (await pipeline.exec()) ?? []
    let published = 0
    for (const [err, seq] of replies) {
      if (err) throw err
      if ((seq as number) > 0) published++
    }
    metrics.deltasPublished.inc(published)
    return published
  }

  private async tick(): Promise<void> {
    if (this.dirty.size === 0) return
    const batch = this.dirty
    this.dirty = new Map()
    try {
      const groups = new Map<string, { metric: string; widthS: number; starts: Set<number>; items: { topic: Topic; starts: Set<number> }[] }>()
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
          const byStart = rollUp(rows.filter((r) => dimsMatch(r.dims, topic.spec.dims))).get('')
          if (!byStart) continue
          await this.publish(
            topic,
            [...starts].flatMap((s) => byStart.get(s) ?? []),
          )
        }
      }
    } catch (err) {
      // Nothing is lost: requeue the batch so the next tick retries it.
      for (const d of batch.values()) this.markDirty(d.topic, d.starts)
      throw err
    }
  }
}
