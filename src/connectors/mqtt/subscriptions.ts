import { sql } from 'kysely'
import type { Db } from '../../infra/db.js'
import type { MappingSpec } from './mapping.js'

export type Qos = 0 | 1
export type ProtocolVersion = 4 | 5

/** A subscription as the connector needs it (with its password). */
export interface MqttSubscription {
  id: string
  name: string
  brokerUrl: string
  topics: string[]
  qos: Qos
  mapping: MappingSpec | MappingSpec[]
  source: string
  clientId: string
  username: string | null
  password: string | null
  protocolVersion: ProtocolVersion
  sessionExpirySec: number
  retiredFilters: string[]
  enabled: boolean
  createdAt: string
  /** Changes on every update: a running connector with an older one is restarted. */
  updatedAt: string
}

/** What the API shows: never the password. */
export type MqttSubscriptionView = Omit<MqttSubscription, 'password' | 'retiredFilters'> & { hasPassword: boolean }

export interface SubscriptionInput {
  name: string
  brokerUrl: string
  topics: string[]
  qos: Qos
  mapping: MappingSpec | MappingSpec[]
  source: string | null
  clientId: string | null
  username: string | null
  /** undefined on update: keep the stored one. */
  password: string | null | undefined
  protocolVersion: ProtocolVersion
  sessionExpirySec: number
  enabled: boolean
}

interface Row {
  id: number
  name: string
  broker_url: string
  topic_filters: string[]
  qos: number
  mapping: MappingSpec | MappingSpec[]
  source: string
  client_id: string
  username: string | null
  password: string | null
  protocol_version: number
  session_expiry_s: number
  retired_filters: string[]
  enabled: boolean
  created_at: Date
  updated_at: Date
}

const COLUMNS = sql`id, name, broker_url, topic_filters, qos, mapping, source, client_id, username, password, protocol_version, session_expiry_s, retired_filters, enabled, created_at, updated_at`

const fromRow = (r: Row): MqttSubscription => ({
  id: String(r.id),
  name: r.name,
  brokerUrl: r.broker_url,
  topics: r.topic_filters,
  qos: r.qos as Qos,
  mapping: r.mapping,
  source: r.source,
  clientId: r.client_id,
  username: r.username,
  password: r.password,
  protocolVersion: r.protocol_version as ProtocolVersion,
  sessionExpirySec: r.session_expiry_s,
  retiredFilters: r.retired_filters,
  enabled: r.enabled,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
})

export function presentSubscription(s: MqttSubscription): MqttSubscriptionView {
  const { password, retiredFilters: _retired, ...rest } = s
  return { ...rest, hasPassword: password !== null }
}

/** Unique (broker, client id) is enforced by an index: two connectors with one client id would keep kicking each other off the broker. */
export class ClientIdTaken extends Error {}

const UNIQUE_VIOLATION = '23505'

async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if ((err as { code?: string }).code === UNIQUE_VIOLATION) throw new ClientIdTaken('another subscription already uses this client id on this broker')
    throw err
  }
}

/** Default client id and source name derive from the new id, so they are set in the same statement. */
export async function createSubscription(db: Db, s: SubscriptionInput, keyPrefix: string): Promise<MqttSubscription> {
  return guarded(async () => {
    const { rows } = await sql<Row>`
      WITH n AS (SELECT nextval(pg_get_serial_sequence('mqtt_subscriptions', 'id')) AS id)
      INSERT INTO mqtt_subscriptions (id, name, broker_url, topic_filters, qos, mapping, source, client_id, username, password, protocol_version, session_expiry_s, enabled)
      SELECT n.id, ${s.name}, ${s.brokerUrl}, ${s.topics}::text[], ${s.qos}, ${JSON.stringify(s.mapping)}::jsonb,
        coalesce(${s.source}::text, 'mqtt-' || n.id), coalesce(${s.clientId}::text, ${`lantern-${keyPrefix}-mqtt-`} || n.id),
        ${s.username}, ${s.password ?? null}, ${s.protocolVersion}, ${s.sessionExpirySec}, ${s.enabled}
      FROM n
      RETURNING ${COLUMNS}`.execute(db)
    return fromRow(rows[0] as Row)
  })
}

/**
 * Replaces a subscription's settings. Filters it no longer has join `retired_filters`, which the
 * connector unsubscribes on connect (the broker keeps the session's subscriptions across restarts).
 */
export async function updateSubscription(db: Db, id: number, s: SubscriptionInput, keyPrefix: string): Promise<MqttSubscription | null> {
  return guarded(async () => {
    const { rows } = await sql<Row>`
      UPDATE mqtt_subscriptions SET
        name = ${s.name}, broker_url = ${s.brokerUrl}, topic_filters = ${s.topics}::text[], qos = ${s.qos},
        mapping = ${JSON.stringify(s.mapping)}::jsonb,
        source = coalesce(${s.source}::text, 'mqtt-' || id),
        client_id = coalesce(${s.clientId}::text, ${`lantern-${keyPrefix}-mqtt-`} || id),
        username = ${s.username},
        password = CASE WHEN ${s.password === undefined} THEN password ELSE ${s.password ?? null} END,
        protocol_version = ${s.protocolVersion}, session_expiry_s = ${s.sessionExpirySec}, enabled = ${s.enabled},
        retired_filters = ARRAY(
          SELECT DISTINCT f FROM unnest(retired_filters || topic_filters) AS f WHERE f <> ALL(${s.topics}::text[]) ORDER BY f
        ),
        updated_at = greatest(now(), updated_at + interval '1 millisecond')
      WHERE id = ${id}
      RETURNING ${COLUMNS}`.execute(db)
    return rows[0] ? fromRow(rows[0]) : null
  })
}

export async function getSubscription(db: Db, id: number): Promise<MqttSubscription | null> {
  const { rows } = await sql<Row>`SELECT ${COLUMNS} FROM mqtt_subscriptions WHERE id = ${id}`.execute(db)
  return rows[0] ? fromRow(rows[0]) : null
}

export async function listSubscriptions(db: Db): Promise<MqttSubscription[]> {
  const { rows } = await sql<Row>`SELECT ${COLUMNS} FROM mqtt_subscriptions ORDER BY id`.execute(db)
  return rows.map(fromRow)
}

export async function deleteSubscription(db: Db, id: number): Promise<boolean> {
  const { numAffectedRows } = await sql`DELETE FROM mqtt_subscriptions WHERE id = ${id}`.execute(db)
  return numAffectedRows === 1n
}
