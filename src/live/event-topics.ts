import type { Runtime } from '../infra/runtime.js'
import { publishThroughGuard, type GuardedItem } from './delta-publisher.js'
import { ALERTS_TOPIC, ALL_ANOMALIES_TOPIC, topicOf, type EventTopic } from './topic.js'
import { listAnomalies, type AnomalyView } from '../repositories/anomalies.repository.js'
import { listAlerts } from '../repositories/alerts.repository.js'
import { listCrosschecks } from '../repositories/crosschecks.repository.js'
import type { AlertEvent } from '../schemas/alert-event.js'

type Publisher = Pick<Runtime, 'redis' | 'keys' | 'config' | 'metrics'>

/** Events kept in an event topic's snapshot. */
const SNAPSHOT_EVENTS = 50

/**
 * Each event is published once under its own field (its id), so a retry or a second publisher
 * cannot repeat it, and events committed out of id order by different partitions all get through.
 */
const asItems = (topicId: string, events: readonly { id: string }[]): GuardedItem[] =>
  events.map((e) => ({ field: e.id, version: 1, message: { type: 'delta', topic: topicId, v: 1, event: e } }))

export async function publishAnomalies(rt: Publisher, flags: readonly AnomalyView[]): Promise<void> {
  if (flags.length === 0) return
  await publishThroughGuard(rt, ALL_ANOMALIES_TOPIC.id, asItems(ALL_ANOMALIES_TOPIC.id, flags))
  const byMetric = new Map<string, AnomalyView[]>()
  for (const f of flags) byMetric.set(f.metric, [...(byMetric.get(f.metric) ?? []), f])
  for (const [metric, list] of byMetric) {
    const topic = topicOf({ kind: 'anomalies', metric })
    await publishThroughGuard(rt, topic.id, asItems(topic.id, list))
  }
}

export async function publishAlertEvents(rt: Publisher, events: readonly AlertEvent[]): Promise<void> {
  if (events.length > 0) await publishThroughGuard(rt, ALERTS_TOPIC.id, asItems(ALERTS_TOPIC.id, events))
}

/** The snapshot body of an event topic: recent events oldest first (cross-checks keep their own field, newest first). */
export async function eventTopicSnapshot(rt: Pick<Runtime, 'db'>, topic: EventTopic): Promise<Record<string, unknown>> {
  switch (topic.kind) {
    case 'discrepancies':
      return { crosschecks: await listCrosschecks(rt.db, true, SNAPSHOT_EVENTS) }
    case 'anomalies': {
      const flags = await listAnomalies(rt.db, { ...(topic.spec.metric !== null ? { metric: topic.spec.metric } : {}), dims: {}, fromMs: null, toMs: null, before: null, minScore: 0, limit: SNAPSHOT_EVENTS })
      return { events: flags.reverse() }
    }
    case 'alerts': {
      const open = await listAlerts(rt.db, { status: ['pending', 'firing'], ruleId: null, metric: null, limit: 500, before: null })
      const recent = await listAlerts(rt.db, { status: null, ruleId: null, metric: null, limit: SNAPSHOT_EVENTS, before: null })
      return { open, events: recent.reverse() }
    }
  }
}
