import { randomBytes } from 'node:crypto'
import mqtt, { type MqttClient } from 'mqtt'
import { openDb, committedSoFar } from './commits.js'
import { CpuMeter, type CpuUsage } from './cpu.js'
import { drainTimeoutOf, type Options } from './options.js'
import { openRedis, type Stack } from './stack.js'
import { round, say, sleep, waitUntil } from './util.js'

/** Samples of committed and received counts, for the rates. */
const SAMPLE_EVERY_MS = 250
/** Messages the publishers may be ahead of what the connector has appended: keeps the broker's queue for the session from overflowing (Mosquitto drops past its Receive Maximum window plus max_queued_messages, 1000 by default). */
const AHEAD_LIMIT = 1000
const PROVINCES = 10
const STATIONS = 20

export interface MqttPhase {
  qos: 0 | 1
  published: number
  publishS: number
  publishedPerSec: number
  complete: boolean
  committed: number
  /** First publish to the sample that saw every message committed. */
  allCommittedS: number | null
  /** Messages per second from the first publish to all committed: broker -> connector -> log -> drain -> Postgres. */
  messagesPerSec: number | null
  /** Slope between 10% and 90% committed. */
  steadyCommittedPerSec: number | null
  /** Connector receive rate (status counter) while publishing. */
  receivedPerSec: number
  connector: { messages: number; accepted: number; duplicates: number; rejected: number; appendFailures: number }
  lost: number
  cpu: CpuUsage
}

export interface MqttBenchResult {
  settings: { messages: number; publishers: number; qos: (0 | 1)[]; workers: number; partitions: number; series: number; brokerUrl: string; aheadLimit: number }
  phases: MqttPhase[]
}

/**
 * For each QoS: a subscription created through the API (the workers' supervisors pick it up), N
 * messages published to the real broker by a few clients, each message a unique sample of one of
 * PROVINCES x STATIONS series; timed from the first publish until the drain has committed them all.
 */
export async function runMqtt(stack: Stack, opts: Options, workers: number): Promise<MqttBenchResult> {
  const db = await openDb(stack.databaseUrl)
  const redis = openRedis(stack.redisUrl)
  await redis.connect()
  const phases: MqttPhase[] = []
  try {
    for (const qos of opts.mqttQos) phases.push(await runPhase(stack, opts, qos, db, redis))
  } finally {
    redis.disconnect()
    await db.end().catch(() => undefined)
  }
  return {
    settings: { messages: opts.messages, publishers: opts.publishers, qos: opts.mqttQos, workers, partitions: stack.partitions, series: PROVINCES * STATIONS, brokerUrl: opts.mqttUrl, aheadLimit: AHEAD_LIMIT },
    phases,
  }
}

async function api(stack: Stack, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${stack.baseUrl}${path}`, { method, ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`)
  return text ? (JSON.parse(text) as Record<string, unknown>) : {}
}

async function runPhase(stack: Stack, opts: Options, qos: 0 | 1, db: Awaited<ReturnType<typeof openDb>>, redis: ReturnType<typeof openRedis>): Promise<MqttPhase> {
  const root = `lantern-bench/${stack.tag}/q${qos}-${randomBytes(2).toString('hex')}`
  const sub = await api(stack, 'POST', '/v1/connectors/mqtt', {
    name: `bench qos ${qos}`,
    brokerUrl: opts.mqttUrl,
    topics: [`${root}/+/+`],
    qos,
    sessionExpirySec: 600,
    mapping: { metric: 'bench.mqtt', value: '$.v', ts: '$.t', tsFormat: 'epoch_ms', dims: { province: 'topic[3]', station: 'topic[4]' } },
  })
  const id = String(sub.id)
  const statusKey = `${stack.prefix}:mqtt:status:${id}`
  const counters = async () => {
    const h = await redis.hgetall(statusKey)
    return { connected: h.connected === '1', messages: Number(h.messages ?? 0), accepted: Number(h.accepted ?? 0), duplicates: Number(h.duplicates ?? 0), rejected: Number(h.rejected ?? 0), appendFailures: Number(h.appendFailures ?? 0) }
  }
  if (!(await waitUntil(async () => (await counters()).connected, 30_000))) throw new Error(`the subscription (qos ${qos}) did not connect within 30 s: is a worker running and the broker at ${opts.mqttUrl}?`)
  say(`mqtt qos ${qos}: subscription ${id} connected; publishing ${opts.messages} messages with ${opts.publishers} clients`)

  const clients: MqttClient[] = []
  for (let i = 0; i < opts.publishers; i++) clients.push(await mqtt.connectAsync(opts.mqttUrl, { clientId: `lantern-bench-pub-${stack.tag}-${qos}-${i}`, reconnectPeriod: 0 }))
  const base = (await committedSoFar(db)).events
  const samples: { atMs: number; committed: number; received: number }[] = []
  let received = 0
  let stopSampling = false
  const meter = new CpuMeter([...stack.cpuTargets(), { name: 'mosquitto', comm: 'mosquitto' }])
  const t0 = performance.now()
  const sampler = (async () => {
    for (let next = t0; !stopSampling; next += SAMPLE_EVERY_MS) {
      await sleep(Math.max(0, next - performance.now()))
      const [c, s] = await Promise.all([committedSoFar(db), counters()])
      received = s.messages
      samples.push({ atMs: performance.now() - t0, committed: c.events - base, received })
    }
  })()
  const progress = setInterval(() => {
    const s = samples[samples.length - 1]
    if (s) say(`mqtt qos ${qos}: ${s.received} received by the connector, ${s.committed} committed`)
  }, 2000)

  let published = 0
  let publishS = 0
  let cpu: CpuUsage
  let complete = false
  try {
    const tsBase = Date.now() - 5 * 60_000
    const publishOne = (client: MqttClient, i: number): Promise<unknown> => {
      const p = i % PROVINCES
      const s = Math.floor(i / PROVINCES) % STATIONS
      const payload = `{"t":${tsBase + (i % 240_000)},"v":${(i % 997) / 10},"i":${i}}`
      return client.publishAsync(`${root}/P${p}/S${s}`, payload, { qos })
    }
    // Each client publishes its share in chunks, never more than AHEAD_LIMIT messages ahead of the connector in total.
    let publishing = true
    const follower = (async () => {
      while (publishing) {
        received = Number((await redis.hget(statusKey, 'messages')) ?? 0)
        await sleep(5)
      }
    })()
    let next = 0
    const publisher = async (client: MqttClient): Promise<void> => {
      for (;;) {
        while (next - received >= AHEAD_LIMIT) await sleep(2)
        const from = next
        const to = Math.min(opts.messages, from + 200)
        if (from >= to) return
        next = to
        const pending: Promise<unknown>[] = []
        for (let i = from; i < to; i++) pending.push(publishOne(client, i))
        await Promise.all(pending)
        published += to - from
      }
    }
    await Promise.race([Promise.all(clients.map(publisher)), stack.crashed()]).finally(() => (publishing = false))
    await follower
    publishS = (performance.now() - t0) / 1000
    complete = await Promise.race([waitUntil(() => (samples[samples.length - 1]?.committed ?? 0) >= opts.messages, drainTimeoutOf(opts, 'mqtt') * 1000, SAMPLE_EVERY_MS / 2), stack.crashed()])
    cpu = meter.lap()
  } finally {
    clearInterval(progress)
    stopSampling = true
    await sampler.catch(() => undefined)
    await Promise.all(clients.map((c) => c.endAsync().catch(() => undefined)))
  }
  const final = await counters()
  await api(stack, 'DELETE', `/v1/connectors/mqtt/${id}`).catch(() => undefined)
  const firstAt = (n: number) => samples.find((s) => s.committed >= n)
  const done = firstAt(opts.messages)
  const p10 = firstAt(opts.messages * 0.1)
  const p90 = firstAt(opts.messages * 0.9)
  const atPublishEnd = samples.find((s) => s.atMs / 1000 >= publishS) ?? samples[samples.length - 1]
  const committed = samples[samples.length - 1]?.committed ?? 0
  return {
    qos,
    published,
    publishS: round(publishS, 2),
    publishedPerSec: round(published / publishS),
    complete,
    committed,
    allCommittedS: done ? round(done.atMs / 1000, 2) : null,
    messagesPerSec: done ? round((opts.messages / done.atMs) * 1000) : null,
    steadyCommittedPerSec: p10 && p90 && p90.atMs > p10.atMs ? round(((p90.committed - p10.committed) / (p90.atMs - p10.atMs)) * 1000) : null,
    receivedPerSec: round((atPublishEnd?.received ?? 0) / publishS),
    connector: { messages: final.messages, accepted: final.accepted, duplicates: final.duplicates, rejected: final.rejected, appendFailures: final.appendFailures },
    lost: Math.max(0, published - final.accepted),
    cpu,
  }
}
