import { sql, type RawBuilder } from 'kysely'
import type { Db } from '../infra/db.js'
import type { AlertEvent, AlertStatus } from '../schemas/alert-event.js'

/** Ids drawn ahead of the insert, so a batch can link rows and keep its own order. */
export async function allocateIds(trx: Db, sequence: 'alerts_id_seq' | 'alert_events_id_seq', n: number): Promise<number[]> {
  if (n === 0) return []
  const { rows } = await sql<{ id: number }>`SELECT nextval(${sequence}::regclass) AS id FROM generate_series(1, ${n})`.execute(trx)
  return rows.map((r) => r.id)
}

/** An alert's state at the end of a batch. */
export interface AlertWrite {
  id: number
  ruleId: number
  seriesId: number
  status: AlertStatus
  severity: string
  pendingAt: number
  firingAt: number | null
  resolvedAt: number | null
  value: number
  /** What made it pending or firing: the window at that change. */
  cause: unknown
  /** The window when it resolved or was cancelled. */
  resolution: unknown
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString())

export async function upsertAlerts(trx: Db, alerts: readonly AlertWrite[]): Promise<void> {
  if (alerts.length === 0) return
  await sql`
    INSERT INTO alerts (id, rule_id, series_id, status, severity, pending_at, firing_at, resolved_at, value, cause, resolution)
    SELECT id, r, s, st, sev, pa, fa, ra, v, c::jsonb, res::jsonb
    FROM unnest(${alerts.map((a) => a.id)}::bigint[], ${alerts.map((a) => a.ruleId)}::bigint[], ${alerts.map((a) => a.seriesId)}::bigint[],
      ${alerts.map((a) => a.status)}::text[], ${alerts.map((a) => a.severity)}::text[], ${alerts.map((a) => iso(a.pendingAt))}::timestamptz[],
      ${alerts.map((a) => iso(a.firingAt))}::timestamptz[], ${alerts.map((a) => iso(a.resolvedAt))}::timestamptz[], ${alerts.map((a) => a.value)}::float8[],
      ${alerts.map((a) => JSON.stringify(a.cause))}::text[], ${alerts.map((a) => (a.resolution === null ? null : JSON.stringify(a.resolution)))}::text[])
      AS t(id, r, s, st, sev, pa, fa, ra, v, c, res)
    ON CONFLICT (id) DO UPDATE SET
      status = excluded.status,
      firing_at = coalesce(excluded.firing_at, alerts.firing_at),
      resolved_at = excluded.resolved_at,
      value = CASE WHEN excluded.status IN ('pending', 'firing') THEN excluded.value ELSE alerts.value END,
      cause = CASE WHEN excluded.status IN ('pending', 'firing') THEN excluded.cause ELSE alerts.cause END,
      resolution = excluded.resolution,
      updated_at = now()`.execute(trx)
}

export interface AlertEventWrite {
  id: number
  alertId: number
  seriesId: number
  status: AlertStatus
  /** The delivered body without its id. */
  payload: Omit<AlertEvent, 'id'>
}

export async function insertAlertEvents(trx: Db, events: readonly AlertEventWrite[]): Promise<void> {
  if (events.length === 0) return
  await sql`
    INSERT INTO alert_events (id, alert_id, series_id, status, payload)
    SELECT id, a, s, st, p::jsonb FROM unnest(${events.map((e) => e.id)}::bigint[], ${events.map((e) => e.alertId)}::bigint[],
      ${events.map((e) => e.seriesId)}::bigint[], ${events.map((e) => e.status)}::text[], ${events.map((e) => JSON.stringify(e.payload))}::text[]) AS t(id, a, s, st, p)`.execute(trx)
}

export interface AlertView {
  id: string
  status: AlertStatus
  severity: string
  rule: { id: string; name: string; kind: string; labels: Record<string, string> }
  /** The rule's condition now (a rule changed since keeps the alert but shows its new condition). */
  condition: { aggregate: string; window: number; op: string; value: number; for: number }
  series: { id: string; metric: string; dims: Record<string, string> }
  value: number
  pendingAt: string
  firingAt: string | null
  resolvedAt: string | null
  cause: unknown
  resolution: unknown
  updatedAt: string
}

export interface AlertQuery {
  status: AlertStatus[] | null
  ruleId: number | null
  metric: string | null
  limit: number
  /** Keyset cursor over (updated_at, id), newest first. */
  before: { ts: number; id: number } | null
}

interface Raw {
  id: number
  status: AlertStatus
  severity: string
  rule_id: number
  rule_name: string
  rule_kind: string
  rule_labels: Record<string, string>
  aggregate: string
  window_s: number
  op: string
  threshold: number
  for_s: number
  series_id: number
  metric: string
  dims: Record<string, string>
  value: number
  pending_at: Date
  firing_at: Date | null
  resolved_at: Date | null
  cause: unknown
  resolution: unknown
  updated_at: Date
}

const present = (r: Raw): AlertView => ({
  id: String(r.id),
  status: r.status,
  severity: r.severity,
  rule: { id: String(r.rule_id), name: r.rule_name, kind: r.rule_kind, labels: r.rule_labels },
  condition: { aggregate: r.rule_kind === 'anomaly' ? 'max_score' : r.aggregate, window: r.window_s, op: r.op, value: r.threshold, for: r.for_s },
  series: { id: String(r.series_id), metric: r.metric, dims: r.dims },
  value: r.value,
  pendingAt: r.pending_at.toISOString(),
  firingAt: r.firing_at?.toISOString() ?? null,
  resolvedAt: r.resolved_at?.toISOString() ?? null,
  cause: r.cause,
  resolution: r.resolution,
  updatedAt: r.updated_at.toISOString(),
})

export async function listAlerts(db: Db, q: AlertQuery): Promise<AlertView[]> {
  const status = q.status ? sql`AND a.status = ANY(${q.status}::text[])` : sql``
  const rule = q.ruleId !== null ? sql`AND a.rule_id = ${q.ruleId}` : sql``
  const metric = q.metric !== null ? sql`AND s.metric = ${q.metric}` : sql``
  const before = q.before ? sql`AND (a.updated_at, a.id) < (${new Date(q.before.ts).toISOString()}::timestamptz, ${q.before.id})` : sql``
  return selectAlerts(db, sql`${status} ${rule} ${metric} ${before}`, q.limit)
}

async function selectAlerts(db: Db, where: RawBuilder<unknown>, limit: number): Promise<AlertView[]> {
  const { rows } = await sql<Raw>`
    SELECT a.id, a.status, a.severity, a.rule_id, r.name AS rule_name, r.kind AS rule_kind, r.labels AS rule_labels, r.aggregate, r.window_s, r.op,
           r.value AS threshold, r.for_s, a.series_id, s.metric, s.dims, a.value,
           a.pending_at, a.firing_at, a.resolved_at, a.cause, a.resolution, a.updated_at
    FROM alerts a JOIN alert_rules r ON r.id = a.rule_id JOIN series s ON s.id = a.series_id
    WHERE true ${where}
    ORDER BY a.updated_at DESC, a.id DESC LIMIT ${limit}`.execute(db)
  return rows.map(present)
}

export async function getAlert(db: Db, id: number): Promise<(AlertView & { changes: AlertEvent[] }) | null> {
  const [row] = await selectAlerts(db, sql`AND a.id = ${id}`, 1)
  if (!row) return null
  const { rows } = await sql<{ id: number; payload: Omit<AlertEvent, 'id'> }>`SELECT id, payload FROM alert_events WHERE alert_id = ${id} ORDER BY id`.execute(db)
  return { ...row, changes: rows.map((r) => ({ id: String(r.id), ...r.payload })) }
}

/**
 * Ends the open alerts of a rule that stops being evaluated: a firing alert resolves, a pending one
 * is cancelled, each with a change in the outbox (from its last change, `reason` added) so every
 * consumer hears of it. Runs in the caller's transaction.
 */
export async function closeOpenAlerts(trx: Db, ruleId: number, reason: string): Promise<number> {
  const { rows } = await sql<{ id: number }>`
    WITH closed AS (
      UPDATE alerts SET status = CASE WHEN status = 'firing' THEN 'resolved' ELSE 'cancelled' END, resolved_at = now(),
        resolution = jsonb_build_object('reason', ${reason}::text), updated_at = now()
      WHERE rule_id = ${ruleId} AND status IN ('pending', 'firing')
      RETURNING id, series_id, status
    ), last AS (
      SELECT DISTINCT ON (e.alert_id) e.alert_id, e.payload FROM alert_events e JOIN closed c ON c.id = e.alert_id ORDER BY e.alert_id, e.id DESC
    )
    INSERT INTO alert_events (alert_id, series_id, status, payload)
    SELECT c.id, c.series_id, c.status,
      l.payload || jsonb_build_object('status', c.status, 'at', n.iso, 'resolvedAt', n.iso, 'reason', ${reason}::text)
    FROM closed c JOIN last l ON l.alert_id = c.id, (SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS iso) n
    RETURNING id`.execute(trx)
  return rows.length
}
