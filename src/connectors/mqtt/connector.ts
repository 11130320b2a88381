import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import type { Logger } from '../../logger.js'
import type { Redis } from '../../infra/redis.js'
import type { BatchValidator } from '../../ingest/validate-events.js'
import type { MetricEvent, MetricEventInput } from '../../schemas/metric-event.js'
import { mapMessage, type CompiledMappings } from './mapping.js'
import type { MqttKeys, StatusField } from './status.js'
import type { MqttSubscription } from './subscriptions.js'

export interface ConnectorTuning {
  /** Most messages in one append. */
  maxBatch: number
  /** Longest a message waits for its batch to fill before the append. */
  lingerMs: number
  /** A pause this long in the message flow appends what has arrived without waiting out lingerMs. */
  idleMs: number
  /** MQTT 5 Receive Maximum: QoS 1 messages the broker may have unacknowledged at once (MQTT 3.1.1 brokers pick their own, often 20). */
  receiveMaximum: number
  backoffMinMs: number
  backoffMaxMs: number
  connectTimeoutMs: number
  keepaliveSec: number
}

export const DEFAULT_TUNING: ConnectorTuning = {
  maxBatch: 1000,
  lingerMs: 25,
  idleMs: 2,
  receiveMaximum: 2000,
  backoffMinMs: 500,
  backoffMaxMs: 30_000,
  connectTimeoutMs: 10_000,
  keepaliveSec: 30,
}

/** Appends validated events to the log (appendEvents in production) and says how many were new. */
export type AppendFn = (events: MetricEvent[], arrivedAt: number) => Promise<{ accepted: number; duplicates: number }>

export interface ConnectorDeps {
  log: Logger
  /** Where the status hash is written (the runtime's Redis). */
  redis: Redis
  keys: MqttKeys
  owner: string
  append: AppendFn
  validate: BatchValidator<MetricEvent>
  tuning: ConnectorTuning
  onBatch?: (counts: { messages: number; accepted: number; duplicates: number; rejected: number }) => void
}

interface Pending {
  topic: string
  payload: Buffer
  qos: number
  messageId: number | undefined
  /** Which connection delivered it: an acknowledgement goes only on that connection. */
  epoch: number
  receivedAt: number
}

/** Handing this to mqtt.js's message callback stops it from sending the PUBACK itself; the connector sends it once the append resolved. */
const DEFERRED_ACK = new Error('PUBACK deferred until the events are in the log')
const REJECTED_PAYLOAD_CHARS = 200
/** A connection that stayed up this long without an append failure resets the reconnect backoff. */
const HEALTHY_AFTER_MS = 10_000

/**
 * One MQTT client for one subscription. The session is persistent (clean: false, a fixed client
 * id), so the broker keeps QoS 1 messages while Lantern is down and redelivers the ones it never
 * got a PUBACK for. Messages are collected into batches (up to maxBatch, lingerMs, or a pause of
 * idleMs), mapped, validated like ingest, appended to the log in one pipelined round trip per
 * batch, and only then acknowledged, in the order they arrived, on the connection that delivered
 * them. A message that cannot be mapped or is not a valid event is counted as rejected (with the
 * reason in the status) and acknowledged: it would never get better. An append that fails drops
 * the connection without acknowledging, so the broker redelivers after the reconnect (with backoff).
 */
export class MqttConnector {
  private client: MqttClient | null = null
  private epoch = 0
  private queue: Pending[] = []
  private flushing: Promise<void> | null = null
  private lingerTimer: NodeJS.Timeout | null = null
  private idleTimer: NodeJS.Timeout | null = null
  private reconnectTimer: NodeJS.Timeout | null = null
  private backoffMs: number
  private connectedAt = 0
  private failedSinceConnect = false
  private stopping = false
  private readonly statusKey: string
  private readonly t: ConnectorTuning

  constructor(
    readonly sub: MqttSubscription,
    private readonly compiled: CompiledMappings,
    private readonly deps: ConnectorDeps,
  ) {
    this.t = deps.tuning
    this.backoffMs = this.t.backoffMinMs
    this.statusKey = deps.keys.status(sub.id)
  }

  get connected(): boolean {
    return this.client?.connected ?? false
  }

  start(): void {
    const s = this.sub
    const options: IClientOptions = {
      clientId: s.clientId,
      clean: false,
      protocolVersion: s.protocolVersion,
      reconnectPeriod: 0,
      resubscribe: false,
      connectTimeout: this.t.connectTimeoutMs,
      keepalive: this.t.keepaliveSec,
      ...(s.username !== null ? { username: s.username } : {}),
      ...(s.password !== null ? { password: s.password } : {}),
      ...(s.protocolVersion === 5 ? { properties: { sessionExpiryInterval: s.sessionExpirySec, receiveMaximum: this.t.receiveMaximum } } : {}),
    }
    const client = mqtt.connect(s.brokerUrl, options)
    this.client = client
    // Replaces mqtt.js's no-op hook, which runs after its own checks and before it would send the PUBACK.
    client.handleMessage = (packet: IPublishPacket, done: (err?: Error) => void) => {
      this.receive(packet)
      done(packet.qos > 0 ? DEFERRED_ACK : undefined)
    }
    client.on('connect', (connack) => void this.onConnect(connack.sessionPresent))
    client.on('close', () => this.onClose())
    client.on('error', (err) => this.noteError(`${err.message}`))
    client.on('disconnect', (packet) => this.noteError(`the broker disconnected: reason code ${packet.reasonCode ?? 0}`))
  }

  /**
   * Stops taking messages, appends and acknowledges what is queued (when still connected), and
   * disconnects; the broker keeps the session. `forget` (the subscription was deleted) unsubscribes
   * and ends the session as well.
   */
  async stop(opts: { forget: boolean }): Promise<void> {
    this.stopping = true
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    this.clearBatchTimers()
    await this.flushing
    while (this.queue.length > 0) await this.flush()
    this.clearBatchTimers()
    const client = this.client
    if (client) {
      if (opts.forget && client.connected) {
        await withTimeout(client.unsubscribeAsync(this.sub.topics), 5000).catch(() => undefined)
      }
      const disconnect = opts.forget && this.sub.protocolVersion === 5 ? { properties: { sessionExpiryInterval: 0 } } : {}
      await withTimeout(client.endAsync(!client.connected, disconnect), 5000).catch(() => client.end(true))
    }
    await this.status({ connected: '0', disconnectedAt: String(Date.now()) }).catch(() => undefined)
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Connection

  private async onConnect(sessionPresent: boolean): Promise<void> {
    const client = this.client
    if (!client) return
    this.epoch++
    this.connectedAt = Date.now()
    this.failedSinceConnect = false
    this.deps.log.info({ subscription: this.sub.id, broker: redactUrl(this.sub.brokerUrl), sessionPresent }, 'mqtt connected')
    try {
      // Subscribing again with a kept session only refreshes it; MQTT 5 retain handling 1 skips retained messages for subscriptions that already existed.
      const granted = await client.subscribeAsync(this.sub.topics, { qos: this.sub.qos, ...(this.sub.protocolVersion === 5 ? { rh: 1 } : {}) })
      const refused = granted.filter((g) => g.qos === 128 || g.qos > 2)
      if (refused.length > 0) this.noteError(`the broker refused the subscription to ${refused.map((g) => `"${g.topic}"`).join(', ')}`)
      const retired = this.sub.retiredFilters.filter((f) => !this.sub.topics.includes(f))
      if (retired.length > 0) await client.unsubscribeAsync(retired)
    } catch (err) {
      this.noteError(`subscribing failed: ${(err as Error).message}`)
    }
    // Connected means subscribed: what is published from now on reaches this session.
    if (client.connected) await this.status({ connected: '1', connectedAt: String(this.connectedAt) }, { connects: 1 }).catch(() => undefined)
  }

  private onClose(): void {
    // Unacknowledged QoS 1 messages come again on the next connection; QoS 0 ones are appended as they are.
    this.queue = this.queue.filter((m) => m.qos === 0)
    void this.status({ connected: '0', disconnectedAt: String(Date.now()) }).catch(() => undefined)
    if (this.stopping || this.reconnectTimer) return
    if (this.connectedAt > 0 && !this.failedSinceConnect && Date.now() - this.connectedAt >= HEALTHY_AFTER_MS) this.backoffMs = this.t.backoffMinMs
    const delay = Math.round(this.backoffMs * (0.8 + Math.random() * 0.4))
    this.backoffMs = Math.min(this.t.backoffMaxMs, this.backoffMs * 2)
    this.connectedAt = 0
    this.deps.log.debug({ subscription: this.sub.id, delay }, 'mqtt reconnecting after a pause')
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null
      if (!this.stopping) this.client?.reconnect()
    }, delay)
  }

  private noteError(message: string): void {
    if (this.stopping) return
    this.deps.log.warn({ subscription: this.sub.id, err: message }, 'mqtt connector problem')
    void this.status({ lastError: message.slice(0, 500), lastErrorAt: String(Date.now()) }).catch(() => undefined)
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Batching

  private receive(packet: IPublishPacket): void {
    if (this.stopping) return
    this.queue.push({
      topic: packet.topic,
      // A copy: the payload may be a slice of a larger read buffer, which it would keep alive.
      payload: Buffer.from(packet.payload as Buffer),
      qos: packet.qos,
      messageId: packet.messageId,
      epoch: this.epoch,
      receivedAt: Date.now(),
    })
    this.schedule()
  }

  private schedule(): void {
    if (this.stopping || this.flushing || this.queue.length === 0) return
    if (this.queue.length >= this.t.maxBatch) return void this.flush()
    const waited = Date.now() - (this.queue[0] as Pending).receivedAt
    if (waited >= this.t.lingerMs) return void this.flush()
    this.lingerTimer ??= setTimeout(() => void this.flush(), this.t.lingerMs - waited)
    if (this.idleTimer) this.idleTimer.refresh()
    else this.idleTimer = setTimeout(() => void this.flush(), this.t.idleMs)
  }

  private clearBatchTimers(): void {
    if (this.lingerTimer) clearTimeout(this.lingerTimer)
    if (this.idleTimer) clearTimeout(this.idleTimer)
    this.lingerTimer = null
    this.idleTimer = null
  }

  /** One batch at a time, so acknowledgements leave in arrival order. */
  private flush(): Promise<void> {
    this.clearBatchTimers()
    if (this.flushing) return this.flushing
    const batch = this.queue.splice(0, this.t.maxBatch)
    if (batch.length === 0) return Promise.resolve()
    this.flushing = this.process(batch)
      .catch((err: unknown) => this.deps.log.error({ subscription: this.sub.id, err }, 'mqtt batch failed'))
      .finally(() => {
        this.flushing = null
        this.schedule()
      })
    return this.flushing
  }

  private async process(batch: Pending[]): Promise<void> {
    const now = Date.now()
    let rejected = 0
    let lastReject: { msg: Pending; reason: string } | null = null
    const mapped: { msg: Pending; events: (MetricEventInput & { source: string })[] }[] = []
    for (const msg of batch) {
      const m = mapMessage(this.compiled, this.sub.id, msg)
      if (!m.ok) {
        rejected++
        lastReject = { msg, reason: m.reason }
      } else if (m.events.length > 0) {
        mapped.push({ msg, events: m.events.map((e) => ({ ...e, source: this.sub.source })) })
      }
    }
    // One validation for the batch; only when it finds a bad event are messages checked one by one to refuse just theirs.
    let events: MetricEvent[] = []
    const all = this.deps.validate(
      mapped.flatMap((m) => m.events),
      now,
    )
    if (all.ok) events = all.events
    else {
      for (const m of mapped) {
        const checked = this.deps.validate(m.events, now)
        if (checked.ok) {
          for (const e of checked.events) events.push(e)
          continue
        }
        rejected++
        const e = checked.errors[0]
        const which = this.compiled.mappings.length > 1 && e ? `event ${e.index}: ` : ''
        lastReject = { msg: m.msg, reason: e ? `${which}${e.path || 'event'} ${e.reason}` : 'invalid event' }
      }
    }
    let appended = { accepted: 0, duplicates: 0 }
    if (events.length > 0) {
      try {
        appended = await this.deps.append(events, now)
      } catch (err) {
        this.appendFailed(batch, err as Error)
        return
      }
    }
    this.acknowledge(batch)
    this.deps.onBatch?.({ messages: batch.length, accepted: appended.accepted, duplicates: appended.duplicates, rejected })
    const fields: Partial<Record<StatusField, string>> = { lastMessageAt: String(batch[batch.length - 1]?.receivedAt ?? now) }
    if (lastReject) {
      fields.lastRejectReason = lastReject.reason.slice(0, 500)
      fields.lastRejectTopic = lastReject.msg.topic
      fields.lastRejectPayload = lastReject.msg.payload.toString('utf8', 0, REJECTED_PAYLOAD_CHARS * 4).slice(0, REJECTED_PAYLOAD_CHARS)
      fields.lastRejectAt = String(lastReject.msg.receivedAt)
      this.deps.log.warn({ subscription: this.sub.id, topic: lastReject.msg.topic, reason: lastReject.reason, rejected }, 'mqtt messages rejected')
    }
    await this.status(fields, { messages: batch.length, accepted: appended.accepted, duplicates: appended.duplicates, rejected }).catch(() => undefined)
  }

  private acknowledge(batch: Pending[]): void {
    const client = this.client
    if (!client?.connected) return
    const send = (client as unknown as { _sendPacket(p: { cmd: 'puback'; messageId: number }): void })._sendPacket.bind(client)
    for (const m of batch) {
      if (m.qos === 1 && m.epoch === this.epoch && m.messageId !== undefined) send({ cmd: 'puback', messageId: m.messageId })
    }
  }

  /** Nothing of the batch is acknowledged; dropping the connection makes the broker redeliver it (and what came after it). */
  private appendFailed(batch: Pending[], err: Error): void {
    this.failedSinceConnect = true
    const message = `appending to the log failed, ${batch.length} messages not acknowledged (the broker redelivers QoS 1 ones after the reconnect): ${err.message}`
    this.deps.log.error({ subscription: this.sub.id, err: err.message, messages: batch.length }, 'mqtt append failed; reconnecting so the broker redelivers')
    void this.status({ lastError: message.slice(0, 500), lastErrorAt: String(Date.now()) }, { appendFailures: 1 }).catch(() => undefined)
    const client = this.client
    if (client && !this.stopping && batch.some((m) => m.epoch === this.epoch)) client.stream?.destroy()
  }

  private async status(fields: Partial<Record<StatusField, string>>, increments: Partial<Record<StatusField, number>> = {}): Promise<void> {
    const p = this.deps.redis.pipeline()
    const set = Object.entries(fields)
    if (set.length > 0) p.hset(this.statusKey, Object.fromEntries(set))
    for (const [k, n] of Object.entries(increments)) if (n) p.hincrby(this.statusKey, k, n)
    await p.exec()
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms)
    p.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (err: unknown) => {
        clearTimeout(timer)
        reject(err as Error)
      },
    )
  })
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return url
  }
}
