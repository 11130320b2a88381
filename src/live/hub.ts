import type { WebSocket } from 'ws'
import { Ajv } from 'ajv'
import type { Runtime } from '../infra/runtime.js'
import { makeRedis, type Redis } from '../infra/redis.js'
import { rollUpForTopic, topicOf, type AggregateTopic, type Topic, type TopicBucket } from './topic.js'
import { ClientMessage, CLOSE, PROTOCOL_VERSION, type SubscribeMessage } from './protocol.js'
import { DeltaPublisher, singleValue } from './delta-publisher.js'
import { Outbox } from './outbox.js'
import type { ChangeNotice } from './change-notice.js'
import { viewOf } from '../domain/rollup.js'
import { bucketsInRange, newestStart } from '../repositories/aggregates.repository.js'
import { eventTopicSnapshot } from './event-topics.js'

interface Subscription {
  lastSeq: number
  /** Until the snapshot (or replay) is sent, deltas wait here so none is lost or sent early. */
  pending: { seq: number; message: string }[] | null
}

interface Connection {
  id: number
  ws: WebSocket
  out: Outbox
  subs: Map<string, Subscription>
  lastHeard: number
  /** Client messages are handled one at a time, in order; this is the tail of that chain. */
  inbox: Promise<void>
  queued: number
}

/** Client messages a socket may have waiting; past it, the client is flooding and is closed. */
const MAX_QUEUED_MESSAGES = 256

interface LocalTopic {
  topic: Topic
  conns: Set<Connection>
  /** Snapshot of the newest buckets, valid while the topic's sequence has not moved. */
  cached: { seq: number; count: number; newest: number; buckets: TopicBucket[] } | null
}

const SEQ_PREFIX = /^\{"seq":(\d+),/

/**
 * Which value a delta replaces: a bucket of an aggregate topic, the whole value of a KPI, ranking
 * or targets topic. Discrepancies, anomaly flags and alert changes are events, not values: each keeps its own key.
 */
function coalescingKey(seq: number, message: string): string {
  const m = JSON.parse(message) as { topic: string; group?: unknown; bucket?: { start: string }; crosscheck?: unknown; event?: unknown }
  if (m.crosscheck !== undefined || m.event !== undefined) return `${m.topic}|#${seq}`
  return `${m.topic}|${JSON.stringify(m.group ?? null)}|${m.bucket?.start ?? 'value'}`
}

/**
 * The hub of one API process: sockets, their subscriptions, and the Redis side (one subscriber
 * connection; a topic channel is subscribed only while a local socket watches the topic). Every
 * delta is encoded once, by whoever published it, and written as-is to every local subscriber.
 */
export class Hub {
  private readonly topics = new Map<string, LocalTopic>()
  private readonly conns = new Set<Connection>()
  private readonly sub: Redis
  private readonly publisher: DeltaPublisher
  private readonly validate = new Ajv({ strict: false }).compile<ClientMessage>(ClientMessage)
  private heartbeat: NodeJS.Timeout | null = null
  private nextConnId = 1

  constructor(private readonly rt: Runtime) {
    this.sub = makeRedis(rt.config.redisUrl, { failFast: false }, 'lantern-hub-sub')
    this.publisher = new DeltaPublisher(rt, () => [...this.topics.values()].map((t) => t.topic))
  }

  async start(): Promise<void> {
    this.sub.on('message', (channel: string, message: string) => this.onRedisMessage(channel, message))
    let connectedOnce = false
    this.sub.on('ready', () => {
      if (connectedOnce) this.resync().catch((err: Error) => this.rt.log.error({ err }, 'live resync after reconnect failed'))
      connectedOnce = true
    })
    await this.sub.connect()
    await this.sub.subscribe(this.rt.keys.changesChannel)
    this.publisher.start()
    this.heartbeat = setInterval(() => this.beat(), this.rt.config.liveHeartbeatMs)
  }

  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat)
    for (const c of this.conns) c.ws.close(CLOSE.GOING_AWAY, 'server shutting down')
    await this.publisher.stop()
    this.sub.disconnect()
  }

  get socketCount(): number {
    return this.conns.size
  }

  accept(ws: WebSocket): void {
    const { config, metrics } = this.rt
    const limits = { coalesceBytes: config.liveCoalesceBytes, maxBufferedBytes: config.liveMaxBufferedBytes, maxCoalesced: config.liveMaxCoalesced }
    const out = new Outbox(
      ws,
      limits,
      () => {
        metrics.slowClosed.inc()
        this.drop(conn)
      },
      () => metrics.messagesSent.inc(),
    )
    const conn: Connection = { id: this.nextConnId++, ws, out, subs: new Map(), lastHeard: Date.now(), inbox: Promise.resolve(), queued: 0 }
    this.conns.add(conn)
    this.rt.metrics.sockets.set(this.conns.size)
    ws.on('message', (data, isBinary) => {
      conn.lastHeard = Date.now()
      if (isBinary) return this.sendError(conn, undefined, 'BAD_REQUEST', 'messages are JSON text')
      if (++conn.queued > MAX_QUEUED_MESSAGES) {
        ws.close(CLOSE.POLICY_VIOLATION, `more than ${MAX_QUEUED_MESSAGES} messages waiting`)
        return this.drop(conn)
      }
      const text = data.toString()
      conn.inbox = conn.inbox
        .then(() => this.onClientMessage(conn, text))
        .catch((err: Error) => {
          this.rt.log.error({ err, conn: conn.id }, 'live message failed')
          this.sendError(conn, undefined, 'INTERNAL', 'the hub could not handle the message')
        })
        .finally(() => void conn.queued--)
    })
    ws.on('pong', () => {
      conn.lastHeard = Date.now()
    })
    ws.on('close', () => this.drop(conn))
    ws.on('error', () => this.drop(conn))
    this.send(conn, JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, heartbeatMs: this.rt.config.liveHeartbeatMs }))
  }

  private async onClientMessage(conn: Connection, text: string): Promise<void> {
    let msg: unknown
    try {
      msg = JSON.parse(text)
    } catch {
      return this.sendError(conn, undefined, 'BAD_REQUEST', 'message is not valid JSON')
    }
    if (!this.validate(msg)) {
      const err = this.validate.errors?.[0]
      const id = typeof (msg as { id?: unknown })?.id === 'string' ? (msg as { id: string }).id : undefined
      return this.sendError(conn, id, 'BAD_REQUEST', `invalid message${err ? `: ${err.instancePath || '/'} ${err.message}` : ''}`)
    }
    switch (msg.type) {
      case 'subscribe':
        return this.subscribe(conn, msg)
      case 'unsubscribe':
        this.unsubscribe(conn, msg.topic)
        return this.send(conn, JSON.stringify({ type: 'unsubscribed', id: msg.id, topic: msg.topic }))
      case 'ping':
        return this.send(conn, JSON.stringify({ type: 'pong', ts: msg.ts }))
      case 'pong':
        return
    }
  }

  private async subscribe(conn: Connection, msg: SubscribeMessage): Promise<void> {
    const topic = topicOf(msg.topic)
    if (conn.subs.has(topic.id)) this.unsubscribe(conn, topic.id)
    if (conn.subs.size >= this.rt.config.liveMaxTopicsPerSocket) {
      return this.sendError(conn, msg.id, 'TOO_MANY_TOPICS', `a socket may watch at most ${this.rt.config.liveMaxTopicsPerSocket} topics`)
    }
    const local = await this.watch(topic)
    const sub: Subscription = { lastSeq: 0, pending: [] }
    conn.subs.set(topic.id, sub)
    local.conns.add(conn)
    this.send(conn, JSON.stringify({ type: 'subscribed', id: msg.id, topic: topic.id, spec: topic.spec }))

    const { redis, keys } = this.rt
    const seq = Number(await redis.get(keys.topicSeq(topic.id))) || 0
    const count = msg.buckets ?? 60
    let replayed = false
    if (msg.since !== undefined && msg.since <= seq) {
      const missed = msg.since === seq ? [] : await redis.xrange(keys.topicHistory(topic.id), `${msg.since + 1}-0`, '+')
      if (msg.since === seq || missed[0]?.[0] === `${msg.since + 1}-0`) {
        for (const [, fields] of missed) this.send(conn, fields[1] as string)
        sub.lastSeq = missed.length > 0 ? Number((missed[missed.length - 1] as [string, string[]])[0].split('-')[0]) : seq
        replayed = true
        // Changes committed while no hub watched this topic were never published: publish them now.
        await this.refresh(local, seq, count)
      }
    }
    if (!replayed) {
      if (msg.since !== undefined) {
        this.send(conn, JSON.stringify({ type: 'reset', topic: topic.id, reason: 'the history no longer reaches back to the given sequence; a fresh snapshot follows' }))
      }
      this.send(conn, await this.snapshotMessage(local, seq, count))
      sub.lastSeq = seq
    }
    const waiting = sub.pending ?? []
    sub.pending = null
    for (const d of waiting) this.deliver(conn, sub, d.seq, d.message)
  }

  /**
   * Pub/sub drops what is published while the subscriber is disconnected; after a reconnect every
   * local subscription is brought level from the topic history, or reset with a fresh snapshot
   * when the history no longer reaches back. Never a silent gap.
   */
  private async resync(): Promise<void> {
    const { redis, keys } = this.rt
    for (const local of this.topics.values()) {
      const id = local.topic.id
      const subs = [...local.conns].flatMap((conn) => {
        const sub = conn.subs.get(id)
        return sub && !sub.pending ? [{ conn, sub }] : []
      })
      if (subs.length === 0) continue
      local.cached = null
      // Change notices were lost too: publish whatever changed meanwhile (the guard skips the rest).
      const latest = Number(await redis.get(keys.topicSeq(id))) || 0
      await this.refresh(local, latest, 60)
      const from = Math.min(...subs.map((s) => s.sub.lastSeq)) + 1
      const seq = Number(await redis.get(keys.topicSeq(id))) || 0
      const entries = seq >= from ? await redis.xrange(keys.topicHistory(id), `${from}-0`, '+') : []
      const oldest = entries[0] ? Number(entries[0][0].split('-')[0]) : seq + 1
      for (const { conn, sub } of subs) {
        if (sub.lastSeq + 1 < oldest && sub.lastSeq < seq) {
          this.send(conn, JSON.stringify({ type: 'reset', topic: id, reason: 'the hub lost its Redis connection and the history no longer reaches back; a fresh snapshot follows' }))
          this.send(conn, await this.snapshotMessage(local, seq, 60))
          sub.lastSeq = seq
        }
        for (const [entryId, fields] of entries) this.deliver(conn, sub, Number(entryId.split('-')[0]), fields[1] as string)
      }
    }
  }

  /** Recomputes a topic from committed state and publishes what is newer than what was published. */
  private async refresh(local: LocalTopic, seq: number, count: number): Promise<void> {
    const topic = local.topic
    // Discrepancies are published as they are recorded; there is nothing to recompute.
    if (topic.kind === 'discrepancies' || topic.kind === 'anomalies' || topic.kind === 'alerts') return
    if (topic.kind === 'aggregate') await this.publisher.publishBuckets(topic, await this.buckets(local, topic, seq, count))
    else await this.publisher.publishSingle(topic, await singleValue(this.rt, topic))
  }

  private async snapshotMessage(local: LocalTopic, seq: number, count: number): Promise<string> {
    const topic = local.topic
    if (topic.kind === 'discrepancies' || topic.kind === 'anomalies' || topic.kind === 'alerts') {
      return JSON.stringify({ type: 'snapshot', topic: topic.id, seq, ...(await eventTopicSnapshot(this.rt, topic)) })
    }
    if (topic.kind !== 'aggregate') {
      const value = await singleValue(this.rt, topic)
      return JSON.stringify({ type: 'snapshot', topic: topic.id, seq, v: value.version, ...value.body })
    }
    const width = topic.widthS * 1000
    const buckets = await this.buckets(local, topic, seq, count)
    return JSON.stringify({ type: 'snapshot', topic: topic.id, seq, buckets: buckets.map((b) => ({ v: b.version, ...(b.group ? { group: b.group } : {}), ...viewOf(b, width) })) })
  }

  /** The topic's newest `count` bucket starts (per group for wildcard topics). */
  private async buckets(local: LocalTopic, topic: AggregateTopic, seq: number, count: number): Promise<TopicBucket[]> {
    const { spec, widthS, filter } = topic
    const c = local.cached
    if (c && c.seq === seq && c.count >= count) return c.buckets.filter((b) => b.startMs >= c.newest - (count - 1) * widthS * 1000)
    const newest = await newestStart(this.rt.db, spec.metric, filter, widthS)
    if (newest === null) return []
    const fromMs = newest - (count - 1) * widthS * 1000
    const rows = await bucketsInRange(this.rt.db, { metric: spec.metric, dims: filter, widthS, fromMs, toMs: newest + 1 })
    const buckets = rollUpForTopic(topic, rows)
    local.cached = { seq, count, newest, buckets }
    return buckets
  }

  private unsubscribe(conn: Connection, topicId: string): void {
    conn.subs.delete(topicId)
    const local = this.topics.get(topicId)
    if (!local) return
    local.conns.delete(conn)
    if (local.conns.size === 0) {
      this.topics.delete(topicId)
      this.sub.unsubscribe(this.rt.keys.topicChannel(topicId)).catch(() => undefined)
      this.rt.metrics.liveTopics.set(this.topics.size)
    }
  }

  private async watch(topic: Topic): Promise<LocalTopic> {
    let local = this.topics.get(topic.id)
    if (!local) {
      local = { topic, conns: new Set(), cached: null }
      this.topics.set(topic.id, local)
      this.rt.metrics.liveTopics.set(this.topics.size)
      // Subscribed before the snapshot's sequence is read, so no delta can fall between the two.
      await this.sub.subscribe(this.rt.keys.topicChannel(topic.id))
    }
    return local
  }

  private onRedisMessage(channel: string, message: string): void {
    if (channel === this.rt.keys.changesChannel) {
      try {
        this.publisher.onNotice(JSON.parse(message) as ChangeNotice)
      } catch (err) {
        this.rt.log.warn({ err }, 'unreadable change notice')
      }
      return
    }
    const topicId = channel.slice(channel.indexOf('{t') + 2, channel.indexOf('}'))
    const local = this.topics.get(topicId)
    const m = SEQ_PREFIX.exec(message)
    if (!local || !m) return
    const seq = Number(m[1])
    local.cached = null
    for (const conn of local.conns) {
      const sub = conn.subs.get(topicId)
      if (sub) this.deliver(conn, sub, seq, message)
    }
  }

  private deliver(conn: Connection, sub: Subscription, seq: number, message: string): void {
    if (sub.pending) {
      sub.pending.push({ seq, message })
      return
    }
    if (seq <= sub.lastSeq) return
    sub.lastSeq = seq
    conn.out.delta(seq, message, () => coalescingKey(seq, message))
  }

  private send(conn: Connection, message: string): void {
    conn.out.send(message)
  }

  private sendError(conn: Connection, id: string | undefined, code: string, message: string): void {
    this.send(conn, JSON.stringify({ type: 'error', id, code, message }))
  }

  private beat(): void {
    const now = Date.now()
    const payload = JSON.stringify({ type: 'ping', ts: now })
    for (const conn of this.conns) {
      if (now - conn.lastHeard > 2 * this.rt.config.liveHeartbeatMs) {
        conn.ws.close(CLOSE.HEARTBEAT_TIMEOUT, 'no heartbeat from client')
        conn.ws.terminate()
        this.drop(conn)
        continue
      }
      this.send(conn, payload)
      conn.ws.ping()
    }
  }

  private drop(conn: Connection): void {
    if (!this.conns.delete(conn)) return
    conn.out.dispose()
    for (const topicId of [...conn.subs.keys()]) this.unsubscribe(conn, topicId)
    this.rt.metrics.sockets.set(this.conns.size)
  }
}
