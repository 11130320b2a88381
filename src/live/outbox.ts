import type { WebSocket } from 'ws'
import { CLOSE } from './protocol.js'

export interface OutboxLimits {
  /** Unsent bytes past which deltas are coalesced instead of queued. */
  coalesceBytes: number
  /** Unsent bytes past which the client is closed as too slow. */
  maxBufferedBytes: number
  /** Distinct coalesced values past which the client is closed as too slow. */
  maxCoalesced: number
}

/** How long a too-slow client gets to read its close frame before the connection is cut. */
const CLOSE_GRACE_MS = 2000
const FLUSH_EVERY_MS = 50

/**
 * What one socket has still to receive, bounded. While the client keeps up, messages go straight
 * to the socket. When it falls behind, deltas stop queueing: only the newest value per topic
 * value (bucket) is kept, and sent once the socket drains; sequence numbers then skip the
 * superseded values, which were absolute and are no longer true. Past either limit the client is
 * closed, so a stalled tablet costs the server a bounded amount of memory.
 */
export class Outbox {
  private coalesced: Map<string, { seq: number; message: string }> | null = null
  private timer: NodeJS.Timeout | null = null
  private closed = false

  constructor(
    private readonly ws: WebSocket,
    private readonly limits: OutboxLimits,
    private readonly onTooSlow: () => void,
    private readonly onSent: () => void,
  ) {}

  /** Replies, snapshots and heartbeats: never coalesced, but bounded like everything else. */
  send(message: string): void {
    if (!this.writable()) return
    this.ws.send(message)
    this.onSent()
  }

  /** A delta; `key` names the value it replaces (computed only when coalescing is needed). */
  delta(seq: number, message: string, key: () => string): void {
    if (!this.writable()) return
    if (!this.coalesced && this.ws.bufferedAmount <= this.limits.coalesceBytes) {
      this.ws.send(message)
      this.onSent()
      return
    }
    if (!this.coalesced) {
      this.coalesced = new Map()
      this.timer = setInterval(() => this.flush(), FLUSH_EVERY_MS)
    }
    this.coalesced.set(key(), { seq, message })
    if (this.coalesced.size > this.limits.maxCoalesced) this.tooSlow()
  }

  get coalescing(): number {
    return this.coalesced?.size ?? 0
  }

  dispose(): void {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    this.coalesced = null
  }

  private flush(): void {
    if (!this.coalesced || !this.writable()) return
    if (this.ws.bufferedAmount > this.limits.coalesceBytes / 2) return
    const waiting = [...this.coalesced.values()].sort((a, b) => a.seq - b.seq)
    this.coalesced = null
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    for (const m of waiting) {
      this.ws.send(m.message)
      this.onSent()
    }
  }

  private writable(): boolean {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return false
    if (this.ws.bufferedAmount > this.limits.maxBufferedBytes) {
      this.tooSlow()
      return false
    }
    return true
  }

  private tooSlow(): void {
    if (this.closed) return
    this.dispose()
    this.onTooSlow()
    this.ws.close(CLOSE.TOO_SLOW, 'client is not reading fast enough')
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref()
  }
}
