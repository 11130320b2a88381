import type { Redis } from '../../infra/redis.js'

/**
 * Redis keys of the MQTT connectors (beside src/infra/keys.ts, under the same prefix, so test and
 * bench clean-up finds them). A subscription's live status is one hash written by the worker that
 * owns it; the owner lock says which worker that is.
 */
export interface MqttKeys {
  /** Owner lock of a subscription: value = the owning worker, PX = lock TTL. */
  owner(id: string): string
  status(id: string): string
  /** Published on every create, update and delete, so supervisors react at once instead of at their next poll. */
  changed: string
}

export function mqttKeys(prefix: string): MqttKeys {
  return {
    owner: (id) => `${prefix}:mqtt:owner:${id}`,
    status: (id) => `${prefix}:mqtt:status:${id}`,
    changed: `${prefix}:mqtt:changed`,
  }
}

/** Fields of the status hash. Counters only grow; times are epoch ms. */
export type StatusField =
  | 'owner'
  | 'heartbeatAt'
  | 'connected'
  | 'connectedAt'
  | 'disconnectedAt'
  | 'lastMessageAt'
  | 'messages'
  | 'accepted'
  | 'duplicates'
  | 'rejected'
  | 'appendFailures'
  | 'connects'
  | 'lastError'
  | 'lastErrorAt'
  | 'lastRejectReason'
  | 'lastRejectTopic'
  | 'lastRejectPayload'
  | 'lastRejectAt'

export interface ConnectorStatus {
  /** A worker holds the subscription and has reported within the lock TTL. */
  running: boolean
  owner: string | null
  connected: boolean
  connectedAt: string | null
  disconnectedAt: string | null
  lastMessageAt: string | null
  messages: number
  accepted: number
  duplicates: number
  rejected: number
  appendFailures: number
  connects: number
  lastError: { at: string | null; message: string } | null
  lastRejected: { at: string | null; topic: string; reason: string; payload: string } | null
}

const iso = (ms: string | undefined): string | null => (ms ? new Date(Number(ms)).toISOString() : null)
const num = (v: string | undefined): number => (v ? Number(v) : 0)

export function presentStatus(h: Record<string, string>, now: number, ttlMs: number): ConnectorStatus {
  const running = h.owner !== undefined && now - num(h.heartbeatAt) <= ttlMs
  return {
    running,
    owner: running ? (h.owner ?? null) : null,
    connected: running && h.connected === '1',
    connectedAt: iso(h.connectedAt),
    disconnectedAt: iso(h.disconnectedAt),
    lastMessageAt: iso(h.lastMessageAt),
    messages: num(h.messages),
    accepted: num(h.accepted),
    duplicates: num(h.duplicates),
    rejected: num(h.rejected),
    appendFailures: num(h.appendFailures),
    connects: num(h.connects),
    lastError: h.lastError ? { at: iso(h.lastErrorAt), message: h.lastError } : null,
    lastRejected: h.lastRejectReason
      ? { at: iso(h.lastRejectAt), topic: h.lastRejectTopic ?? '', reason: h.lastRejectReason, payload: h.lastRejectPayload ?? '' }
      : null,
  }
}

export async function readStatuses(redis: Redis, keys: MqttKeys, ids: readonly string[], ttlMs: number): Promise<Map<string, ConnectorStatus>> {
  const out = new Map<string, ConnectorStatus>()
  if (ids.length === 0) return out
  const pipeline = redis.pipeline()
  for (const id of ids) pipeline.hgetall(keys.status(id))
  const replies = (await pipeline.exec()) ?? []
  const now = Date.now()
  ids.forEach((id, i) => {
    const [err, h] = replies[i] ?? [null, {}]
    if (err) throw err
    out.set(id, presentStatus((h ?? {}) as Record<string, string>, now, ttlMs))
  })
  return out
}
