import { randomUUID } from 'node:crypto'
import { sql } from 'kysely'
import type { Runtime } from '../src/infra/runtime.js'
import { partitionOf, seriesKey } from '../src/domain/series-key.js'
import { ruleMatches, SOURCE_METRIC, type Rule } from '../src/domain/alerting/rule.js'
import { listRules } from '../src/repositories/rules.repository.js'
import { touchSeries } from '../src/repositories/series.repository.js'
import { allocateIds, insertAlertEvents, upsertAlerts, type AlertEventWrite, type AlertWrite } from '../src/repositories/alerts.repository.js'
import { listSourceHealth, type SourceHealth } from '../src/ingest/source-health.js'
import { publishSingleValue, singleValue } from '../src/live/delta-publisher.js'
import { publishAlertEvents } from '../src/live/event-topics.js'
import { SOURCES_TOPIC } from '../src/live/topic.js'
import type { AlertEvent } from '../src/schemas/alert-event.js'

/** How often sources are checked and their topic refreshed. */
const TICK_MS = 5000
const LOCK_MS = 15_000

interface OpenAlert {
  id: number
  ruleId: number
  seriesId: number
  pendingAt: Date
}

/**
 * Watches every source on the wall clock: refreshes the live sources topic and runs the silence
 * rules ("no data from a source for N minutes"), which fire through the same alert path as every
 * other rule (outbox, stream, webhooks, live topic). One worker process at a time holds the watch
 * (a Redis lock renewed each tick), so a silence fires once however many workers run.
 */
export function startSourceWatch(rt: Runtime): { close(): Promise<void> } {
  const lockKey = `${rt.keys.prefix}:source-watch:lock`
  const me = randomUUID()
  let stopped = false

  const holdLock = async (): Promise<boolean> => {
    const got = await rt.redis.set(lockKey, me, 'PX', LOCK_MS, 'NX')
    if (got === 'OK') return true
    if ((await rt.redis.get(lockKey)) !== me) return false
    await rt.redis.pexpire(lockKey, LOCK_MS)
    return true
  }

  const tick = async (): Promise<void> => {
    if (!(await holdLock())) return
    const now = Date.now()
    await publishSingleValue(rt, SOURCES_TOPIC, await singleValue(rt, SOURCES_TOPIC))
    const rules = (await listRules(rt.db)).filter((r) => r.enabled && r.kind === 'silence')
    if (rules.length === 0) return
    const sources = await listSourceHealth(rt.redis, rt.keys, now, rt.config.sourceSilentSec * 1000)
    const changes = await evaluateSilence(rt, rules, sources, now)
    if (changes.length > 0) await publishAlertEvents(rt, changes)
  }

  const loop = (async () => {
    while (!stopped) {
      await tick().catch((err: Error) => rt.log.warn({ err }, 'source watch tick failed'))
      await new Promise((r) => setTimeout(r, TICK_MS))
    }
  })()

  return {
    async close() {
      stopped = true
      await loop
      if ((await rt.redis.get(lockKey).catch(() => null)) === me) await rt.redis.del(lockKey).catch(() => undefined)
    },
  }
}

/**
 * Fires a silence rule for each matching source quiet for the rule's duration, and resolves it
 * when the source sends again. A source's alerts hang on its health series (metric
 * lantern.source, dims {source}), so they dedupe and order like any series' alerts.
 */
export async function evaluateSilence(rt: Runtime, rules: readonly Rule[], sources: readonly SourceHealth[], now: number): Promise<AlertEvent[]> {
  const watched = sources.filter((s) => s.lastArrivalAt !== null)
  const pairs = rules.flatMap((rule) => watched.filter((s) => ruleMatches(rule, SOURCE_METRIC, { source: s.source })).map((source) => ({ rule, source })))
  if (pairs.length === 0) return []
  return rt.db.transaction().execute(async (trx) => {
    const touches = [...new Set(pairs.map((p) => p.source.source))].map((source) => {
      const dims = { source }
      const key = seriesKey(SOURCE_METRIC, dims)
      return { key, metric: SOURCE_METRIC, dims, partition: partitionOf(key, rt.config.partitions), firstTs: now, lastTs: now, events: 0, lateEvents: 0, lastLateTs: null }
    })
    const seriesIds = await touchSeries(trx, touches)
    const { rows: open } = await sql<{ id: number; rule_id: number; series_id: number; pending_at: Date }>`
      SELECT id, rule_id, series_id, pending_at FROM alerts WHERE status = 'firing' AND rule_id = ANY(${rules.map((r) => r.id)}::bigint[]) FOR UPDATE`.execute(trx)
    const openBy = new Map<string, OpenAlert>(open.map((o) => [`${o.rule_id}|${o.series_id}`, { id: o.id, ruleId: o.rule_id, seriesId: o.series_id, pendingAt: o.pending_at }]))

    const firing: { rule: Rule; source: SourceHealth; seriesId: number; quietSince: number }[] = []
    const resolving: { rule: Rule; source: SourceHealth; seriesId: number; alert: OpenAlert; back: number }[] = []
    for (const { rule, source } of pairs) {
      const seriesId = seriesIds.get(seriesKey(SOURCE_METRIC, { source: source.source })) as number
      const last = Date.parse(source.lastArrivalAt as string)
      const alert = openBy.get(`${rule.id}|${seriesId}`)
      const quiet = now - last >= rule.forS * 1000
      if (quiet && !alert) firing.push({ rule, source, seriesId, quietSince: last })
      else if (!quiet && alert && last > alert.pendingAt.getTime()) resolving.push({ rule, source, seriesId, alert, back: last })
    }
    if (firing.length + resolving.length === 0) return []

    const newIds = await allocateIds(trx, 'alerts_id_seq', firing.length)
    const eventIds = await allocateIds(trx, 'alert_events_id_seq', firing.length + resolving.length)
    const alerts: AlertWrite[] = []
    const events: AlertEventWrite[] = []
    const change = (rule: Rule, source: SourceHealth, seriesId: number, alertId: number, status: 'firing' | 'resolved', pendingAt: number, at: number, quietS: number): void => {
      const firingAt = status === 'firing' ? at : pendingAt + rule.forS * 1000
      alerts.push({ id: alertId, ruleId: rule.id, seriesId, status, severity: rule.severity, pendingAt, firingAt, resolvedAt: status === 'resolved' ? at : null, value: quietS, cause: { quietSeconds: quietS, lastArrivalAt: new Date(pendingAt).toISOString() }, resolution: status === 'resolved' ? { backAt: new Date(at).toISOString() } : null })
      events.push({
        id: eventIds[events.length] as number,
        alertId,
        seriesId,
        status,
        payload: {
          alertId: String(alertId),
          status,
          at: new Date(at).toISOString(),
          rule: { id: String(rule.id), name: rule.name, kind: rule.kind, severity: rule.severity, labels: rule.labels },
          series: { id: String(seriesId), key: seriesKey(SOURCE_METRIC, { source: source.source }), metric: SOURCE_METRIC, dims: { source: source.source } },
          condition: { aggregate: 'silence', window: rule.forS, op: '>=', value: rule.forS, for: rule.forS },
          value: quietS,
          pendingAt: new Date(pendingAt).toISOString(),
          firingAt: new Date(firingAt).toISOString(),
          resolvedAt: status === 'resolved' ? new Date(at).toISOString() : null,
          samples: [],
        },
      })
    }
    firing.forEach((f, i) => change(f.rule, f.source, f.seriesId, newIds[i] as number, 'firing', f.quietSince, now, Math.round((now - f.quietSince) / 1000)))
    for (const r of resolving) change(r.rule, r.source, r.seriesId, r.alert.id, 'resolved', r.alert.pendingAt.getTime(), r.back, Math.round((r.back - r.alert.pendingAt.getTime()) / 1000))
    await upsertAlerts(trx, alerts)
    await insertAlertEvents(trx, events)
    for (const e of events) rt.log.info({ alertEventId: e.id, alertId: e.alertId, ruleId: e.payload.rule.id, source: e.payload.series.dims.source, status: e.status }, 'source silence alert changed')
    return events.map((e) => ({ id: String(e.id), ...e.payload }))
  })
}
