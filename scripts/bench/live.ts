import { WebSocket } from 'ws'

/**
 * Per topic (a province, or any other grouping of the posted events) and bucket, the cumulative
 * number of events posted after each batch and when that batch was posted. A delta whose bucket count is c shows every event of the earliest
 * batch at which the cumulative count reached c, so its latency is measured from that batch's post.
 */
export class PostedCounts {
  private readonly buckets = new Map<string, { cumulative: number[]; postedAtMs: number[] }>()

  private static key(topic: string, startMs: number): string {
    return `${topic}|${startMs}`
  }

  add(topic: string, startMs: number, events: number, postedAtMs: number): void {
    const key = PostedCounts.key(topic, startMs)
    let b = this.buckets.get(key)
    if (!b) this.buckets.set(key, (b = { cumulative: [], postedAtMs: [] }))
    b.cumulative.push((b.cumulative[b.cumulative.length - 1] ?? 0) + events)
    b.postedAtMs.push(postedAtMs)
  }

  /** Post time of the earliest batch after which `count` events had been posted; undefined if more than were ever posted. */
  postedAt(topic: string, startMs: number, count: number): number | undefined {
    const b = this.buckets.get(PostedCounts.key(topic, startMs))
    if (!b) return undefined
    let lo = 0
    let hi = b.cumulative.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((b.cumulative[mid] as number) >= count) hi = mid
      else lo = mid + 1
    }
    return b.postedAtMs[lo]
  }

  /** Final count of every bucket of a topic: what the last delta of each should show. */
  finals(topic: string): Map<number, number> {
    const out = new Map<number, number>()
    for (const [key, b] of this.buckets) {
      const [t, start] = key.split('|')
      if (t === topic) out.set(Number(start), b.cumulative[b.cumulative.length - 1] ?? 0)
    }
    return out
  }
}

export interface Delta {
  province: string
  startMs: number
  count: number
  receivedMs: number
}

interface Message {
  type?: string
  topic?: string
  bucket?: { start?: string; count?: number }
  buckets?: unknown[]
  code?: string
  message?: string
}

/**
 * One live socket watching one province's 1m aggregate topic: answers heartbeats, hands every
 * delta to onDelta with its arrival time, and remembers the highest count seen per bucket.
 */
export class Subscriber {
  readonly seen = new Map<number, number>()
  readonly problems: string[] = []
  deltas = 0
  snapshotBuckets = 0
  private readonly ws: WebSocket
  private closing = false
  private readonly snapshot: Promise<void>

  constructor(
    url: string,
    readonly province: string,
    metric: string,
    private readonly onDelta: (d: Delta) => void,
  ) {
    this.ws = new WebSocket(url)
    this.snapshot = new Promise((resolve, reject) => {
      this.ws.on('message', (data) => {
        const receivedMs = performance.now()
        const m = JSON.parse(data.toString()) as Message
        if (m.type === 'snapshot') {
          this.snapshotBuckets = m.buckets?.length ?? 0
          resolve()
        } else this.onMessage(m, receivedMs, metric)
      })
      this.ws.once('error', reject)
      this.ws.once('close', (code) => reject(new Error(`socket closed before its snapshot (code ${code})`)))
    })
    this.ws.on('close', (code, reason) => {
      if (!this.closing) this.problems.push(`socket closed by the server: ${code} ${reason.toString()}`)
    })
    this.ws.on('error', (err) => this.problems.push(`socket error: ${err.message}`))
  }

  /** Resolves once subscribed and the snapshot has arrived. */
  ready(timeoutMs: number): Promise<void> {
    return Promise.race([
      this.snapshot,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no snapshot within ${timeoutMs} ms`)), timeoutMs).unref()),
    ])
  }

  close(): void {
    this.closing = true
    this.ws.close()
  }

  private onMessage(m: Message, receivedMs: number, metric: string): void {
    switch (m.type) {
      case 'hello':
        return this.send({ type: 'subscribe', id: `p${this.province}`, topic: { kind: 'aggregate', metric, window: '1m', dims: { province: this.province } } })
      case 'ping':
        return this.send({ type: 'pong' })
      case 'delta':
        return this.onDeltaMessage(m, receivedMs)
      case 'error':
      case 'reset':
        this.problems.push(`${m.type}: ${m.code ?? ''} ${m.message ?? ''}`.trim())
        return
    }
  }

  private onDeltaMessage(m: Message, receivedMs: number): void {
    const startMs = Date.parse(m.bucket?.start ?? '')
    const count = m.bucket?.count
    if (!Number.isFinite(startMs) || typeof count !== 'number') {
      this.problems.push('delta without bucket start or count')
      return
    }
    this.deltas++
    if (count > (this.seen.get(startMs) ?? 0)) this.seen.set(startMs, count)
    this.onDelta({ province: this.province, startMs, count, receivedMs })
  }

  private send(m: object): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m))
  }
}
