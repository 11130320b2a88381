import t from 'tap'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { sql } from 'kysely'
import { FormatRegistry } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { startTestApp, type TestApp } from '../helpers/context.js'
import type { Runtime } from '../../src/infra/runtime.js'
import { AlertDispatcher, webhookQueue } from '../../src/services/alert-dispatch.js'
import { AlertEvent, type AlertStatus } from '../../src/schemas/alert-event.js'
import { startWebhookWorker } from '../../workers/webhook.worker.js'

const MAX_ATTEMPTS = 4
const SETTINGS = { LANTERN_PARTITIONS: '1', LANTERN_WEBHOOK_BACKOFF_MS: '50', LANTERN_WEBHOOK_MAX_ATTEMPTS: String(MAX_ATTEMPTS), LANTERN_WEBHOOK_TIMEOUT_MS: '2000' }
// Value.Check knows no formats by itself; the API's ajv checks date-time the same way.
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (v) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(v) && !Number.isNaN(Date.parse(v)))
const T0 = Date.parse('2026-11-22T08:00:00Z')
/** A subtest (the last overload of t.test takes only the callback). */
type Test = Parameters<Parameters<typeof t.test>[0]>[0]
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls until `fn` gives something (an empty array counts as nothing yet). */
async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v && (!Array.isArray(v) || v.length > 0)) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}

/** Verifies X-Lantern-Signature the way docs/alert-delivery.md tells receivers to. */
function verify(secret: string, header: string, body: string, toleranceS = 300): boolean {
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=') as [string, string]))
  const ts = Number(parts.t)
  if (!parts.v1 || !Number.isInteger(ts) || Math.abs(Date.now() / 1000 - ts) > toleranceS) return false
  const expected = createHmac('sha256', secret).update(`${parts.t}.${body}`).digest()
  const given = Buffer.from(parts.v1, 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected)
}

interface Hit {
  headers: IncomingHttpHeaders
  body: string
  status: number
}

/** A real HTTP receiver on loopback; `answer` picks each request's status. Handles each Idempotency-Key once. */
async function receiver(t: Test, answer: (event: AlertEvent, hitsForKey: number) => number) {
  const hits: Hit[] = []
  const handled: AlertEvent[] = []
  const perKey = new Map<string, number>()
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => (body += c))
    req.on('end', () => {
      const key = String(req.headers['idempotency-key'])
      const n = (perKey.get(key) ?? 0) + 1
      perKey.set(key, n)
      const event = JSON.parse(body) as AlertEvent
      const status = answer(event, n)
      hits.push({ headers: req.headers, body, status })
      if (status >= 200 && status < 300 && !handled.some((h) => h.id === key)) handled.push(event)
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status >= 300 ? 'receiver is down' : 'ok')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, hits, handled }
}

/** Seeds what the drainer would have written: a series, a rule, an open alert; `change` adds outbox rows. */
async function fixtures(rt: Runtime) {
  const { rows: rules } = await sql<{ id: number }>`
    INSERT INTO alert_rules (name, kind, metric, dims, aggregate, window_s, op, value, for_s, severity, labels, enabled)
    VALUES ('PM2.5 high', 'threshold', 'air.pm25', '{}', 'mean', 300, '>', 50, 120, 'critical', '{"team":"env"}', true) RETURNING id`.execute(rt.db)
  const ruleId = rules[0]!.id
  const series = new Map<string, { seriesId: number; alertId: number }>()
  const seriesOf = async (station: string) => {
    let s = series.get(station)
    if (s) return s
    const at = new Date(T0).toISOString()
    const { rows } = await sql<{ id: number }>`
      INSERT INTO series (key, metric, dims, partition, first_ts, last_ts)
      VALUES (${`air.pm25|station=${station}`}, 'air.pm25', ${JSON.stringify({ station })}::jsonb, 0, ${at}::timestamptz, ${at}::timestamptz) RETURNING id`.execute(rt.db)
    const seriesId = rows[0]!.id
    const { rows: alerts } = await sql<{ id: number }>`
      INSERT INTO alerts (rule_id, series_id, status, severity, pending_at, value, cause)
      VALUES (${ruleId}, ${seriesId}, 'firing', 'critical', ${at}::timestamptz, 61.5, '{}') RETURNING id`.execute(rt.db)
    s = { seriesId, alertId: alerts[0]!.id }
    series.set(station, s)
    return s
  }
  let n = 0
  const change = async (station: string, status: AlertStatus): Promise<string> => {
    const { seriesId, alertId } = await seriesOf(station)
    const at = new Date(T0 + ++n * 60_000).toISOString()
    const payload: Omit<AlertEvent, 'id'> = {
      alertId: String(alertId),
      status,
      at,
      rule: { id: String(ruleId), name: 'PM2.5 high', kind: 'threshold', severity: 'critical', labels: { team: 'env' } },
      series: { id: String(seriesId), key: `air.pm25|station=${station}`, metric: 'air.pm25', dims: { station } },
      condition: { aggregate: 'mean', window: 300, op: '>', value: 50, for: 120 },
      value: 61.5,
      pendingAt: new Date(T0).toISOString(),
      firingAt: status === 'pending' ? null : at,
      resolvedAt: status === 'resolved' ? at : null,
      samples: [{ ts: at, value: 61.5, eventId: `gw7-${n}` }],
    }
    const { rows } = await sql<{ id: number }>`
      INSERT INTO alert_events (alert_id, series_id, status, payload) VALUES (${alertId}, ${seriesId}, ${status}, ${JSON.stringify(payload)}::jsonb) RETURNING id`.execute(rt.db)
    return String(rows[0]!.id)
  }
  return { ruleId, change }
}

/** The app, a webhook worker (deliveries and the sweeper) on the worker runtime, and a dispatcher like the drainer's. */
async function setup(t: Test, overrides: Record<string, string> = {}) {
  const sys: TestApp = await startTestApp(t, { ...SETTINGS, ...overrides })
  const connection = new Redis(sys.te.config.redisUrl, { maxRetriesPerRequest: null })
  const queue = webhookQueue(sys.worker, connection)
  const makeDispatcher = () => new AlertDispatcher({ db: sys.worker.db, redis: sys.worker.redis, keys: sys.worker.keys, log: sys.worker.log, config: sys.worker.config, queue })
  const webhooks = startWebhookWorker(sys.worker)
  // Teardowns run last-registered first: these go before the runtimes close.
  t.teardown(async () => {
    await webhooks.close()
    await queue.close()
    connection.disconnect()
  })
  const register = async (url: string, extra: Record<string, unknown> = {}) => {
    const res = await sys.app.inject({ method: 'POST', url: '/v1/webhooks', payload: { name: 'on-call bot', url, ...extra } })
    t.equal(res.statusCode, 201, res.body)
    return res.json() as { id: string; secret: string }
  }
  const deliveries = async (webhookId: string, status?: string) =>
    (await sys.app.inject({ url: `/v1/webhooks/${webhookId}/deliveries${status ? `?status=${status}` : ''}` })).json().deliveries as {
      id: string
      status: string
      attempts: number
      lastStatus: number | null
      lastError: string | null
      alertEventId: string
      event: AlertEvent
    }[]
  return { ...sys, queue, dispatcher: makeDispatcher(), makeDispatcher, register, deliveries, fx: await fixtures(sys.worker) }
}

t.test('a receiver that fails twice then succeeds gets the alert once, signed, under one idempotency key', async (t) => {
  const s = await setup(t)
  const rx = await receiver(t, (_e, n) => (n <= 2 ? 500 : 200))
  const secret = 'a-shared-secret-of-the-flood-desk'
  const hook = await s.register(rx.url, { secret })
  t.equal(hook.secret, secret)

  const eventId = await s.fx.change('S12', 'firing')
  // The worker's sweeper may get there first: the count is not asserted, only the outcome.
  await s.dispatcher.dispatch()
  const [d] = await until('delivered', async () => (await s.deliveries(hook.id, 'delivered')).filter((x) => x.alertEventId === eventId))

  t.equal(rx.hits.length, 3, 'two failed tries and one success')
  t.same(rx.hits.map((h) => h.status), [500, 500, 200])
  t.same(new Set(rx.hits.map((h) => h.headers['idempotency-key'])), new Set([eventId]), 'every try carries the same Idempotency-Key')
  t.same(rx.hits.map((h) => h.headers['x-lantern-attempt']), ['1', '2', '3'])
  t.ok(rx.hits.every((h) => h.headers['x-lantern-event'] === eventId && h.headers['x-lantern-delivery'] === d!.id && h.headers['content-type'] === 'application/json'))
  for (const h of rx.hits) t.ok(verify(secret, String(h.headers['x-lantern-signature']), h.body), 'the signature verifies with the secret')
  t.notOk(verify('another-secret-entirely', String(rx.hits[2]!.headers['x-lantern-signature']), rx.hits[2]!.body), 'and not with another one')
  t.equal(rx.handled.length, 1, 'the receiver handles the change once')
  const body = rx.handled[0]!
  t.ok(Value.Check(AlertEvent, body), 'the body is an AlertEvent')
  t.match(body, { id: eventId, status: 'firing', rule: { name: 'PM2.5 high', severity: 'critical' }, series: { dims: { station: 'S12' } } })
  t.match(d, { status: 'delivered', attempts: 3, lastStatus: 200, lastError: null, event: { id: eventId } })

  await sleep(300)
  t.equal(rx.hits.length, 3, 'nothing more arrives after the success')
  t.equal((await sql<{ n: number }>`SELECT count(*)::int AS n FROM alert_events WHERE dispatched_at IS NULL`.execute(s.worker.db)).rows[0]!.n, 0)
})

t.test('a receiver that always fails: the delivery goes dead, is listed, and a retry delivers it', async (t) => {
  const s = await setup(t)
  let up = false
  const rx = await receiver(t, () => (up ? 204 : 503))
  const hook = await s.register(rx.url)
  const eventId = await s.fx.change('S7', 'firing')
  await s.dispatcher.dispatch()

  const [dead] = await until('dead', async () => (await s.deliveries(hook.id, 'dead')).filter((x) => x.alertEventId === eventId))
  t.equal(rx.hits.length, MAX_ATTEMPTS, `${MAX_ATTEMPTS} tries, then no more`)
  t.match(dead, { attempts: MAX_ATTEMPTS, lastStatus: 503, lastError: 'HTTP 503: receiver is down' })
  const letters = (await s.app.inject({ url: '/v1/dead-letters' })).json()
  t.equal(letters.deliveries.length, 1)
  t.match(letters.deliveries[0], { id: dead!.id, webhookId: hook.id, webhookName: 'on-call bot', status: 'dead', event: { id: eventId, status: 'firing' } })
  await sleep(300)
  t.equal(rx.hits.length, MAX_ATTEMPTS, 'a dead delivery is not tried again by itself')

  t.equal((await s.app.inject({ method: 'POST', url: '/v1/dead-letters/999999/retry' })).statusCode, 404)
  up = true
  const retry = await s.app.inject({ method: 'POST', url: `/v1/dead-letters/${dead!.id}/retry` })
  t.equal(retry.statusCode, 202, retry.body)
  t.equal(retry.json().status, 'pending')
  const [done] = await until('delivered after retry', async () => (await s.deliveries(hook.id, 'delivered')).filter((x) => x.id === dead!.id))
  t.match(done, { attempts: MAX_ATTEMPTS + 1, lastStatus: 204 })
  t.equal(rx.hits[MAX_ATTEMPTS]!.headers['idempotency-key'], eventId)
  t.same((await s.app.inject({ url: '/v1/dead-letters' })).json().deliveries, [])
  const again = await s.app.inject({ method: 'POST', url: `/v1/dead-letters/${dead!.id}/retry` })
  t.equal(again.statusCode, 400)
  t.match(again.json().message, /is delivered/)

  // 410 Gone: the receiver says the endpoint is gone for good; no retries are spent on it.
  const gone = await receiver(t, () => 410)
  const goneHook = await s.register(gone.url)
  await s.fx.change('S7', 'resolved')
  await s.dispatcher.dispatch()
  const [g] = await until('dead on 410', async () => s.deliveries(goneHook.id, 'dead'))
  t.match(g, { attempts: 1, lastStatus: 410 })
  t.equal(gone.hits.length, 1)
})

t.test('per-series order: a later change waits while an earlier one of its series is retried', async (t) => {
  const s = await setup(t)
  const rx = await receiver(t, (e, n) => (e.status === 'firing' && e.series.dims.station === 'A' && n === 1 ? 500 : 200))
  await s.register(rx.url)
  const a1 = await s.fx.change('A', 'firing')
  const b1 = await s.fx.change('B', 'firing')
  const a2 = await s.fx.change('A', 'resolved')
  await s.dispatcher.dispatch()
  await until('all handled', async () => rx.handled.length === 3)

  const okA = rx.hits.filter((h) => h.status === 200).map((h) => JSON.parse(h.body) as AlertEvent).filter((e) => e.series.dims.station === 'A')
  t.same(okA.map((e) => e.id), [a1, a2], 'series A: firing, then resolved')
  const firstA1Success = rx.hits.findIndex((h) => h.status === 200 && h.headers['idempotency-key'] === a1)
  const firstA2 = rx.hits.findIndex((h) => h.headers['idempotency-key'] === a2)
  t.ok(firstA1Success < firstA2, 'the later change was not even tried before the earlier one got through')
  t.ok(rx.hits.findIndex((h) => h.headers['idempotency-key'] === b1) >= 0, 'another series is not held back')
  t.same(rx.hits.filter((h) => h.headers['idempotency-key'] === a2).map((h) => h.headers['x-lantern-attempt']), ['1'], 'waiting spends no try')
})

t.test('a consumer group reads the alert stream, stops, and resumes with exactly the changes it missed', async (t) => {
  const s = await setup(t)
  const key = s.worker.keys.alertStream
  const r = s.worker.redis
  const read = async (): Promise<{ entry: string; fields: Record<string, string> }[]> => {
    const res = (await r.xreadgroup('GROUP', 'sms-gateway', 'c1', 'COUNT', 100, 'STREAMS', key, '>')) as [string, [string, string[]][]][] | null
    const entries = res?.[0]?.[1] ?? []
    return entries.map(([entry, kv]) => ({ entry, fields: Object.fromEntries(kv.reduce<[string, string][]>((acc, v, i) => (i % 2 ? acc : [...acc, [v, kv[i + 1]!]]), [])) }))
  }
  const before = (await s.app.inject({ url: '/v1/alert-stream' })).json()
  t.match(before, { key, length: 0, groups: [] })

  const first = [await s.fx.change('S1', 'firing'), await s.fx.change('S2', 'firing')]
  await s.dispatcher.dispatch()
  await r.xgroup('CREATE', key, 'sms-gateway', '0')
  const got = await read()
  t.same(got.map((g) => g.fields.id), first)
  t.match(got[0]!.fields, { series: String(JSON.parse(got[0]!.fields.event!).series.id), status: 'firing' })
  t.ok(Value.Check(AlertEvent, JSON.parse(got[0]!.fields.event!)), 'the event field is the AlertEvent')
  await r.xack(key, 'sms-gateway', ...got.map((g) => g.entry))

  // The consumer is down while more changes happen.
  const missed = [await s.fx.change('S1', 'resolved'), await s.fx.change('S3', 'firing'), await s.fx.change('S2', 'resolved')]
  await s.dispatcher.dispatch()
  const info = (await s.app.inject({ url: '/v1/alert-stream' })).json()
  t.match(info, { key, length: 5, entriesAdded: 5, groups: [{ name: 'sms-gateway', consumers: 1, pending: 0, lag: 3 }] })
  t.equal(info.lastEntryId, info.lastGeneratedId)

  const resumed = await read()
  t.same(resumed.map((g) => g.fields.id), missed, 'exactly the missed changes, in order')
  t.same(await read(), [], 'and nothing else')
})

t.test('two dispatchers at once, and a redo after a crash, give one stream entry and one delivery per change', async (t) => {
  const s = await setup(t)
  const rx1 = await receiver(t, () => 200)
  const rx2 = await receiver(t, () => 200)
  const critical = await s.register(rx1.url, { filter: { severities: ['critical'], statuses: ['firing', 'resolved'] } })
  await s.register(rx2.url, { filter: { metrics: ['air.pm25'] } })
  // Matches nothing: another metric.
  const other = await s.register(rx2.url, { filter: { metrics: ['water.level'] } })
  const ids: string[] = []
  for (let i = 0; i < 30; i++) ids.push(await s.fx.change(`S${i % 3}`, i % 2 ? 'resolved' : 'firing'))
  ids.push(await s.fx.change('S0', 'pending'))

  // With the worker's own sweeper, up to three dispatchers run at once here.
  await Promise.all([s.dispatcher.dispatch(), s.makeDispatcher().dispatch()])
  t.equal((await sql<{ n: number }>`SELECT count(*)::int AS n FROM alert_events WHERE dispatched_at IS NULL`.execute(s.worker.db)).rows[0]!.n, 0, 'every change dispatched')
  // A crash between the queue and the mark: the whole batch is dispatched again.
  await sql`UPDATE alert_events SET dispatched_at = NULL`.execute(s.worker.db)
  await Promise.all([s.makeDispatcher().dispatch(), s.makeDispatcher().dispatch()])

  const entries = await s.worker.redis.xrange(s.worker.keys.alertStream, '-', '+')
  const streamed = entries.map(([, kv]) => kv[kv.indexOf('id') + 1]!)
  t.same(streamed, ids, 'each change once on the stream, in id order')
  await until('all handled', async () => rx1.handled.length === 30 && rx2.handled.length === 30)
  await sleep(300)
  t.equal(rx1.hits.length, 30, 'one POST per change to the first webhook (the pending change is filtered out by default)')
  t.equal(rx2.hits.length, 30, 'and to the second')
  t.equal(new Set(rx1.hits.map((h) => h.headers['idempotency-key'])).size, 30)
  const { rows } = await sql<{ n: number; delivered: number }>`SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'delivered')::int AS delivered FROM webhook_deliveries`.execute(s.worker.db)
  t.same(rows[0], { n: 60, delivered: 60 })
  t.same(await s.deliveries(other.id), [], 'a filter that matches nothing gets nothing')
  t.same(await s.deliveries(critical.id, 'pending'), [])
})

t.test('webhook registration: validation, secrets and 404s', async (t) => {
  const s = await setup(t)
  const post = (payload: unknown) => s.app.inject({ method: 'POST', url: '/v1/webhooks', payload: payload as Record<string, unknown> })
  const bad = [
    [{ name: 'x', url: 'ftp://example.org/hook' }, /http or https/],
    [{ name: 'x', url: 'not a url' }, /absolute http or https URL/],
    [{ name: 'x', url: 'https://example.org/hook', colour: 'red' }, /additional properties/],
    [{ name: 'x', url: 'https://example.org/hook', filter: { statuses: ['exploded'] } }, /statuses/],
    [{ name: 'x', url: 'https://example.org/hook', filter: { severity: ['critical'] } }, /additional properties/],
    [{ name: 'x', url: 'https://example.org/hook', secret: 'short' }, /secret/],
    [{ url: 'https://example.org/hook' }, /name/],
  ] as const
  for (const [payload, message] of bad) {
    const res = await post(payload)
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.match(res.json(), { code: 'BAD_REQUEST', message }, JSON.stringify(payload))
  }

  const created = await post({ name: 'flood desk', url: 'https://flood.example.org/in' })
  t.equal(created.statusCode, 201)
  const hook = created.json()
  t.match(hook, { name: 'flood desk', url: 'https://flood.example.org/in', enabled: true, filter: { statuses: ['firing', 'resolved'] } })
  t.match(hook.secret, /^whsec_[A-Za-z0-9_-]{43}$/, 'a generated secret, shown once')
  const listed = (await s.app.inject({ url: '/v1/webhooks' })).json().webhooks
  t.equal(listed.length, 1)
  t.notOk('secret' in listed[0], 'no secret in the list')
  t.notOk('secret' in (await s.app.inject({ url: `/v1/webhooks/${hook.id}` })).json(), 'nor in the webhook')
  t.equal((await s.app.inject({ url: '/v1/webhooks/424242' })).statusCode, 404)
  t.equal((await s.app.inject({ url: '/v1/webhooks/424242/deliveries' })).statusCode, 404)
  t.equal((await s.app.inject({ url: `/v1/webhooks/${hook.id}/deliveries?status=lost` })).statusCode, 400)
  t.equal((await s.app.inject({ method: 'DELETE', url: `/v1/webhooks/${hook.id}` })).statusCode, 204)
  t.equal((await s.app.inject({ method: 'DELETE', url: `/v1/webhooks/${hook.id}` })).statusCode, 404)
})
