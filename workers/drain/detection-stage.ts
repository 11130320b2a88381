import type { Db } from '../../src/infra/db.js'
import type { Logger } from 'pino'
import { AnomalyStateError } from '../../src/domain/anomaly/state-codec.js'
import type { SeriesBatch } from '../../src/domain/fold.js'
import { ruleMatches, type Rule } from '../../src/domain/alerting/rule.js'
import { evaluate, initialRuleState, type RuleSeriesState, type Transition, type WindowSample } from '../../src/domain/alerting/rule-eval.js'
import { DEFAULT_DETECTOR_CONFIG, SeriesDetector, type DetectorConfig, type Verdict } from '../../src/domain/anomaly/series-detector.js'
import type { AlertingConfig } from '../../src/services/alerting-config.js'
import type { AnomalySettings } from '../../src/schemas/anomaly-settings.js'
import { insertAnomalies, type AnomalyFlag } from '../../src/repositories/anomalies.repository.js'
import { loadDetectorStates, loadRuleStates, ruleStateKey, saveDetectorStates, saveRuleStates } from '../../src/repositories/detection-state.repository.js'
import { allocateIds, insertAlertEvents, upsertAlerts, type AlertEventWrite, type AlertWrite } from '../../src/repositories/alerts.repository.js'
import type { AlertEvent } from '../../src/schemas/alert-event.js'

interface Flag {
  seriesKey: string
  ts: number
  eventId: string
  value: number
  verdict: Verdict
}

interface RuleChange {
  rule: Rule
  series: SeriesBatch
  t: Transition
}

export interface DetectionResult {
  flags: Flag[]
  changes: RuleChange[]
  detectors: Map<string, SeriesDetector>
  ruleStates: Map<string, { rule: Rule; seriesKey: string; state: RuleSeriesState }>
}

/** What a committed batch flagged and changed, for the live topics and the alert dispatcher. */
export interface DetectionWritten {
  anomalies: (AnomalyFlag & { id: number; dims: Record<string, string> })[]
  alertEvents: AlertEvent[]
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString())

function configOf(s: AnomalySettings | undefined): (DetectorConfig & { enabled: boolean }) {
  const { enabled, ...rest } = s ?? {}
  return { ...DEFAULT_DETECTOR_CONFIG, ...rest, enabled: enabled ?? true }
}

/**
 * Runs each series' detectors and the rules that match it over a batch's samples, in event-time
 * order, and writes flags, alert changes and the new detector and rule states in the drain
 * transaction, so a crash neither loses nor repeats a flag or an alert. Like the bucket cache,
 * the states held here are trusted only at the checkpoint they were built at: the drainer clears
 * them on any failure, and whenever rules or settings change.
 */
export class DetectionStage {
  private readonly detectors = new Map<string, SeriesDetector>()
  private readonly ruleStates = new Map<string, RuleSeriesState>()
  private config: AlertingConfig | null = null

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly maxSeries: number,
  ) {}

  clear(): void {
    this.detectors.clear()
    this.ruleStates.clear()
  }

  /** Loads the states this batch needs that are not cached; series new to Postgres start fresh. */
  async prepare(series: readonly SeriesBatch[], seriesIds: ReadonlyMap<string, number>, config: AlertingConfig): Promise<void> {
    if (config !== this.config) {
      this.clear()
      this.config = config
    }
    const missingDetectors: number[] = []
    const byId = new Map<number, SeriesBatch>()
    const ruleIds = new Set<number>()
    const missingRuleSeries: number[] = []
    for (const sb of series) {
      const id = seriesIds.get(sb.key)
      if (id === undefined) continue
      byId.set(id, sb)
      if (!this.detectors.has(sb.key) && configOf(config.settings.get(sb.metric)).enabled) missingDetectors.push(id)
      for (const rule of config.rules) {
        if (!ruleMatches(rule, sb.metric, sb.dims) || this.ruleStates.has(ruleStateKey(rule.id, sb.key))) continue
        ruleIds.add(rule.id)
        missingRuleSeries.push(id)
      }
    }
    const [detectorStates, ruleStates] = await Promise.all([
      loadDetectorStates(this.db, missingDetectors),
      loadRuleStates(this.db, [...ruleIds], [...new Set(missingRuleSeries)]),
    ])
    for (const [id, state] of detectorStates) {
      const sb = byId.get(id) as SeriesBatch
      const settings = configOf(config.settings.get(sb.metric))
      try {
        this.detectors.set(sb.key, SeriesDetector.decode(state, settings))
      } catch (err) {
        // A damaged state must not stop the partition: the series warms up again.
        if (!(err instanceof AnomalyStateError)) throw err
        this.log.warn({ seriesId: id, err }, 'unreadable detector state; the series starts a fresh history')
        this.detectors.set(sb.key, SeriesDetector.create(settings))
      }
    }
    for (const [key, state] of ruleStates) {
      const [ruleId, seriesId] = key.split('|')
      this.ruleStates.set(ruleStateKey(Number(ruleId), (byId.get(Number(seriesId)) as SeriesBatch).key), state)
    }
  }

  /** Pure but for the cached states, which it moves forward. */
  run(series: readonly SeriesBatch[]): DetectionResult {
    const config = this.config as AlertingConfig
    const out: DetectionResult = { flags: [], changes: [], detectors: new Map(), ruleStates: new Map() }
    let placeholder = 0
    const newAlertId = (): number => --placeholder
    for (const sb of series) {
      const settings = configOf(config.settings.get(sb.metric))
      const rules = config.rules.filter((r) => ruleMatches(r, sb.metric, sb.dims))
      if (!settings.enabled && rules.length === 0) continue
      let detector: SeriesDetector | null = null
      if (settings.enabled) {
        detector = this.detectors.get(sb.key) ?? SeriesDetector.create(settings)
        this.touch(this.detectors, sb.key, detector)
        out.detectors.set(sb.key, detector)
      }
      const states = rules.map((rule) => {
        const key = ruleStateKey(rule.id, sb.key)
        const state = this.ruleStates.get(key) ?? initialRuleState()
        this.touch(this.ruleStates, key, state)
        out.ruleStates.set(key, { rule, seriesKey: sb.key, state })
        return state
      })
      for (const s of inEventTimeOrder(sb.samples)) {
        const verdict = detector ? detector.observe(s.ts, s.value) : null
        if (verdict?.flagged) out.flags.push({ seriesKey: sb.key, ts: s.ts, eventId: s.id, value: s.value, verdict })
        rules.forEach((rule, i) => {
          const x = rule.kind === 'anomaly' ? (verdict?.flagged ? verdict.score : 0) : s.value
          const sample: WindowSample = [s.ts, x, s.id, s.value]
          const t = evaluate(rule, states[i] as RuleSeriesState, sample, newAlertId)
          if (t) out.changes.push({ rule, series: sb, t })
        })
      }
    }
    return out
  }

  /** Writes the batch's detection results inside the drain transaction; fills in the ids of alerts opened here. */
  async write(trx: Db, r: DetectionResult, seriesIds: ReadonlyMap<string, number>, seriesOf: (seriesKey: string) => SeriesBatch): Promise<DetectionWritten> {
    const idOf = (key: string): number => seriesIds.get(key) as number
    await saveDetectorStates(trx, [...r.detectors].map(([key, d]) => ({ seriesId: idOf(key), state: d.encode() })))

    const flags: AnomalyFlag[] = r.flags.map((f) => ({
      seriesId: idOf(f.seriesKey),
      metric: seriesOf(f.seriesKey).metric,
      ts: f.ts,
      eventId: f.eventId,
      value: f.value,
      score: f.verdict.score,
      detectors: f.verdict.detectors,
      expected: f.verdict.expected,
      low: f.verdict.low,
      high: f.verdict.high,
    }))
    const flagIds = await insertAnomalies(trx, flags)
    const anomalies = flags.flatMap((f, i) => {
      const id = flagIds.get(`${f.seriesId}|${f.ts}`)
      return id === undefined ? [] : [{ ...f, id, dims: seriesOf((r.flags[i] as Flag).seriesKey).dims }]
    })

    const placeholders = new Set(r.changes.filter((c) => c.t.alertId < 0).map((c) => c.t.alertId))
    const alertIds = await allocateIds(trx, 'alerts_id_seq', placeholders.size)
    const real = new Map([...placeholders].map((p, i) => [p, alertIds[i] as number]))
    const resolve = (id: number | null): number | null => (id !== null && id < 0 ? (real.get(id) as number) : id)
    for (const { state } of r.ruleStates.values()) state.alertId = resolve(state.alertId)

    const eventIds = await allocateIds(trx, 'alert_events_id_seq', r.changes.length)
    const alerts = new Map<number, AlertWrite>()
    const events: AlertEventWrite[] = []
    r.changes.forEach((c, i) => {
      const alertId = resolve(c.t.alertId) as number
      const seriesId = idOf(c.series.key)
      const open = c.t.status === 'pending' || c.t.status === 'firing'
      const window = c.t.samples.map(([ts, x, eventId, raw]) => ({ ts: new Date(ts).toISOString(), value: raw, eventId, ...(c.rule.kind === 'anomaly' ? { score: x } : {}) }))
      const prior = alerts.get(alertId)
      alerts.set(alertId, {
        id: alertId,
        ruleId: c.rule.id,
        seriesId,
        status: c.t.status,
        severity: c.rule.severity,
        pendingAt: c.t.pendingAt,
        firingAt: c.t.firingAt,
        resolvedAt: open ? null : c.t.at,
        value: open ? c.t.value : (prior?.value ?? c.t.value),
        cause: open ? { value: c.t.value, samples: window } : (prior?.cause ?? { value: c.t.value, samples: window }),
        resolution: open ? null : { value: c.t.value, samples: window },
      })
      const payload: Omit<AlertEvent, 'id'> = {
        alertId: String(alertId),
        status: c.t.status,
        at: new Date(c.t.at).toISOString(),
        rule: { id: String(c.rule.id), name: c.rule.name, kind: c.rule.kind, severity: c.rule.severity, labels: c.rule.labels },
        series: { id: String(seriesId), key: c.series.key, metric: c.series.metric, dims: c.series.dims },
        condition: { aggregate: c.rule.kind === 'anomaly' ? 'max_score' : c.rule.aggregate, window: c.rule.windowS, op: c.rule.op, value: c.rule.value, for: c.rule.forS },
        value: c.t.value,
        pendingAt: new Date(c.t.pendingAt).toISOString(),
        firingAt: iso(c.t.firingAt),
        resolvedAt: open ? null : new Date(c.t.at).toISOString(),
        samples: window,
      }
      events.push({ id: eventIds[i] as number, alertId, seriesId, status: c.t.status, payload })
    })
    await upsertAlerts(trx, [...alerts.values()])
    await insertAlertEvents(trx, events)
    await saveRuleStates(trx, [...r.ruleStates.values()].map((x) => ({ ruleId: x.rule.id, seriesId: idOf(x.seriesKey), state: x.state })))
    return { anomalies, alertEvents: events.map((e) => ({ id: String(e.id), ...e.payload })) }
  }

  /** After a commit: drops the least recently used states past the cache size (they reload from Postgres when needed). */
  evict(): void {
    for (const map of [this.detectors, this.ruleStates] as Map<string, unknown>[]) {
      for (const key of map.keys()) {
        if (map.size <= this.maxSeries) break
        map.delete(key)
      }
    }
  }

  /** Marks a state as just used: the maps iterate least recently used first. */
  private touch<T>(map: Map<string, T>, key: string, value: T): void {
    map.delete(key)
    map.set(key, value)
  }
}

/** Samples sorted by event time, keeping log order at equal times; most batches arrive sorted already. */
function inEventTimeOrder<T extends { ts: number }>(samples: T[]): T[] {
  for (let i = 1; i < samples.length; i++) {
    if ((samples[i] as T).ts < (samples[i - 1] as T).ts) return samples.map((s, j) => [s, j] as const).sort((a, b) => a[0].ts - b[0].ts || a[1] - b[1]).map(([s]) => s)
  }
  return samples
}
