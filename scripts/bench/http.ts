import http from 'node:http'

export interface Reply {
  status: number
  body: string
}

/** POSTs over a pool of keep-alive connections to the API on 127.0.0.1. */
export class Poster {
  private readonly agent: http.Agent

  constructor(
    private readonly port: number,
    connections: number,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections })
  }

  post(path: string, body: Buffer | string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.port,
          path,
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
          res.on('error', reject)
        },
      )
      req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')))
      req.on('error', reject)
      req.end(body)
    })
  }

  close(): void {
    this.agent.destroy()
  }
}

export interface Acknowledgement {
  accepted: number
  duplicates: number
}

/** The 202 body, or undefined when the answer is anything else. */
export function acknowledgement(reply: Reply): Acknowledgement | undefined {
  if (reply.status !== 202) return undefined
  const body = JSON.parse(reply.body) as Partial<Acknowledgement>
  return { accepted: Number(body.accepted) || 0, duplicates: Number(body.duplicates) || 0 }
}

/** "HTTP 503 LOG_UNAVAILABLE" or the network error: the key errors are counted under. */
export function failureKind(reply: Reply | Error): string {
  if (reply instanceof Error) return `network: ${reply.message}`
  let code = ''
  try {
    code = String((JSON.parse(reply.body) as { code?: unknown }).code ?? '')
  } catch {
    // Not JSON: the status says enough.
  }
  return `HTTP ${reply.status}${code ? ` ${code}` : ''}`
}
