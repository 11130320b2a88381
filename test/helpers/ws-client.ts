import { WebSocket } from 'ws'

export interface Msg {
  type?: string
  seq?: number
  topic?: string
  bucket?: { start: string; count: number; sum: number }
  buckets?: { start: string; count: number }[]
  code?: string
  [k: string]: unknown
}

/** A socket client that queues every message and lets the test wait for the next matching one. */
export class Client {
  readonly messages: Msg[] = []
  private waiters: { match: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = []
  readonly ws: WebSocket
  constructor(url: string) {
    this.ws = new WebSocket(url)
    this.ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as Msg
      this.messages.push(m)
      this.waiters = this.waiters.filter((w) => (w.match(m) ? (w.resolve(m), false) : true))
    })
  }
  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.ws.readyState === WebSocket.OPEN) return resolve()
      this.ws.once('open', () => resolve())
      this.ws.once('error', reject)
    })
  }
  send(m: object): void {
    this.ws.send(JSON.stringify(m))
  }
  next(match: (m: Msg) => boolean, timeoutMs = 5000): Promise<Msg> {
    const seen = this.messages.find(match)
    if (seen) {
      this.messages.splice(this.messages.indexOf(seen), 1)
      return Promise.resolve(seen)
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching message in time')), timeoutMs)
      this.waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer)
          this.messages.splice(this.messages.indexOf(m), 1)
          resolve(m)
        },
      })
    })
  }
}
