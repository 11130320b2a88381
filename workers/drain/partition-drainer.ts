import type { Logger } from 'pino'
import type { Redis } from '../../src/infra/redis.js'
import type { Keys } from '../../src/infra/keys.js'
import type { Db } from '../../src/infra/db.js'
import type { Metrics } from '../../src/metrics.js'
import type { MetricEvent } from '../../src/schemas/metric-event.js'
import type { ReportEvent } from '../../src/schemas/report-event.js'
import { EVENT_KINDS, type EventKind } from '../../src/schemas/log-entry.js'
import { writeCases } from '../../src/repositories/cases.repository.js'
import { foldCases } from './case-folder.js'
import { archiveEntries, type ArchiveRow } from '../../src/repositories/archive.repository.js'
import { fingerprints, link } from '../../src/domain/hash-chain.js'
import type { CaseGroup } from '../../src/live/change-notice.js'
import { foldBatch, type FoldSettings } from '../../src/domain/fold.js'
import { addValue, emptyBucket, fromStored, observeLast, toStored, type BucketState } from '../../src/domain/bucket.js'
import { advanceCheckpoint, loadCheckpoint, type Checkpoint } from '../../src/repositories/checkpoints.repository.js'
import { touchSeries } from '../../src/repositories/series.repository.js'
import { loadBuckets, upsertBuckets, type BucketRef } from '../../src/repositories/aggregates.repository.js'
import { sql } from 'kysely'
import { BucketCache, bucketCacheKey } from './bucket-cache.js'
import type { ChangeNotice } from '../../src/live/change-notice.js'
import type { Config } from '../../src/config.js'
import { AlertingConfigCache } from '../../src/services/alerting-config.js'
import { DetectionStage, type DetectionWritten } from './detection-stage.js'
import { publishAlertEvents, publishAnomalies } from '../../src/live/event-topics.js'
import { presentAnomaly } from '../../src/repositories/anomalies.repository.js'

export interface DrainSettings extends FoldSettings {
  batchEvents: number
  cacheBuckets: number
  retentionMs: number
  maxEntries: number
  /** False when rebuilding from an archive: no Redis log to trim, no screens to tell. */
  live?: boolean
  /** Series whose detector and rule states a drainer keeps in memory. */
  cacheSeries?: number
}

export interface DrainDeps {
  redis: Redis
  db: Db
  keys: Keys
  metrics: Metrics
  log: Logger
  config: Config
  source?: EntrySource
  /** Sends committed alert changes on (alert stream, webhooks); a sweeper catches whatever this misses. */
  dispatchAlerts?: () => Promise<unknown>
}

/** Where a drainer reads log entries from: the partition's Redis stream, or an archive when rebuilding. */
export type EntrySource = (partition: number, afterId: string, count: number) => Promise<[string, string[]][]>

/** Trimming is cheap but not free: at most this often per partition. */
const TRIM_EVERY_MS = 5000

export interface LogEntry {
  id: string
  arrivedAt: number
  kind: EventKind
  /** Each event's JSON text as appended (the fingerprints are taken over these). */
  lines: string[]
  /** The same events as one NDJSON text, exactly as the log holds it. */
  text: string
  events: { ts: number }[]
}

class CheckpointMoved extends Error {}

/** Entries are read a few at a time; one entry holds the share of one ingest request. */
const ENTRIES_PER_READ = 64

const entryIdMs = (id: string): number => Number(id.slice(0, id.indexOf('-')))

/**
 * Folds one partition's log into aggregate state, a batch per transaction, exactly once: the
 * transaction that writes the state also moves the checkpoint, and only if it was still where the
 * batch was read from. Caches (series ids, hot buckets) are trusted only at the checkpoint they
 * were built at; any failure drops them and the next batch reloads from Postgres.
 */
export class PartitionDrainer {
  private readonly seriesIds = new Map<string, number>()
  private readonly cache: BucketCache
  private readonly detection: DetectionStage
  private readonly alerting: AlertingConfigCache
  private checkpoint: Checkpoint | null = null
  private trimmedAt = 0

  constructor(
    readonly partition: number,
    private readonly deps: DrainDeps,
    private readonly settings: DrainSettings,
  ) {
    this.cache = new BucketCache(settings.cacheBuckets)
    this.detection = new DetectionStage(deps.db, deps.log, settings.cacheSeries ?? 20_000)
    this.alerting = new AlertingConfigCache(deps)
  }

  /** Drains one batch; returns the number of events committed (0 when the log is caught up). */
  async drainOnce(): Promise<number> {
    try {
      return await this.drainBatch()
    } catch (err) {
      this.reset()
      if (err instanceof CheckpointMoved) {
        this.deps.metrics.checkpointConflicts.inc()
        this.deps.log.warn({ partition: this.partition }, 'checkpoint moved by another drainer; batch rolled back')
        return 0
      }
      throw err
    }
  }

  /**
   * Called when this worker (re)gains the partition: cached state survives only if nobody else
   * committed since this drainer's last commit.
   */
  async resumeLease(): Promise<void> {
    const current = await loadCheckpoint(this.deps.db, this.partition)
    if (this.checkpoint?.lastId !== current.lastId) this.reset()
    this.checkpoint = current
  }

  /** Forgets cached state; the next batch starts from what Postgres holds. */
  reset(): void {
    this.cache.clear()
    this.detection.clear()
    this.checkpoint = null
  }

  private async drainBatch(): Promise<number> {
    const { redis, db, keys, metrics, log } = this.deps
    const from = this.checkpoint ?? (await loadCheckpoint(db, this.partition))
    this.checkpoint = from
    const { entries, caughtUp } = await this.readEntries(from.lastId)
    if (entries.length === 0) {
      metrics.drainLag.set({ partition: this.partition }, 0)
      return 0
    }
    const samples: MetricEvent[] = []
    const reports: ReportEvent[] = []
    for (const e of entries) {
      if (e.kind === EVENT_KINDS.report) reports.push(...(e.events as ReportEvent[]))
      else samples.push(...(e.events as MetricEvent[]))
    }
    const lastId = (entries[entries.length - 1] as LogEntry).id
    // Read after the entries: a rule created before an event was posted is seen by the batch holding it.
    const alerting = await this.alerting.get()
    const fold = foldBatch(samples, from.watermarkMs, this.settings)
    const cases = await foldCases(db, this.partition, reports)

    await this.resolveSeriesIds([...fold.series.keys()])
    await this.loadMissingBuckets(fold.series)
    const seriesList = [...fold.series.values()]
    await this.detection.prepare(seriesList, this.seriesIds, alerting)
    const detected = this.detection.run(seriesList)

    const touched: { seriesKey: string; metric: string; widthS: number; startMs: number; state: BucketState }[] = []
    for (const sb of fold.series.values()) {
      const id = this.seriesIds.get(sb.key)
      for (const bv of sb.buckets.values()) {
        const state = (id !== undefined ? this.cache.get(bucketCacheKey(id, bv.widthS, bv.startMs)) : undefined) ?? emptyBucket()
        for (const v of bv.values) addValue(state, v)
        observeLast(state, bv.lastTs, bv.last)
        touched.push({ seriesKey: sb.key, metric: sb.metric, widthS: bv.widthS, startMs: bv.startMs, state })
      }
    }

    const archive = this.archiveRows(entries, from)
    const to = { lastId, watermarkMs: fold.watermarkMs, archiveSeq: archive.nextSeq, archiveHash: archive.head }
    const started = process.hrtime.bigint()
    let written: DetectionWritten = { anomalies: [], alertEvents: [] }
    await db.transaction().execute(async (trx) => {
      if (!(await advanceCheckpoint(trx, from, to, fold.events + reports.length, fold.lateEvents))) throw new CheckpointMoved()
      const ids = await touchSeries(
        trx,
        [...fold.series.values()].map((sb) => ({ ...sb, partition: this.partition })),
      )
      for (const [k, id] of ids) this.seriesIds.set(k, id)
      await upsertBuckets(
        trx,
        touched.map((t) => ({ seriesId: this.seriesIds.get(t.seriesKey) as number, widthS: t.widthS, startMs: t.startMs, ...toStored(t.state) })),
      )
      await writeCases(trx, cases.writes)
      written = await this.detection.write(trx, detected, this.seriesIds, (k) => fold.series.get(k) as (typeof seriesList)[number])
      await archiveEntries(trx, archive.rows)
    })
    metrics.commitLatency.observe(Number(process.hrtime.bigint() - started) / 1e9)

    this.checkpoint = { partition: this.partition, ...to }
    for (const t of touched) {
      this.cache.set(bucketCacheKey(this.seriesIds.get(t.seriesKey) as number, t.widthS, t.startMs), t.state, t.startMs + t.widthS * 1000)
    }
    this.cache.evict(fold.watermarkMs - this.settings.latenessMs)
    this.detection.evict()

    metrics.eventsDrained.inc({ partition: this.partition }, fold.events + reports.length)
    if (fold.lateEvents > 0) metrics.eventsLate.inc({ partition: this.partition }, fold.lateEvents)
    metrics.drainLag.set({ partition: this.partition }, caughtUp ? 0 : Math.max(0, (Date.now() - entryIdMs(lastId)) / 1000))
    log.debug(
      { partition: this.partition, fromId: from.lastId, toId: lastId, entries: entries.length, samples: fold.events, reports: reports.length, late: fold.lateEvents, buckets: touched.length, cases: cases.writes.length, anomalies: written.anomalies.length, alertChanges: written.alertEvents.length },
      'batch committed',
    )
    for (const e of written.alertEvents) {
      log.info({ partition: this.partition, alertEventId: e.id, alertId: e.alertId, ruleId: e.rule.id, seriesId: e.series.id, status: e.status, at: e.at, value: e.value }, 'alert changed')
    }
    if (this.settings.live !== false) {
      await this.announce(touched, cases.groups)
      await this.publishDetections(written)
      await this.trim(lastId)
    }
    return fold.events + reports.length
  }

  /** Live topics and alert delivery, after the commit; the dispatcher's sweeper re-sends any alert change lost here. */
  private async publishDetections(w: DetectionWritten): Promise<void> {
    if (w.anomalies.length === 0 && w.alertEvents.length === 0) return
    this.deps.metrics.anomaliesFlagged.inc(w.anomalies.length)
    this.deps.metrics.alertChanges.inc(w.alertEvents.length)
    try {
      await publishAnomalies(
        this.deps,
        w.anomalies.map((a) => presentAnomaly({ ...a, series_id: a.seriesId, ts: new Date(a.ts), event_id: a.eventId })),
      )
      await publishAlertEvents(this.deps, w.alertEvents)
    } catch (err) {
      this.deps.log.warn({ partition: this.partition, err }, 'anomaly flags or alert changes not published live')
    }
    if (w.alertEvents.length > 0 && this.deps.dispatchAlerts) {
      await this.deps.dispatchAlerts().catch((err: Error) => this.deps.log.warn({ partition: this.partition, err }, 'alert dispatch deferred to the sweeper'))
    }
  }

  /**
   * Trims the Redis log by the retention policy, never past `archivedThrough`: everything up to
   * the committed checkpoint is in the archive, so only those entries may go.
   */
  private async trim(archivedThrough: string): Promise<void> {
    const now = Date.now()
    if (now - this.trimmedAt < TRIM_EVERY_MS) return
    this.trimmedAt = now
    const key = this.deps.keys.stream(this.partition)
    try {
      const tooLong = this.settings.maxEntries > 0 && (await this.deps.redis.xlen(key)) > this.settings.maxEntries
      const timeFloor = `${now - this.settings.retentionMs}-0`
      const minId = tooLong || entryIdMs(timeFloor) >= entryIdMs(archivedThrough) ? archivedThrough : timeFloor
      await this.deps.redis.xtrim(key, 'MINID', minId)
    } catch (err) {
      this.deps.log.warn({ partition: this.partition, err }, 'log trim failed; retried later')
    }
  }

  /** Archive rows for the batch, chained on from the checkpoint's head. */
  private archiveRows(entries: readonly LogEntry[], from: Checkpoint): { rows: ArchiveRow[]; nextSeq: number; head: Buffer } {
    const rows: ArchiveRow[] = []
    let seq = from.archiveSeq
    let head = from.archiveHash
    for (const e of entries) {
      if (e.events.length === 0) continue
      const events = e.text
      const hash = link(head, events)
      let minTs = Infinity
      let maxTs = -Infinity
      for (const ev of e.events) {
        if (ev.ts < minTs) minTs = ev.ts
        if (ev.ts > maxTs) maxTs = ev.ts
      }
      rows.push({ partition: this.partition, firstSeq: seq, count: e.events.length, entryId: e.id, kind: e.kind, arrivedAtMs: e.arrivedAt, minTsMs: minTs, maxTsMs: maxTs, events, hash, fingerprints: fingerprints(e.lines) })
      seq += e.events.length
      head = hash
    }
    return { rows, nextSeq: seq, head }
  }

  private async readEntries(afterId: string): Promise<{ entries: LogEntry[]; caughtUp: boolean }> {
    const raw = this.deps.source
      ? await this.deps.source(this.partition, afterId, ENTRIES_PER_READ)
      : await this.deps.redis.xrange(this.deps.keys.stream(this.partition), `(${afterId}`, '+', 'COUNT', ENTRIES_PER_READ)
    const entries: LogEntry[] = []
    let total = 0
    for (const [id, fields] of raw) {
      const entry = this.parseEntry(id, fields)
      // Keep whole entries only; the first one always goes in, however large.
      if (entries.length > 0 && total + entry.events.length > this.settings.batchEvents) return { entries, caughtUp: false }
      entries.push(entry)
      total += entry.events.length
    }
    return { entries, caughtUp: raw.length < ENTRIES_PER_READ }
  }

  private parseEntry(id: string, fields: string[]): LogEntry {
    const f: Record<string, string> = {}
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string
    try {
      const lines = f.e ? f.e.split('\n') : []
      return { id, arrivedAt: Number(f.at), kind: f.k === EVENT_KINDS.report ? EVENT_KINDS.report : EVENT_KINDS.metric, lines, text: f.e ?? '', events: lines.map((l) => JSON.parse(l) as { ts: number }) }
    } catch (err) {
      // Only ingest writes the log, so this means the entry was damaged in Redis. Skipping it
      // keeps the partition flowing; the error log names the entry for the auditor.
      this.deps.log.error({ partition: this.partition, entryId: id, err }, 'unreadable log entry skipped')
      return { id, arrivedAt: 0, kind: EVENT_KINDS.metric, lines: [], text: '', events: [] }
    }
  }

  private async resolveSeriesIds(seriesKeys: string[]): Promise<void> {
    const unknown = seriesKeys.filter((k) => !this.seriesIds.has(k))
    if (unknown.length === 0) return
    const { rows } = await sql<{ id: number; key: string }>`SELECT id, key FROM series WHERE key = ANY(${unknown}::text[])`.execute(this.deps.db)
    for (const r of rows) this.seriesIds.set(r.key, r.id)
  }

  private async loadMissingBuckets(series: ReturnType<typeof foldBatch>['series']): Promise<void> {
    const refs: BucketRef[] = []
    for (const sb of series.values()) {
      const id = this.seriesIds.get(sb.key)
      if (id === undefined) continue
      for (const bv of sb.buckets.values()) {
        if (!this.cache.get(bucketCacheKey(id, bv.widthS, bv.startMs))) refs.push({ seriesId: id, widthS: bv.widthS, startMs: bv.startMs })
      }
    }
    for (const row of await loadBuckets(this.deps.db, refs)) {
      this.cache.set(bucketCacheKey(row.seriesId, row.widthS, row.startMs), fromStored(row), row.startMs + row.widthS * 1000)
    }
  }

  /** Tells hubs which buckets changed; sent only after commit, so a hub never reads ahead of it. */
  private async announce(touched: readonly { metric: string; widthS: number; startMs: number }[], caseGroups: CaseGroup[]): Promise<void> {
    const notice: ChangeNotice = { partition: this.partition, metrics: {} }
    if (caseGroups.length > 0) notice.cases = caseGroups
    for (const t of touched) {
      const byWidth = (notice.metrics[t.metric] ??= {})
      const starts = (byWidth[t.widthS] ??= [])
      if (!starts.includes(t.startMs)) starts.push(t.startMs)
    }
    try {
      await this.deps.redis.publish(this.deps.keys.changesChannel, JSON.stringify(notice))
    } catch (err) {
      // The state is committed; a lost notice delays a screen until the next change or resubscribe.
      this.deps.log.warn({ partition: this.partition, err }, 'change notice not published')
    }
  }
}
