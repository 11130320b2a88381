import { readFileSync } from 'node:fs'
import { io, type Socket } from 'socket.io-client'
import { WebSocket } from 'ws'
import { LatencyRecorder, Tally } from './stats.js'
import { errorMessage } from './util.js'

/** Problems kept verbatim per round; the rest are only counted. */
const PROBLEMS_KEPT = 10

/**
 * What the subscribers of one round received, on either system: deliveries in the measured
 * window, the distinct deltas (topic, seq) they saw, latencies, and how sockets ended.
 */
export class Accounting {
  readonly latency = new LatencyRecorder()
  readonly closes = new Tally()
  readonly problems: string[] = []
  problemCount = 0
  delivered = 0
  deliveredTotal = 0
  unmatched = 0
  bytes = 0
  private readonly firstSeen: Map<number, number>[]

  constructor(
    topics: number,
    private readonly window: { fromMs: number; toMs: number },
  ) {
    this.firstSeen = Array.from({ length: topics }, () => new Map<number, number>())
  }

  /** One message received; sentAtMs is when the bench sent what produced it (undefined: not matched). */
  onDelivery(topic: number, seq: number, receivedMs: number, bytes: number, sentAtMs: number | undefined): void {
    this.deliveredTotal++
    this.bytes += bytes
    const seen = this.firstSeen[topic]
    if (seen && !seen.has(seq)) seen.set(seq, receivedMs)
    if (receivedMs >= this.window.fromMs && receivedMs <= this.window.toMs) this.delivered++
    if (sentAtMs === undefined) {
      this.unmatched++
      return
    }
    if (sentAtMs >= this.window.fromMs && sentAtMs <= this.window.toMs) this.latency.record(receivedMs - sentAtMs)
  }

  onClose(how: string): void {
    this.closes.add(how)
  }

  problem(message: string): void {
    this.problemCount++
    if (this.problems.length < PROBLEMS_KEPT) this.problems.push(message)
  }

  /** Distinct deltas of each topic seen at all, warm-up and settling included. */
  distinctPerTopic(): number[] {
    return this.firstSeen.map((m) => m.size)
  }

  /** Distinct deltas of each topic first seen inside the window. */
  publishedInWindow(): number[] {
    return this.firstSeen.map((m) => {
      let n = 0
      for (const at of m.values()) if (at >= this.window.fromMs && at <= this.window.toMs) n++
      return n
    })
  }
}

export interface FanoutSocket {
  readonly topic: number
  ready(timeoutMs: number): Promise<void>
  close(): void
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

interface LiveMessage {
  type?: string
  seq?: number
  bucket?: { start?: string; count?: number }
  code?: string
  message?: string
}

/**
 * One Lantern live socket on one aggregate topic. Parses every message, as a screen would;
 * answers heartbeats; remembers the newest bucket and its highest count.
 */
export class LanternSocket implements FanoutSocket {
  newestStart = 0
  newestCount = 0
  private readonly ws: WebSocket
  private closing = false
  private readonly snapshot: Promise<void>

  constructor(
    url: string,
    readonly topic: number,
    spec: object,
    private readonly sink: { acct: Accounting | undefined; sentAt: (topic: number, startMs: number, count: number) => number | undefined },
  ) {
    this.ws = new WebSocket(url, { perMessageDeflate: false })
    this.snapshot = new Promise((resolve, reject) => {
      this.ws.on('message', (data: Buffer) => {
        const receivedMs = performance.now()
        const m = JSON.parse(data.toString()) as LiveMessage
        switch (m.type) {
          case 'delta':
            return this.onDelta(m, receivedMs, data.length)
          case 'hello':
            return this.send({ type: 'subscribe', id: `t${topic}`, topic: spec, buckets: 2 })
          case 'snapshot':
            return resolve()
          case 'ping':
            return this.send({ type: 'pong' })
          case 'error':
          case 'reset':
            this.sink.acct?.problem(`${m.type}: ${m.code ?? ''} ${m.message ?? ''}`.trim())
            if (m.type === 'error') reject(new Error(`${m.code}: ${m.message}`))
        }
      })
      this.ws.once('error', reject)
      this.ws.once('close', (code) => reject(new Error(`socket closed before its snapshot (code ${code})`)))
    })
    this.snapshot.catch(() => undefined)
    this.ws.on('close', (code, reason) => {
      if (!this.closing) this.sink.acct?.onClose(`close ${code}${reason.length > 0 ? ` ${reason.toString()}` : ''}`)
    })
    this.ws.on('error', (err) => this.sink.acct?.problem(`socket error: ${err.message}`))
  }

  ready(timeoutMs: number): Promise<void> {
    return withTimeout(this.snapshot, timeoutMs, 'no snapshot')
  }

  close(): void {
    this.closing = true
    this.ws.close()
  }

  private onDelta(m: LiveMessage, receivedMs: number, bytes: number): void {
    const startMs = Date.parse(m.bucket?.start ?? '')
    const count = m.bucket?.count
    if (!Number.isFinite(startMs) || typeof count !== 'number' || typeof m.seq !== 'number') {
      this.sink.acct?.problem('delta without seq, bucket start or count')
      return
    }
    if (startMs > this.newestStart) {
      this.newestStart = startMs
      this.newestCount = count
    } else if (startMs === this.newestStart && count > this.newestCount) this.newestCount = count
    this.sink.acct?.onDelivery(this.topic, m.seq, receivedMs, bytes, this.sink.sentAt(this.topic, startMs, count))
  }

  private send(m: object): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m))
  }
}

/** What the bench publishes through the Socket.IO peer: its sequence, send time and padding to the Lantern delta size. */
export interface PeerPayload {
  seq: number
  room: number
  t: number
  pad: string
}

/** One socket.io-client in a room. */
export class SocketIoSocket implements FanoutSocket {
  lastSeq = 0
  private readonly socket: Socket
  private closing = false
  private readonly connected: Promise<void>

  constructor(
    url: string,
    readonly topic: number,
    private readonly sink: { acct: Accounting | undefined; bytesOf: (p: PeerPayload) => number },
  ) {
    this.socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, timeout: 60_000, query: { room: `r${topic}` } })
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve())
      this.socket.once('connect_error', (err) => reject(new Error(`connect_error: ${errorMessage(err)}`)))
    })
    this.connected.catch(() => undefined)
    this.socket.on('delta', (p: PeerPayload) => {
      const receivedMs = performance.now()
      if (p.seq > this.lastSeq) this.lastSeq = p.seq
      this.sink.acct?.onDelivery(this.topic, p.seq, receivedMs, this.sink.bytesOf(p), p.t)
    })
    this.socket.on('disconnect', (reason) => {
      if (!this.closing) this.sink.acct?.onClose(`disconnect: ${reason}`)
    })
  }

  ready(timeoutMs: number): Promise<void> {
    return withTimeout(this.connected, timeoutMs, 'not connected')
  }

  emit(event: string, ...args: unknown[]): void {
    this.socket.emit(event, ...args)
  }

  close(): void {
    this.closing = true
    this.socket.disconnect()
  }
}

/**
 * Opens n sockets, at most `concurrency` handshakes at a time (a burst of thousands would
 * overflow the listen backlog and time the kernel's SYN retries instead of the server).
 */
export async function connectAll<S extends FanoutSocket>(
  n: number,
  concurrency: number,
  timeoutMs: number,
  make: (i: number) => S,
): Promise<{ sockets: S[]; failures: Tally }> {
  const sockets: S[] = []
  const failures = new Tally()
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < n) {
      const s = make(next++)
      try {
        await s.ready(timeoutMs)
        sockets.push(s)
      } catch (err) {
        failures.add(errorMessage(err).slice(0, 120))
        s.close()
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, lane))
  return { sockets, failures }
}

/** Resident memory of a process in MiB, from /proc; null when unreadable (gone, or not Linux). */
export function rssMiB(pid: number | undefined): number | null {
  if (pid === undefined) return null
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : null
  } catch {
    return null
  }
}

/** Samples a process's RSS on a timer and keeps the peak. */
export class RssSampler {
  peak: number | null
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly pid: number | undefined,
    everyMs = 250,
  ) {
    this.peak = rssMiB(pid)
    this.timer = setInterval(() => this.sample(), everyMs)
  }

  sample(): number | null {
    const v = rssMiB(this.pid)
    if (v !== null && (this.peak === null || v > this.peak)) this.peak = v
    return v
  }

  stop(): number | null {
    clearInterval(this.timer)
    return this.sample()
  }
}

/** Soft limit on open files of this process (the children inherit it); null when unknown. */
export function openFilesLimit(): number | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    if (!m) return null
    return m[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(m[1])
  } catch {
    return null
  }
}
