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
import { foldSegments, type FoldSegment, type FoldSettings } from '../../src/domain/fold.js'
import { addValue, emptyBucket, fromStored, observeLast, storedOfValues, toStored, type BucketState, type StoredBucket } from '../../src/domain/bucket.js'
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
import { addCommittedImportEvents } from '../../src/repositories/imports.repository.js'

export interface DrainSettings extends FoldSettings {
  batchEvents: number
  cacheBuckets: number
  retentionMs: number
  maxEntries: number
  /** False when rebuilding from an archive: no Redis log to trim, no screens to tell. */
  live?: boolean
  /** Series whose detector and rule states a drainer keeps in memory. */
  cacheSeries?: number
  /**
   * History imports (the import lane) fill what live traffic leaves of the drain: live entries
   * are always read first; a batch takes at most `importBatchEvents` import events (default
   * 10,000), at most `importShareEvents` (default 2,500) when live entries are in it, and only
   * while it holds a slot of `importGate` (a worker process's partitions share a few slots), so
   * the import never takes the whole process from live traffic.
   */
  importBatchEvents?: number
  importShareEvents?: number
  importGate?: ImportGate
}

/** Slots for folding import entries, shared by the partitions a process drains. */
export class ImportGate {
  private busy = 0
  constructor(readonly slots: number) {}
  tryAcquire(): boolean {
    if (this.busy >= this.slots) return false
    this.busy++
    return true
  }
  release(): void {
    this.busy = Math.max(0, this.busy - 1)
  }
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

/**
 * Where a drainer reads log entries from when not from the partition's Redis streams: an archive
 * when rebuilding, which hands both lanes' entries in the one order they were committed.
 */
export type EntrySource = (partition: number, from: Checkpoint, count: number) => Promise<SourcedEntry[]>

export interface SourcedEntry {
  id: string
  /** The fields as the Redis stream holds them (n, at, k, e). */
  fields: string[]
  /** The import job of an import-lane entry; null for live traffic. */
  importId: number | null
}

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
  /** The import job of an import-lane entry (history: never late, watermark untouched); null for live traffic. */
  importId: number | null
}

class CheckpointMoved extends Error {}

/** Entries are read a few at a time; one entry holds the share of one ingest request. */
const ENTRIES_PER_READ = 64
/** Import entries are large (a partition's share of a few thousand rows): read fewer at a time. */
const IMPORT_ENTRIES_PER_READ = 16

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
  private holdsImportSlot = false

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
      this.releaseImportSlot()
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
    if (this.checkpoint?.lastId !== current.lastId || this.checkpoint.importLastId !== current.importLastId) this.reset()
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
    const { entries, caughtUp, lastId, importLastId } = await this.readEntries(from)
    if (importLastId === from.importLastId) this.releaseImportSlot()
    if (entries.length === 0) {
      metrics.drainLag.set({ partition: this.partition }, 0)
      return 0
    }
    // Metric events in runs of one lane, in log (and archive) order; reports are order-free.
    const segments: (FoldSegment & { events: MetricEvent[] })[] = []
    const reports: ReportEvent[] = []
    const importedByJob = new Map<number, number>()
    for (const e of entries) {
      if (e.importId !== null) importedByJob.set(e.importId, (importedByJob.get(e.importId) ?? 0) + e.events.length)
      if (e.kind === EVENT_KINDS.report) {
        reports.push(...(e.events as ReportEvent[]))
        continue
      }
      const imported = e.importId !== null
      let seg = segments[segments.length - 1]
      if (!seg || seg.imported !== imported) segments.push((seg = { events: [], imported }))
      seg.events.push(...(e.events as MetricEvent[]))
    }
    // Read after the entries: a rule created before an event was posted is seen by the batch holding it.
    const alerting = await this.alerting.get()
    const fold = foldSegments(segments, from.watermarkMs, this.settings)
    const cases = await foldCases(db, this.partition, reports)

    await this.resolveSeriesIds([...fold.series.keys()])
    await this.loadMissingBuckets(fold.series)
    const seriesList = [...fold.series.values()]
    // Imported samples never reach the detectors: a series touched only by history has nothing to score.
    const scored = fold.importedEvents > 0 ? seriesList.filter((sb) => sb.samples.length > 0) : seriesList
    await this.detection.prepare(scored, this.seriesIds, alerting)
    const detected = this.detection.run(scored)

    const touched: { seriesKey: string; metric: string; widthS: number; startMs: number; state: BucketState | null; stored: StoredBucket | null }[] = []
    for (const sb of fold.series.values()) {
      const id = this.seriesIds.get(sb.key)
      for (const bv of sb.buckets.values()) {
        const cached = id !== undefined ? this.cache.get(bucketCacheKey(id, bv.widthS, bv.startMs)) : undefined
        if (!cached && !bv.live) {
          // A new bucket of history only: written straight from its values (the same bits), not cached.
          touched.push({ seriesKey: sb.key, metric: sb.metric, widthS: bv.widthS, startMs: bv.startMs, state: null, stored: storedOfValues(bv.values, bv.lastTs, bv.last) })
          continue
        }
        const state = cached ?? emptyBucket()
        for (const v of bv.values) addValue(state, v)
        observeLast(state, bv.lastTs, bv.last)
        touched.push({ seriesKey: sb.key, metric: sb.metric, widthS: bv.widthS, startMs: bv.startMs, state, stored: null })
      }
    }

    const archive = this.archiveRows(entries, from)
    const to = { lastId, importLastId, watermarkMs: fold.watermarkMs, archiveSeq: archive.nextSeq, archiveHash: archive.head }
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
        touched.map((t) => ({ seriesId: this.seriesIds.get(t.seriesKey) as number, widthS: t.widthS, startMs: t.startMs, ...(t.stored ?? toStored(t.state as BucketState)) })),
      )
      await writeCases(trx, cases.writes)
      written = await this.detection.write(trx, detected, this.seriesIds, (k) => fold.series.get(k) as (typeof seriesList)[number])
      await archiveEntries(trx, archive.rows)
      await addCommittedImportEvents(trx, importedByJob)
    })
    metrics.commitLatency.observe(Number(process.hrtime.bigint() - started) / 1e9)
    this.releaseImportSlot()

    this.checkpoint = { partition: this.partition, ...to }
    for (const t of touched) {
      if (t.state) this.cache.set(bucketCacheKey(this.seriesIds.get(t.seriesKey) as number, t.widthS, t.startMs), t.state, t.startMs + t.widthS * 1000)
    }
    this.cache.evict(fold.watermarkMs - this.settings.latenessMs)
    this.detection.evict()

    metrics.eventsDrained.inc({ partition: this.partition }, fold.events + reports.length)
    if (fold.lateEvents > 0) metrics.eventsLate.inc({ partition: this.partition }, fold.lateEvents)
    metrics.drainLag.set({ partition: this.partition }, caughtUp ? 0 : Math.max(0, (Date.now() - entryIdMs(lastId)) / 1000))
    log.debug(
      { partition: this.partition, fromId: from.lastId, toId: lastId, importToId: importLastId, entries: entries.length, samples: fold.events, imported: fold.importedEvents, reports: reports.length, late: fold.lateEvents, buckets: touched.length, cases: cases.writes.length, anomalies: written.anomalies.length, alertChanges: written.alertEvents.length },
      'batch committed',
    )
    for (const e of written.alertEvents) {
      log.info({ partition: this.partition, alertEventId: e.id, alertId: e.alertId, ruleId: e.rule.id, seriesId: e.series.id, status: e.status, at: e.at, value: e.value }, 'alert changed')
    }
    if (this.settings.live !== false) {
      await this.announce(touched, cases.groups, importedByJob.size > 0)
      await this.publishDetections(written)
      await this.trim(lastId, importLastId)
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
  private async trim(archivedThrough: string, importArchivedThrough: string): Promise<void> {
    const now = Date.now()
    if (now - this.trimmedAt < TRIM_EVERY_MS) return
    this.trimmedAt = now
    const key = this.deps.keys.stream(this.partition)
    try {
      const tooLong = this.settings.maxEntries > 0 && (await this.deps.redis.xlen(key)) > this.settings.maxEntries
      const timeFloor = `${now - this.settings.retentionMs}-0`
      const minId = tooLong || entryIdMs(timeFloor) >= entryIdMs(archivedThrough) ? archivedThrough : timeFloor
      await this.deps.redis.xtrim(key, 'MINID', minId)
      // Import entries are bulk: once archived they go at once, whatever the retention.
      if (importArchivedThrough !== '0-0') await this.deps.redis.xtrim(this.deps.keys.importStream(this.partition), 'MINID', importArchivedThrough)
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
      const hash = link(head, events, e.importId)
      let minTs = Infinity
      let maxTs = -Infinity
      for (const ev of e.events) {
        if (ev.ts < minTs) minTs = ev.ts
        if (ev.ts > maxTs) maxTs = ev.ts
      }
      rows.push({ partition: this.partition, firstSeq: seq, count: e.events.length, entryId: e.id, kind: e.kind, arrivedAtMs: e.arrivedAt, minTsMs: minTs, maxTsMs: maxTs, events, hash, fingerprints: fingerprints(e.lines), importId: e.importId })
      seq += e.events.length
      head = hash
    }
    return { rows, nextSeq: seq, head }
  }

  /**
   * The next batch: live entries first (whole entries, up to the batch size), then, unless live
   * traffic is still waiting, import-lane entries in what is left of the batch, at most
   * `importShareEvents` of them when live entries are in it. So a bulk import fills idle drain
   * capacity and never holds live events back by more than a share of one batch.
   */
  private async readEntries(from: Checkpoint): Promise<{ entries: LogEntry[]; caughtUp: boolean; lastId: string; importLastId: string }> {
    const budget = this.settings.batchEvents
    if (this.deps.source) {
      const raw = await this.deps.source(this.partition, from, ENTRIES_PER_READ)
      const entries: LogEntry[] = []
      let total = 0
      let { lastId, importLastId } = from
      for (const r of raw) {
        const entry = this.parseEntry(r.id, r.fields, r.importId)
        // Keep whole entries only; the first one always goes in, however large.
        if (entries.length > 0 && total + entry.events.length > budget) return { entries, caughtUp: false, lastId, importLastId }
        entries.push(entry)
        total += entry.events.length
        if (entry.importId === null) lastId = entry.id
        else importLastId = entry.id
      }
      return { entries, caughtUp: raw.length < ENTRIES_PER_READ, lastId, importLastId }
    }
    const { redis, keys } = this.deps
    const live = await redis.xrange(keys.stream(this.partition), `(${from.lastId}`, '+', 'COUNT', ENTRIES_PER_READ)
    const entries: LogEntry[] = []
    let total = 0
    let liveFull = false
    for (const [id, fields] of live) {
      const entry = this.parseEntry(id, fields, null)
      if (entries.length > 0 && total + entry.events.length > budget) {
        liveFull = true
        break
      }
      entries.push(entry)
      total += entry.events.length
    }
    const caughtUp = !liveFull && live.length < ENTRIES_PER_READ
    const lastId = entries.length > 0 ? (entries[entries.length - 1] as LogEntry).id : from.lastId
    let importLastId = from.importLastId
    if (!caughtUp) return { entries, caughtUp, lastId, importLastId }
    const share = Math.min(budget - total, entries.length > 0 ? (this.settings.importShareEvents ?? 2_500) : (this.settings.importBatchEvents ?? 10_000))
    if (share <= 0) return { entries, caughtUp, lastId, importLastId }
    const gate = this.settings.importGate
    if (gate && !this.holdsImportSlot) {
      if (!gate.tryAcquire()) return { entries, caughtUp, lastId, importLastId }
      this.holdsImportSlot = true
    }
    let imported = 0
    for (let after = from.importLastId; imported < share; ) {
      const raw = await redis.xrange(keys.importStream(this.partition), `(${after}`, '+', 'COUNT', IMPORT_ENTRIES_PER_READ)
      for (const [id, fields] of raw) {
        const entry = this.parseEntry(id, fields, 0)
        // Whole entries; with no live entry in the batch the first always goes in, however large.
        if ((imported > 0 || entries.length > 0) && imported + entry.events.length > share) return { entries, caughtUp, lastId, importLastId }
        entries.push(entry)
        imported += entry.events.length
        importLastId = id
      }
      if (raw.length < IMPORT_ENTRIES_PER_READ) break
      after = importLastId
    }
    return { entries, caughtUp, lastId, importLastId }
  }

  private releaseImportSlot(): void {
    if (!this.holdsImportSlot) return
    this.holdsImportSlot = false
    this.settings.importGate?.release()
  }

  /** `importId`: null for a live entry; for an import-lane entry, the job (read from the entry's `j` field when 0). */
  private parseEntry(id: string, fields: string[], importId: number | null): LogEntry {
    const f: Record<string, string> = {}
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string
    const job = importId === 0 ? Number(f.j) : importId
    try {
      const lines = f.e ? f.e.split('\n') : []
      return { id, arrivedAt: Number(f.at), kind: f.k === EVENT_KINDS.report ? EVENT_KINDS.report : EVENT_KINDS.metric, lines, text: f.e ?? '', events: lines.map((l) => JSON.parse(l) as { ts: number }), importId: job }
    } catch (err) {
      // Only ingest writes the log, so this means the entry was damaged in Redis. Skipping it
      // keeps the partition flowing; the error log names the entry for the auditor.
      this.deps.log.error({ partition: this.partition, entryId: id, importId: job, err }, 'unreadable log entry skipped')
      return { id, arrivedAt: 0, kind: EVENT_KINDS.metric, lines: [], text: '', events: [], importId: job }
    }
  }

  private async resolveSeriesIds(seriesKeys: string[]): Promise<void> {
    const unknown = seriesKeys.filter((k) => !this.seriesIds.has(k))
    if (unknown.length === 0) return
    const { rows } = await sql<{ id: number; key: string }>`SELECT id, key FROM series WHERE key = ANY(${unknown}::text[])`.execute(this.deps.db)
    for (const r of rows) this.seriesIds.set(r.key, r.id)
  }

  private async loadMissingBuckets(series: ReturnType<typeof foldSegments>['series']): Promise<void> {
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
  private async announce(touched: readonly { metric: string; widthS: number; startMs: number }[], caseGroups: CaseGroup[], imports: boolean): Promise<void> {
    const notice: ChangeNotice = { partition: this.partition, metrics: {} }
    if (caseGroups.length > 0) notice.cases = caseGroups
    if (imports) notice.imports = true
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
