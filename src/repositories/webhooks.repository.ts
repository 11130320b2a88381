import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { AlertEvent, AlertStatus } from '../schemas/alert-event.js'

/** Which alert changes a webhook receives; an absent list matches everything. */
export interface WebhookFilter {
  severities?: string[]
  ruleIds?: string[]
  statuses: AlertStatus[]
  metrics?: string[]
}

export interface WebhookView {
  id: string
  name: string
  url: string
  filter: WebhookFilter
  enabled: boolean
  createdAt: string
}

export type DeliveryStatus = 'pending' | 'delivered' | 'dead'

export interface DeliveryView {
  id: string
  webhookId: string
  webhookName: string
  alertEventId: string
  seriesId: string
  status: DeliveryStatus
  attempts: number
  lastStatus: number | null
  lastError: string | null
  createdAt: string
  finishedAt: string | null
  event: AlertEvent
}

/** An outbox row as the dispatcher reads it. */
export interface OutboxEvent {
  id: number
  seriesId: number
  status: AlertStatus
  payload: Omit<AlertEvent, 'id'>
}

export interface DeliveryJobRef {
  id: number
  webhookId: number
  alertEventId: number
  seriesId: number
}

/** Everything a delivery try needs, read in one query. */
export interface DeliveryWork extends DeliveryJobRef {
  status: DeliveryStatus
  attempts: number
  url: string
  secret: string
  payload: Omit<AlertEvent, 'id'>
}

interface WebhookRaw {
  id: number
  name: string
  url: string
  filter: WebhookFilter
  enabled: boolean
  created_at: Date
}

const presentWebhook = (r: WebhookRaw): WebhookView => ({
  id: String(r.id),
  name: r.name,
  url: r.url,
  filter: r.filter,
  enabled: r.enabled,
  createdAt: r.created_at.toISOString(),
})

const WEBHOOK_COLUMNS = sql`id, name, url, filter, enabled, created_at`

export async function createWebhook(db: Db, w: { name: string; url: string; secret: string; filter: WebhookFilter }): Promise<WebhookView> {
  const { rows } = await sql<WebhookRaw>`
    INSERT INTO webhooks (name, url, secret, filter, enabled) VALUES (${w.name}, ${w.url}, ${w.secret}, ${JSON.stringify(w.filter)}::jsonb, true)
    RETURNING ${WEBHOOK_COLUMNS}`.execute(db)
  return presentWebhook(rows[0] as WebhookRaw)
}

export async function listWebhooks(db: Db): Promise<WebhookView[]> {
  const { rows } = await sql<WebhookRaw>`SELECT ${WEBHOOK_COLUMNS} FROM webhooks ORDER BY id`.execute(db)
  return rows.map(presentWebhook)
}

export async function getWebhook(db: Db, id: number): Promise<WebhookView | null> {
  const { rows } = await sql<WebhookRaw>`SELECT ${WEBHOOK_COLUMNS} FROM webhooks WHERE id = ${id}`.execute(db)
  return rows[0] ? presentWebhook(rows[0]) : null
}

/** Its deliveries go with it (cascade); their queued jobs find no row and end. */
export async function deleteWebhook(db: Db, id: number): Promise<boolean> {
  const { numAffectedRows } = await sql`DELETE FROM webhooks WHERE id = ${id}`.execute(db)
  return numAffectedRows === 1n
}

export async function enabledWebhooks(db: Db): Promise<{ id: number; filter: WebhookFilter }[]> {
  const { rows } = await sql<{ id: number; filter: WebhookFilter }>`SELECT id, filter FROM webhooks WHERE enabled ORDER BY id`.execute(db)
  return rows
}

/** The oldest changes not yet handed to the alert stream and the webhook queue. */
export async function undispatchedEvents(db: Db, limit: number): Promise<OutboxEvent[]> {
  const { rows } = await sql<{ id: number; series_id: number; status: AlertStatus; payload: Omit<AlertEvent, 'id'> }>`
    SELECT id, series_id, status, payload FROM alert_events WHERE dispatched_at IS NULL ORDER BY id LIMIT ${limit}`.execute(db)
  return rows.map((r) => ({ id: r.id, seriesId: r.series_id, status: r.status, payload: r.payload }))
}

/**
 * Creates the missing deliveries of these events (a repeat creates nothing) and returns every
 * delivery of these events still pending, new or left by an earlier, interrupted dispatch, in
 * event order. The CTE's rows are invisible to the outer SELECT of the same statement, so the
 * UNION ALL lists each delivery once.
 */
export async function ensureDeliveries(db: Db, eventIds: readonly number[], wanted: readonly { webhookId: number; alertEventId: number; seriesId: number }[]): Promise<DeliveryJobRef[]> {
  if (eventIds.length === 0) return []
  const { rows } = await sql<{ id: number; webhook_id: number; alert_event_id: number; series_id: number }>`
    WITH ins AS (
      INSERT INTO webhook_deliveries (webhook_id, alert_event_id, series_id, status)
      SELECT w, e, s, 'pending' FROM unnest(${wanted.map((d) => d.webhookId)}::bigint[], ${wanted.map((d) => d.alertEventId)}::bigint[], ${wanted.map((d) => d.seriesId)}::bigint[]) AS t(w, e, s)
      ORDER BY e, w
      ON CONFLICT (webhook_id, alert_event_id) DO NOTHING
      RETURNING id, webhook_id, alert_event_id, series_id
    )
    SELECT id, webhook_id, alert_event_id, series_id FROM ins
    UNION ALL
    SELECT id, webhook_id, alert_event_id, series_id FROM webhook_deliveries WHERE alert_event_id = ANY(${eventIds}::bigint[]) AND status = 'pending'
    ORDER BY alert_event_id, id`.execute(db)
  return rows.map((r) => ({ id: r.id, webhookId: r.webhook_id, alertEventId: r.alert_event_id, seriesId: r.series_id }))
}

export async function markDispatched(db: Db, eventIds: readonly number[]): Promise<void> {
  if (eventIds.length === 0) return
  await sql`UPDATE alert_events SET dispatched_at = now() WHERE id = ANY(${eventIds}::bigint[]) AND dispatched_at IS NULL`.execute(db)
}

export async function loadDeliveryWork(db: Db, id: number): Promise<DeliveryWork | null> {
  const { rows } = await sql<{
    id: number
    webhook_id: number
    alert_event_id: number
    series_id: number
    status: DeliveryStatus
    attempts: number
    url: string
    secret: string
    payload: Omit<AlertEvent, 'id'>
  }>`
    SELECT d.id, d.webhook_id, d.alert_event_id, d.series_id, d.status, d.attempts, w.url, w.secret, e.payload
    FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN alert_events e ON e.id = d.alert_event_id
    WHERE d.id = ${id}`.execute(db)
  const r = rows[0]
  if (!r) return null
  return { id: r.id, webhookId: r.webhook_id, alertEventId: r.alert_event_id, seriesId: r.series_id, status: r.status, attempts: r.attempts, url: r.url, secret: r.secret, payload: r.payload }
}

/** True while an earlier change of the same series is still on its way to the same webhook. */
export async function hasEarlierPending(db: Db, d: DeliveryJobRef): Promise<boolean> {
  const { rows } = await sql`
    SELECT 1 FROM webhook_deliveries
    WHERE webhook_id = ${d.webhookId} AND series_id = ${d.seriesId} AND alert_event_id < ${d.alertEventId} AND status = 'pending'
    LIMIT 1`.execute(db)
  return rows.length > 0
}

/** Records one try. Only a pending delivery changes: a stray duplicate job cannot undo an outcome. */
export async function recordTry(
  db: Db,
  id: number,
  t: { attempts: number; outcome: DeliveryStatus; lastStatus: number | null; lastError: string | null },
): Promise<boolean> {
  const { numAffectedRows } = await sql`
    UPDATE webhook_deliveries SET
      status = ${t.outcome}, attempts = ${t.attempts}, last_status = ${t.lastStatus}, last_error = ${t.lastError},
      finished_at = CASE WHEN ${t.outcome} = 'pending' THEN NULL ELSE now() END
    WHERE id = ${id} AND status = 'pending'`.execute(db)
  return numAffectedRows === 1n
}

interface DeliveryRaw {
  id: number
  webhook_id: number
  webhook_name: string
  alert_event_id: number
  series_id: number
  status: DeliveryStatus
  attempts: number
  last_status: number | null
  last_error: string | null
  created_at: Date
  finished_at: Date | null
  payload: Omit<AlertEvent, 'id'>
}

const presentDelivery = (r: DeliveryRaw): DeliveryView => ({
  id: String(r.id),
  webhookId: String(r.webhook_id),
  webhookName: r.webhook_name,
  alertEventId: String(r.alert_event_id),
  seriesId: String(r.series_id),
  status: r.status,
  attempts: r.attempts,
  lastStatus: r.last_status,
  lastError: r.last_error,
  createdAt: r.created_at.toISOString(),
  finishedAt: r.finished_at?.toISOString() ?? null,
  event: { id: String(r.alert_event_id), ...r.payload },
})

export interface DeliveryQuery {
  webhookId: number | null
  status: DeliveryStatus | null
  limit: number
  /** Keyset cursor: deliveries with a smaller id (newest first). */
  before: number | null
}

export async function listDeliveries(db: Db, q: DeliveryQuery): Promise<DeliveryView[]> {
  const webhook = q.webhookId !== null ? sql`AND d.webhook_id = ${q.webhookId}` : sql``
  const status = q.status !== null ? sql`AND d.status = ${q.status}` : sql``
  const before = q.before !== null ? sql`AND d.id < ${q.before}` : sql``
  const { rows } = await sql<DeliveryRaw>`
    SELECT d.id, d.webhook_id, w.name AS webhook_name, d.alert_event_id, d.series_id, d.status, d.attempts, d.last_status, d.last_error,
           d.created_at, d.finished_at, e.payload
    FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN alert_events e ON e.id = d.alert_event_id
    WHERE true ${webhook} ${status} ${before}
    ORDER BY d.id DESC LIMIT ${q.limit}`.execute(db)
  return rows.map(presentDelivery)
}

export async function getDelivery(db: Db, id: number): Promise<DeliveryView | null> {
  const { rows } = await sql<DeliveryRaw>`
    SELECT d.id, d.webhook_id, w.name AS webhook_name, d.alert_event_id, d.series_id, d.status, d.attempts, d.last_status, d.last_error,
           d.created_at, d.finished_at, e.payload
    FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN alert_events e ON e.id = d.alert_event_id
    WHERE d.id = ${id}`.execute(db)
  return rows[0] ? presentDelivery(rows[0]) : null
}

/** Takes a dead delivery back to pending (one caller wins); its attempt count keeps growing. */
export async function reviveDead(db: Db, id: number): Promise<(DeliveryJobRef & { attempts: number }) | null> {
  const { rows } = await sql<{ id: number; webhook_id: number; alert_event_id: number; series_id: number; attempts: number }>`
    UPDATE webhook_deliveries SET status = 'pending', finished_at = NULL WHERE id = ${id} AND status = 'dead'
    RETURNING id, webhook_id, alert_event_id, series_id, attempts`.execute(db)
  const r = rows[0]
  return r ? { id: r.id, webhookId: r.webhook_id, alertEventId: r.alert_event_id, seriesId: r.series_id, attempts: r.attempts } : null
}

/** Undoes reviveDead when the retry could not be queued, so nothing stays pending without a job. */
export async function markDeadAgain(db: Db, id: number): Promise<void> {
  await sql`UPDATE webhook_deliveries SET status = 'dead', finished_at = now() WHERE id = ${id} AND status = 'pending'`.execute(db)
}
