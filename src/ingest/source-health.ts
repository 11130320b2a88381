import type { ChainableCommander } from 'ioredis'
import type { Redis } from '../infra/redis.js'
import type { Keys } from '../infra/keys.js'
import type { EventError } from '../errors.js'
import { SOURCE_PATTERN } from '../schemas/metric-event.js'

/** Minutes of per-minute counts kept; the rate is read over the last RATE_MINUTES minutes and the one under way. */
const RATE_KEEP_S = 15 * 60
const RATE_MINUTES = 5
const SOURCE_RE = new RegExp(SOURCE_PATTERN)

export interface SourceHealth {
  source: string
  status: 'live' | 'silent'
  /** Wall-clock time of the last accepted batch. */
  lastArrivalAt: string | null
  /** Newest event time in that batch. */
  lastEventAt: string | null
  /** Arrival minus event time of that batch's newest event: how far behind the source runs. */
  lagSeconds: number | null
  eventsPerMinute: number
  events: number
  rejected: number
  lastRejection: { at: string; reason: string } | null
}

const minuteOf = (ms: number): number => Math.floor(ms / 60_000)

/**
 * Adds one batch's health bookkeeping to the append pipeline: no round trip of its own, and a
 * few commands per source in the batch, not per event.
 */
export function recordArrivals(pipeline: ChainableCommander, keys: Keys, events: readonly { source: string; ts: number }[], arrivedAt: number): void {
  const bySource = new Map<string, { n: number; newest: number }>()
  for (const e of events) {
    const s = bySource.get(e.source)
    if (!s) bySource.set(e.source, { n: 1, newest: e.ts })
    else {
      s.n++
      if (e.ts > s.newest) s.newest = e.ts
    }
  }
  const rate = keys.sourceRate(minuteOf(arrivedAt))
  for (const [source, s] of bySource) {
    pipeline.zadd(keys.sourceNames, arrivedAt, source)
    pipeline.hset(keys.sourceHealth(source), 'lastArrival', arrivedAt, 'lastEvent', s.newest, 'lagMs', Math.max(0, arrivedAt - s.newest))
    pipeline.hincrby(keys.sourceHealth(source), 'events', s.n)
    pipeline.hincrby(rate, source, s.n)
  }
  pipeline.expire(rate, RATE_KEEP_S)
}

/** Counts refused events against the source they name (events with no readable source count nowhere). */
export async function recordRejections(redis: Redis, keys: Keys, items: readonly unknown[], errors: readonly EventError[], at: number): Promise<void> {
  const bySource = new Map<string, { n: number; reason: string }>()
  for (const err of errors) {
    const source = (items[err.index] as { source?: unknown } | null)?.source
    if (typeof source !== 'string' || !SOURCE_RE.test(source)) continue
    const s = bySource.get(source)
    if (s) s.n++
    else bySource.set(source, { n: 1, reason: `${err.path || 'event'}: ${err.reason}` })
  }
  if (bySource.size === 0) return
  const pipeline = redis.pipeline()
  for (const [source, s] of bySource) {
    pipeline.zadd(keys.sourceNames, 'NX', 0, source)
    pipeline.hincrby(keys.sourceHealth(source), 'rejected', s.n)
    pipeline.hset(keys.sourceHealth(source), 'lastRejectAt', at, 'lastRejectReason', s.reason.slice(0, 500))
  }
  await pipeline.exec()
}

/** Every source's health now; silent = nothing accepted for `silentAfterMs`. */
export async function listSourceHealth(redis: Redis, keys: Keys, now: number, silentAfterMs: number): Promise<SourceHealth[]> {
  const names = await redis.zrange(keys.sourceNames, 0, -1)
  if (names.length === 0) return []
  const pipeline = redis.pipeline()
  for (const name of names) pipeline.hgetall(keys.sourceHealth(name))
  const current = minuteOf(now)
  // The minute under way and the RATE_MINUTES before it, over the time they span.
  const minutes = Array.from({ length: RATE_MINUTES + 1 }, (_, i) => keys.sourceRate(current - i))
  const spanMinutes = RATE_MINUTES + (now % 60_000) / 60_000
  for (const m of minutes) pipeline.hmget(m, ...names)
  const replies = (await pipeline.exec()) ?? []
  const perMinute = replies.slice(names.length).map(([, r]) => (r as (string | null)[]) ?? [])
  return names.map((source, i) => {
    const h = (replies[i]?.[1] as Record<string, string>) ?? {}
    const lastArrival = h.lastArrival ? Number(h.lastArrival) : null
    const recent = perMinute.reduce((sum, counts) => sum + Number(counts[i] ?? 0), 0)
    return {
      source,
      status: lastArrival !== null && now - lastArrival < silentAfterMs ? 'live' : 'silent',
      lastArrivalAt: lastArrival !== null ? new Date(lastArrival).toISOString() : null,
      lastEventAt: h.lastEvent ? new Date(Number(h.lastEvent)).toISOString() : null,
      lagSeconds: h.lagMs ? Number(h.lagMs) / 1000 : null,
      eventsPerMinute: Math.round((recent / spanMinutes) * 10) / 10,
      events: Number(h.events ?? 0),
      rejected: Number(h.rejected ?? 0),
      lastRejection: h.lastRejectAt ? { at: new Date(Number(h.lastRejectAt)).toISOString(), reason: h.lastRejectReason ?? '' } : null,
    }
  })
}
