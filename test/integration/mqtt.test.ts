import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import mqtt, { type MqttClient } from 'mqtt'
import type { FastifyInstance } from 'fastify'
import { startTestApp } from '../helpers/context.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'
import { startMqttConnectors } from '../../workers/mqtt.worker.js'
import { makeRedis } from '../../src/infra/redis.js'
import type { Runtime } from '../../src/infra/runtime.js'

/**
 * Against a real MQTT broker (MQTT_URL, default the local Mosquitto on 1883; `npm test` starts one
 * where none answers). Every run uses topics under a prefix of its own and short broker sessions.
 */
const MQTT_URL = process.env.MQTT_URL || 'mqtt://127.0.0.1:1883'
const RUN = `lantern-test/${randomBytes(4).toString('hex')}`
const MIN = 60_000
const T0 = Math.floor((Date.now() - 20 * MIN) / MIN) * MIN
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

async function publisher(t: { teardown(fn: () => unknown): void }): Promise<MqttClient> {
  let client: MqttClient
  try {
    client = await mqtt.connectAsync(MQTT_URL, { clientId: `lantern-test-pub-${randomBytes(4).toString('hex')}`, reconnectPeriod: 0, connectTimeout: 5000 })
  } catch (err) {
    throw new Error(`no MQTT broker answers at ${MQTT_URL} (${(err as Error).message}); start Mosquitto or set MQTT_URL (npm test starts one)`)
  }
  t.teardown(() => client.endAsync())
  return client
}

interface Status {
  running: boolean
  connected: boolean
  messages: number
  accepted: number
  duplicates: number
  rejected: number
  appendFailures: number
  lastError: { message: string } | null
  lastRejected: { topic: string; reason: string; payload: string } | null
  lastMessageAt: string | null
}

async function status(app: FastifyInstance, id: string): Promise<Status> {
  const res = await app.inject({ url: `/v1/connectors/mqtt/${id}` })
  if (res.statusCode !== 200) throw new Error(`GET subscription ${id}: ${res.statusCode} ${res.body}`)
  return res.json().status as Status
}

async function createSubscription(app: FastifyInstance, body: Record<string, unknown>): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/v1/connectors/mqtt', payload: { brokerUrl: MQTT_URL, sessionExpirySec: 300, ...body } })
  if (res.statusCode !== 201) throw new Error(`POST subscription: ${res.statusCode} ${res.body}`)
  return res.json().id as string
}

/** Deletes the subscription and waits for its connector to end the broker session. */
async function removeSubscription(app: FastifyInstance, id: string, runningIds: () => string[]): Promise<void> {
  await app.inject({ method: 'DELETE', url: `/v1/connectors/mqtt/${id}` })
  await waitFor('the connector to stop', async () => !runningIds().includes(id))
}

/** Drains until the metric's 1m buckets hold `count` events (or the wait ends) and returns them. */
async function bucketsOf(app: FastifyInstance, worker: Runtime, metric: string, count: number, groupBy = 'station', timeoutMs = 20_000) {
  const drainers = makeDrainers(worker)
  const read = async () => {
    const res = await app.inject({ url: `/v1/aggregates?metric=${metric}&window=1m&from=${T0 - 60 * MIN}&to=${T0 + 60 * MIN}&group_by=${groupBy}` })
    return res.json().groups as { key: Record<string, string>; buckets: { start: string; count: number; sum: number; min: number; max: number }[] }[]
  }
  const total = (gs: Awaited<ReturnType<typeof read>>) => gs.reduce((a, g) => a + g.buckets.reduce((b, x) => b + x.count, 0), 0)
  let groups = await read()
  const deadline = Date.now() + timeoutMs
  while (total(groups) < count && Date.now() < deadline) {
    await drainAll(drainers)
    groups = await read()
    if (total(groups) < count) await sleep(100)
  }
  // One more pass: anything beyond `count` (a double count) would show now.
  await sleep(300)
  await drainAll(drainers)
  return read()
}

t.test('subscriptions with + and # filters map messages to exact buckets; a bad payload is counted and shown, never fatal', async (t) => {
  const { app, worker } = await startTestApp(t)
  const prefix = `${RUN}/a`
  // Validation at creation names what is wrong.
  const bad = await app.inject({
    method: 'POST',
    url: '/v1/connectors/mqtt',
    payload: { name: 'x', brokerUrl: MQTT_URL, topics: [`${prefix}/+/x#`], mapping: { metric: 'm', value: '$.v', dims: { s: 'topic[9]' } } },
  })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, /topics\[0\] ".*" "#" must be a whole level/)
  const badMapping = await app.inject({
    method: 'POST',
    url: '/v1/connectors/mqtt',
    payload: { name: 'x', brokerUrl: MQTT_URL, topics: [`${prefix}/env/+/+/air`], mapping: { metric: 'm', value: '$.v', dims: { s: 'topic[9]' }, tsFormat: 'iso' } },
  })
  t.equal(badMapping.statusCode, 400)
  t.equal(
    badMapping.json().message,
    `invalid mapping: mapping.tsFormat: is given without "ts"; mapping.dims.s: topic[9] is past the last level of topic filter(s) "${prefix}/env/+/+/air" (levels count from 0)`,
  )
  t.equal((await app.inject({ method: 'POST', url: '/v1/connectors/mqtt', payload: { name: 'x', brokerUrl: 'http://x', topics: ['a'], mapping: { metric: 'm', value: 1 } } })).statusCode, 400)

  const id = await createSubscription(app, {
    name: 'air stations',
    topics: [`${prefix}/env/+/+/air`, `${prefix}/bulk/#`],
    qos: 1,
    source: 'hue-mqtt',
    mapping: { metric: '$.metric', value: '$.reading.value', ts: '$.ts', tsFormat: 'epoch_ms', dims: { province: 'topic[4]', station: 'topic[5]' } },
  })
  const connectors = startMqttConnectors(worker, { pollMs: 200 })
  t.teardown(() => connectors.close())
  await waitFor('the connector to connect', async () => (await status(app, id)).connected)

  const pub = await publisher(t)
  // 3 stations x 100 samples over 5 minutes, through both filters; one topic that matches neither.
  const expected = new Map<string, number[]>()
  for (let i = 0; i < 300; i++) {
    const station = `S${i % 3}`
    const ts = T0 + Math.floor(i / 60) * MIN + (i % 60) * 1000
    const value = Math.round(((i * 37) % 101) * 10) / 10
    const topic = i % 2 === 0 ? `${prefix}/env/46/${station}/air` : `${prefix}/bulk/46/${station}/extra/levels`
    await pub.publishAsync(topic, JSON.stringify({ metric: 'air.pm25', ts, reading: { value } }), { qos: 1 })
    const k = `${station}|${Math.floor(ts / MIN) * MIN}`
    expected.set(k, [...(expected.get(k) ?? []), value])
  }
  await pub.publishAsync(`${prefix}/other/46/S0/air`, JSON.stringify({ metric: 'air.pm25', ts: T0, reading: { value: 1000 } }), { qos: 1 })
  await waitFor('300 messages', async () => (await status(app, id)).messages >= 300)

  const groups = await bucketsOf(app, worker, 'air.pm25', 300)
  let checked = 0
  for (const g of groups) {
    for (const b of g.buckets) {
      const xs = expected.get(`${g.key.station}|${Date.parse(b.start)}`) ?? []
      t.same(
        { count: b.count, sum: Math.round(b.sum * 10) / 10, min: b.min, max: b.max },
        { count: xs.length, sum: Math.round(xs.reduce((a, x) => a + x, 0) * 10) / 10, min: Math.min(...xs), max: Math.max(...xs) },
        `station ${g.key.station} bucket ${b.start}`,
      )
      checked++
    }
  }
  t.equal(checked, expected.size, 'every expected bucket, no other')
  const s1 = await status(app, id)
  t.match(s1, { running: true, connected: true, messages: 300, accepted: 300, duplicates: 0, rejected: 0 })
  t.ok(s1.lastMessageAt)

  // Bad payloads: counted with the last reason; the connector keeps going. A repeated message is a duplicate.
  await pub.publishAsync(`${prefix}/env/46/S0/air`, 'not json', { qos: 1 })
  await pub.publishAsync(`${prefix}/env/46/S0/air`, JSON.stringify({ metric: 'air.pm25', ts: T0, reading: { value: 'high' } }), { qos: 1 })
  const good = JSON.stringify({ metric: 'air.pm25', ts: T0 + 30 * MIN, reading: { value: 7 } })
  await pub.publishAsync(`${prefix}/env/46/S9/air`, good, { qos: 0 })
  await pub.publishAsync(`${prefix}/env/46/S9/air`, good, { qos: 1 })
  const s2 = await waitFor('the bad payloads and the good message', async () => {
    const s = await status(app, id)
    return s.messages >= 304 ? s : undefined
  })
  t.match(s2, { connected: true, messages: 304, accepted: 301, duplicates: 1, rejected: 2 })
  t.match(s2.lastRejected, { topic: `${prefix}/env/46/S0/air`, reason: 'value: $.reading.value is "high", not a number' })
  const after = await bucketsOf(app, worker, 'air.pm25', 301)
  const s9 = after.find((g) => g.key.station === 'S9')
  t.same(s9?.buckets.map((b) => b.count), [1], 'the good message after the bad ones counts once')

  const list = await app.inject({ url: '/v1/connectors/mqtt' })
  t.match(list.json().subscriptions, [{ id, name: 'air stations', qos: 1, source: 'hue-mqtt', redeliveryDeduped: true, hasPassword: false, status: { connected: true } }])
  await removeSubscription(app, id, () => connectors.supervisor.runningIds())
  t.equal((await app.inject({ url: `/v1/connectors/mqtt/${id}` })).statusCode, 404)
})

t.test('restart: QoS 1 messages published while the connector is stopped, restarting or killed are each counted once', async (t) => {
  const { app, worker, te } = await startTestApp(t)
  const prefix = `${RUN}/r`
  const id = await createSubscription(app, {
    name: 'restart',
    topics: [`${prefix}/+`],
    qos: 1,
    mapping: { metric: 'river.level', value: '$.v', ts: '$.t', dims: { station: 'topic[3]' } },
  })
  let connectors = startMqttConnectors(worker, { pollMs: 200 })
  t.teardown(() => connectors.close())
  await waitFor('the connector to connect', async () => (await status(app, id)).connected)
  const pub = await publisher(t)
  let n = 0
  let sum = 0
  const publish = async (): Promise<void> => {
    const i = n++
    const v = i + 1
    sum += v
    await pub.publishAsync(`${prefix}/R${i % 4}`, JSON.stringify({ t: T0 + (i % 600) * 1000, v }), { qos: 1 })
  }
  const publishFor = async (count: number, gapMs: number): Promise<void> => {
    for (let i = 0; i < count; i++) {
      await publish()
      if (gapMs > 0) await sleep(gapMs)
    }
  }

  // 1. A graceful restart in the middle of a stream of messages.
  const stream1 = publishFor(300, 2)
  await sleep(150)
  await connectors.close()
  await sleep(200)
  connectors = startMqttConnectors(worker, { pollMs: 200 })
  await stream1
  // 2. Stopped while messages are published: the broker keeps them for the session.
  await connectors.close()
  await publishFor(100, 0)
  connectors = startMqttConnectors(worker, { pollMs: 200 })
  await waitFor('the connector to catch up', async () => (await status(app, id)).accepted >= n, 20_000)
  await connectors.close()

  // 3. The process is killed (SIGKILL) in the middle of the stream; a new one takes over.
  const script = fileURLToPath(new URL('../helpers/mqtt-connector-process.ts', import.meta.url))
  const children: ChildProcess[] = []
  const startChild = async (): Promise<ChildProcess> => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...te.env, MQTT_TEST_LOCK_TTL_MS: '1500' }, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve())
      child.once('exit', (code) => reject(new Error(`connector process exited with ${code}`)))
    })
    return child
  }
  const alive = (c: ChildProcess): boolean => c.exitCode === null && c.signalCode === null
  t.teardown(() => children.forEach((c) => alive(c) && c.kill('SIGKILL')))
  const first = await startChild()
  await waitFor('the child to own the subscription', async () => (await status(app, id)).connected)
  const before = (await status(app, id)).accepted
  const stream2 = publishFor(400, 2)
  await waitFor('the child to take messages', async () => (await status(app, id)).accepted > before + 50)
  first.kill('SIGKILL')
  await new Promise((r) => first.once('exit', r))
  await startChild()
  await stream2
  // Counted from the log, not the status counters: a batch appended just before the kill is in the
  // log but not in the counters, and its redelivery then counts as duplicates.
  const groups = await bucketsOf(app, worker, 'river.level', n, 'station', 40_000)
  const count = groups.reduce((a, g) => a + g.buckets.reduce((b, x) => b + x.count, 0), 0)
  const total = groups.reduce((a, g) => a + g.buckets.reduce((b, x) => b + x.sum, 0), 0)
  t.equal(count, n, `all ${n} messages counted exactly once`)
  t.equal(total, sum, 'with their values')
  const s = await status(app, id)
  t.ok(s.accepted + s.duplicates >= n && s.accepted <= n, `each message appended once (${s.accepted} accepted, ${s.duplicates} duplicates by the counters)`)
  t.equal(s.rejected, 0)
  t.comment(`redelivered after the restarts and absorbed as duplicates: ${s.duplicates}`)
  const exits = children.filter(alive).map((c) => new Promise((r) => c.once('exit', r)))
  for (const c of children) if (alive(c)) c.kill('SIGTERM')
  await Promise.all(exits)
  connectors = startMqttConnectors(worker, { pollMs: 200 })
  await removeSubscription(app, id, () => connectors.supervisor.runningIds())
})

t.test('a message whose append fails (Redis unreachable) is not acknowledged: the broker redelivers it later', async (t) => {
  const { app, worker } = await startTestApp(t)
  const prefix = `${RUN}/f`
  const id = await createSubscription(app, {
    name: 'append fails',
    topics: [`${prefix}/#`],
    qos: 1,
    mapping: { metric: 'power.load', value: '$', dims: { feeder: 'topic[3]' }, id: '{topic[3]}-{topic[4]}' },
  })
  const unreachable = makeRedis('redis://127.0.0.1:1', { failFast: true }, 'lantern-test-unreachable')
  unreachable.connect().catch(() => undefined)
  t.teardown(() => unreachable.disconnect())
  let connectors = startMqttConnectors(worker, { pollMs: 200, logRedis: unreachable })
  t.teardown(() => connectors.close())
  await waitFor('the connector to connect', async () => (await status(app, id)).connected)
  const pub = await publisher(t)
  for (let i = 0; i < 5; i++) await pub.publishAsync(`${prefix}/F1/${i}`, String(10 + i), { qos: 1 })
  const failed = await waitFor('the append to fail', async () => {
    const s = await status(app, id)
    return s.appendFailures > 0 ? s : undefined
  })
  t.match(failed.lastError?.message, /^appending to the log failed, \d+ messages not acknowledged/)
  t.equal(failed.accepted, 0)
  t.equal(await drainAll(makeDrainers(worker)), 0, 'nothing reached the log')

  // With the log back, the broker redelivers what was never acknowledged: each message once.
  await connectors.close()
  connectors = startMqttConnectors(worker, { pollMs: 200 })
  await waitFor('the redelivered messages', async () => (await status(app, id)).accepted >= 5)
  const groups = await bucketsOf(app, worker, 'power.load', 5, 'feeder')
  t.same(
    groups.map((g) => ({ feeder: g.key.feeder, count: g.buckets.reduce((a, b) => a + b.count, 0), sum: g.buckets.reduce((a, b) => a + b.sum, 0) })),
    [{ feeder: 'F1', count: 5, sum: 10 + 11 + 12 + 13 + 14 }],
  )

  // Appended, then lost before the PUBACK (as a crash in between would): redelivered and absorbed as duplicates.
  await connectors.close()
  let failOnce = true
  connectors = startMqttConnectors(worker, {
    pollMs: 200,
    wrapAppend: (append) => async (events, at) => {
      const r = await append(events, at)
      if (failOnce) {
        failOnce = false
        throw new Error('lost after the append')
      }
      return r
    },
  })
  await waitFor('the connector to connect', async () => (await status(app, id)).connected)
  const dupsBefore = (await status(app, id)).duplicates
  for (let i = 0; i < 3; i++) await pub.publishAsync(`${prefix}/F2/${i}`, String(100 + i), { qos: 1 })
  const s = await waitFor('the redelivery', async () => {
    const x = await status(app, id)
    return x.duplicates > dupsBefore ? x : undefined
  })
  t.ok(s.appendFailures >= 2)
  const again = await bucketsOf(app, worker, 'power.load', 8, 'feeder')
  t.same(
    again.map((g) => ({ feeder: g.key.feeder, count: g.buckets.reduce((a, b) => a + b.count, 0), sum: g.buckets.reduce((a, b) => a + b.sum, 0) })),
    [
      { feeder: 'F1', count: 5, sum: 60 },
      { feeder: 'F2', count: 3, sum: 303 },
    ],
    'the redelivered messages are counted once',
  )
  await removeSubscription(app, id, () => connectors.supervisor.runningIds())
})
