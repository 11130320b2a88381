import type { DeltaMessage, LiveBucket, ServerMessage, SnapshotMessage } from '../live/protocol.js'
import type { TopicSpec } from '../live/topic.js'

/**
 * A client for Lantern's live socket, for dashboards (browser WebSocket) and Node (the `ws`
 * package). It keeps every subscription's state, re-subscribes after a reconnect with the last
 * sequence it saw (so the hub replays the gap or resets with a fresh snapshot), keeps per bucket
 * the value with the highest version, and answers heartbeats. Only type imports from the server:
 * this file runs in a browser as it is.
 */

/** The part of the WebSocket API the client uses; browsers' WebSocket and `ws` both provide it. */
export interface SocketLike {
  readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
}

export type Status = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface TopicState {
  /** Topic id, known once the hub has answered the subscription. */
  topic: string | null
  seq: number
  /** Aggregate topics: buckets by group and start, oldest first. */
  buckets: LiveBucket[]
  /** Single-valued topics: the value (kpis, agencies, targets). */
  value: Record<string, unknown> | null
  /** Event topics (discrepancies, anomalies, alerts): the events, newest last, at most MAX_EVENTS. */
  events: unknown[]
}

export interface LiveClientOptions {
  url: string
  /** The WebSocket constructor: the browser's by default, `ws`'s in Node. */
  WebSocket?: new (url: string) => SocketLike
  minReconnectMs?: number
  maxReconnectMs?: number
  onStatus?: (status: Status) => void
}

interface Sub {
  spec: TopicSpec
  buckets: number | undefined
  onChange: (state: TopicState) => void
  state: TopicState
  bucketMap: Map<string, LiveBucket>
  id: string
}

/** Events an event topic keeps on the client; older ones drop off. */
const MAX_EVENTS = 500

const bucketKey = (b: { group?: Record<string, string> | undefined; start: string }): string => `${b.group ? JSON.stringify(b.group) : ''}|${b.start}`

export class LiveClient {
  private socket: SocketLike | null = null
  private readonly subs = new Map<string, Sub>()
  private readonly byTopic = new Map<string, Sub>()
  private nextId = 1
  private attempts = 0
  private stopped = false
  private status: Status = 'connecting'

  constructor(private readonly opts: LiveClientOptions) {
    this.connect()
  }

  /** Watches a topic; `onChange` gets the whole current state after every change. */
  subscribe(spec: TopicSpec, onChange: (state: TopicState) => void, opts: { buckets?: number } = {}): { unsubscribe(): void } {
    const id = `s${this.nextId++}`
    const sub: Sub = { spec, buckets: opts.buckets, onChange, id, bucketMap: new Map(), state: { topic: null, seq: 0, buckets: [], value: null, events: [] } }
    this.subs.set(id, sub)
    this.sendSubscribe(sub)
    return {
      unsubscribe: () => {
        this.subs.delete(id)
        if (sub.state.topic) {
          this.byTopic.delete(sub.state.topic)
          this.send({ type: 'unsubscribe', topic: sub.state.topic })
        }
      },
    }
  }

  close(): void {
    this.stopped = true
    this.setStatus('closed')
    this.socket?.close(1000, 'client closed')
  }

  private connect(): void {
    const Ctor = this.opts.WebSocket ?? (globalThis as unknown as { WebSocket: new (url: string) => SocketLike }).WebSocket
    const socket = new Ctor(this.opts.url)
    this.socket = socket
    socket.onopen = () => {
      this.attempts = 0
      this.setStatus('open')
      for (const sub of this.subs.values()) this.sendSubscribe(sub)
    }
    socket.onmessage = (ev) => this.onMessage(JSON.parse(String(ev.data)) as ServerMessage)
    socket.onclose = () => {
      if (this.stopped) return
      this.setStatus('reconnecting')
      const min = this.opts.minReconnectMs ?? 500
      const max = this.opts.maxReconnectMs ?? 15_000
      const delay = Math.min(max, min * 2 ** this.attempts++) * (0.5 + Math.random() / 2)
      setTimeout(() => !this.stopped && this.connect(), delay)
    }
    socket.onerror = () => undefined
  }

  private setStatus(status: Status): void {
    if (this.status === status) return
    this.status = status
    this.opts.onStatus?.(status)
  }

  private send(msg: object): void {
    if (this.socket?.readyState === 1) this.socket.send(JSON.stringify(msg))
  }

  private sendSubscribe(sub: Sub): void {
    const since = sub.state.topic ? sub.state.seq : undefined
    this.send({ type: 'subscribe', id: sub.id, topic: sub.spec, ...(since !== undefined ? { since } : {}), ...(sub.buckets ? { buckets: sub.buckets } : {}) })
  }

  private onMessage(msg: ServerMessage): void {
    switch (msg.type) {
      case 'ping':
        return this.send({ type: 'pong', ts: msg.ts })
      case 'subscribed': {
        const sub = msg.id ? this.subs.get(msg.id) : undefined
        if (sub) {
          sub.state.topic = msg.topic
          this.byTopic.set(msg.topic, sub)
        }
        return
      }
      case 'reset': {
        const sub = this.byTopic.get(msg.topic)
        if (sub) this.clear(sub)
        return
      }
      case 'snapshot':
        return this.applySnapshot(msg)
      case 'delta':
        return this.applyDelta(msg)
      default:
        return
    }
  }

  private clear(sub: Sub): void {
    sub.bucketMap.clear()
    sub.state = { ...sub.state, seq: 0, buckets: [], value: null, events: [] }
  }

  private applySnapshot(msg: SnapshotMessage): void {
    const sub = this.byTopic.get(msg.topic)
    if (!sub) return
    this.clear(sub)
    sub.state.seq = msg.seq
    for (const b of msg.buckets ?? []) sub.bucketMap.set(bucketKey(b), b)
    if (msg.crosschecks !== undefined) sub.state.events = [...(msg.crosschecks as unknown[])].reverse()
    if (msg.events !== undefined) sub.state.events = [...msg.events]
    const { type: _t, topic: _p, seq: _s, buckets: _b, crosschecks: _c, events: _e, ...value } = msg
    sub.state.value = msg.buckets === undefined && msg.crosschecks === undefined && msg.events === undefined ? value : msg.open !== undefined ? { open: msg.open } : null
    this.emit(sub)
  }

  private applyDelta(msg: DeltaMessage): void {
    const sub = this.byTopic.get(msg.topic)
    if (!sub || msg.seq <= sub.state.seq) return
    sub.state.seq = msg.seq
    if (msg.bucket) {
      const b = { ...msg.bucket, v: msg.v, ...(msg.group ? { group: msg.group } : {}) }
      const key = bucketKey(b)
      const held = sub.bucketMap.get(key)
      if (!held || (held.v ?? -1) <= msg.v) sub.bucketMap.set(key, b)
    } else if (msg.crosscheck !== undefined || msg.event !== undefined) {
      sub.state.events = [...sub.state.events, msg.crosscheck ?? msg.event].slice(-MAX_EVENTS)
    } else {
      const { type: _t, topic: _p, seq: _s, ...value } = msg
      if (!sub.state.value || ((sub.state.value.v as number | undefined) ?? -1) <= msg.v) sub.state.value = value
    }
    this.emit(sub)
  }

  private emit(sub: Sub): void {
    sub.state.buckets = [...sub.bucketMap.values()].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))
    sub.onChange(sub.state)
  }
}
