import t from 'tap'
import type { ChildProcess } from 'node:child_process'
import { sql } from 'kysely'
import { startWorker, waitFor } from '../helpers/processes.js'
import { startTestApp } from '../helpers/context.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'
import type { Db } from '../../src/infra/db.js'
import { Client } from '../helpers/ws-client.js'

const MIN = 60_000
const T0 = Date.parse('2026-11-20T00:00:00Z')

interface Sample {
  station: string
  minute: number
  value: number
}

const events = (samples: readonly Sample[]) =>
  samples.map((s) => ({ id: `${s.station}-${s.minute}`, source: 'hue-hydro', metric: 'water.level', ts: T0 + s.minute * MIN, value: s.value, dims: { province: '46', station: s.station } }))

/** 10 minutes at 1.0 m, 15 at 3.5 m (above the 3 m alarm), then 10 back at 1.0 m. */
const flood = (station: string): Sample[] => Array.from({ length: 35 }, (_, minute) => ({ station, minute, value: minute >= 10 && minute < 25 ? 3.5 : 1.0 }))

async function changes(db: Db): Promise<{ alert_id: number; status: string; at: string; series: string }[]> {
  const { rows } = await sql<{ alert_id: number; status: string; at: string; series: string }>`
    SELECT alert_id, status, payload->>'at' AS at, payload->'series'->'dims'->>'station' AS series FROM alert_events ORDER BY id`.execute(db)
  return rows
}

const RULE = { name: 'Huong river above alarm level 3', metric: 'water.level', dims: { province: '46', station: '*' }, aggregate: 'max', window: '1m', op: '>=', value: 3, for: '5m', severity: 'critical', labels: { desk: 'flood' } }

t.test('a breach held for the for-duration fires exactly once and resolves exactly once', async (t) => {
  const { app, api, worker } = await startTestApp(t, { LANTERN_PARTITIONS: '2' })
  const created = await app.inject({ method: 'POST', url: '/v1/rules', payload: RULE })
  t.equal(created.statusCode, 201, created.body)
  const drainers = makeDrainers(worker)

  // Sent in three requests with the drain running between them, and the middle one sent twice.
  const all = events(flood('kim-long'))
  for (const part of [all.slice(0, 12), all.slice(12, 20), all.slice(12, 20), all.slice(20)]) {
    t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', payload: part })).statusCode, 202)
    await drainAll(drainers)
  }
  const got = await changes(api.db)
  t.same(
    got.map((c) => [c.status, c.at]),
    [
      ['pending', new Date(T0 + 10 * MIN).toISOString()],
      ['firing', new Date(T0 + 15 * MIN).toISOString()],
      ['resolved', new Date(T0 + 25 * MIN).toISOString()],
    ],
    'pending when it crosses, firing 5 minutes later, resolved when it drops back',
  )
  t.equal(new Set(got.map((c) => c.alert_id)).size, 1, 'one alert for the rule and series')

  const alerts = (await app.inject({ url: '/v1/alerts' })).json().alerts
  t.equal(alerts.length, 1)
  t.match(alerts[0], { status: 'resolved', severity: 'critical', series: { dims: { station: 'kim-long' } }, firingAt: new Date(T0 + 15 * MIN).toISOString() })
  t.equal(alerts[0].cause.value, 3.5, 'the alert keeps the value that made it fire')
  t.ok(alerts[0].cause.samples.some((s: { eventId: string }) => s.eventId === 'kim-long-15'), 'and the samples behind it, by event id')
  const one = (await app.inject({ url: `/v1/alerts/${alerts[0].id}` })).json()
  t.same(one.changes.map((c: { status: string }) => c.status), ['pending', 'firing', 'resolved'])
  t.same((await app.inject({ url: '/v1/alerts?status=open' })).json().alerts, [], 'nothing open any more')
})

t.test('a breach shorter than the for-duration is cancelled and never fires', async (t) => {
  const { app, api, worker } = await startTestApp(t, { LANTERN_PARTITIONS: '1' })
  await app.inject({ method: 'POST', url: '/v1/rules', payload: RULE })
  const blip = Array.from({ length: 20 }, (_, minute) => ({ station: 'kim-long', minute, value: minute >= 5 && minute < 8 ? 3.2 : 1 }))
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: events(blip) })
  await drainAll(makeDrainers(worker))
  t.same((await changes(api.db)).map((c) => c.status), ['pending', 'cancelled'])
})

t.test('rules: defaults, clear 400s, update, delete resolves open alerts', async (t) => {
  const { app, api, worker } = await startTestApp(t, { LANTERN_PARTITIONS: '1' })
  const bad = [
    [{ ...RULE, value: undefined }, /value is required/],
    [{ ...RULE, window: '5 minutes' }, /window/],
    [{ ...RULE, op: '=>' }, /op/],
    [{ ...RULE, kind: 'anomaly', aggregate: 'max' }, /aggregate does not apply/],
    [{ ...RULE, kind: 'anomaly', aggregate: undefined, value: 7 }, /from 0 to 1/],
    [{ ...RULE, extra: 1 }, /additional/i],
    [{ ...RULE, metric: 'bad metric' }, /metric/],
  ] as const
  for (const [payload, message] of bad) {
    const res = await app.inject({ method: 'POST', url: '/v1/rules', payload })
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.match(res.json().message, message)
  }
  t.equal((await app.inject({ url: '/v1/rules' })).json().rules.length, 0, 'nothing half-written')

  const rule = (await app.inject({ method: 'POST', url: '/v1/rules', payload: { name: 'level', metric: 'water.level', value: 3 } })).json()
  t.match(rule, { kind: 'threshold', aggregate: 'last', windowS: 300, op: '>', forS: 0, severity: 'warning', enabled: true })
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: events([{ station: 's1', minute: 0, value: 5 }]) })
  await drainAll(makeDrainers(worker))
  t.same((await changes(api.db)).map((c) => c.status), ['firing'], 'no for-duration: fires at once')

  const renamed = await app.inject({ method: 'PUT', url: `/v1/rules/${rule.id}`, payload: { name: 'level (renamed)', metric: 'water.level', value: 3 } })
  t.equal(renamed.json().name, 'level (renamed)')
  t.equal((await app.inject({ method: 'DELETE', url: `/v1/rules/${rule.id}` })).statusCode, 204)
  const after = await changes(api.db)
  t.same(after.map((c) => c.status), ['firing', 'resolved'], 'deleting the rule resolves its open alert, as a change consumers hear of')
  t.equal((await app.inject({ url: `/v1/rules/${rule.id}` })).statusCode, 404)
  t.equal((await app.inject({ url: '/v1/alerts' })).json().alerts.length, 1, 'the history stays')
})

t.test('a worker killed mid-batch causes no duplicate or lost alert', async (t) => {
  const { app, api, te } = await startTestApp(t, { LANTERN_PARTITIONS: '4', LANTERN_DRAIN_BATCH_EVENTS: '700', LOG_LEVEL: 'warn' })
  const workers: ChildProcess[] = []
  t.teardown(() => workers.forEach((w) => w.kill('SIGKILL')))
  await app.inject({ method: 'POST', url: '/v1/rules', payload: RULE })
  const stations = Array.from({ length: 300 }, (_, i) => `st${i}`)
  const all = events(stations.flatMap(flood))
  // Minute by minute, as gauges report: every series moves forward in each request.
  const byMinute = Array.from({ length: 35 }, (_, m) => all.filter((e) => e.ts === T0 + m * MIN))
  for (const part of byMinute) t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', payload: part })).statusCode, 202)

  const eventsCommitted = async () => Number((await sql<{ n: string }>`SELECT coalesce(sum(events), 0)::text AS n FROM drain_checkpoints`.execute(api.db)).rows[0]?.n)
  const first = startWorker(te.env)
  workers.push(first)
  await waitFor('the first batches to commit', async () => (await eventsCommitted()) > 0, 30_000)
  first.kill('SIGKILL')
  t.ok((await eventsCommitted()) < all.length, 'killed while draining')
  workers.push(startWorker(te.env))
  await waitFor('every event to commit', async () => (await eventsCommitted()) >= all.length, 60_000)

  const got = await changes(api.db)
  const perSeries = new Map<string, string[]>()
  for (const c of got) perSeries.set(c.series, [...(perSeries.get(c.series) ?? []), c.status])
  t.equal(perSeries.size, stations.length, 'every station alerted')
  t.ok([...perSeries.values()].every((s) => s.join() === 'pending,firing,resolved'), 'each exactly pending, firing, resolved')
  const alertIds = new Set(got.map((c) => c.alert_id))
  t.equal(alertIds.size, stations.length, 'one alert per station')

  await waitFor('every change to be dispatched', async () => Number((await sql<{ n: string }>`SELECT count(*)::text AS n FROM alert_events WHERE dispatched_at IS NULL`.execute(api.db)).rows[0]?.n) === 0, 30_000)
  const stream = await api.redis.xrange(api.keys.alertStream, '-', '+')
  const streamed = stream.map(([, f]) => f[f.indexOf('id') + 1])
  t.equal(streamed.length, got.length, 'the alert stream holds each change once')
  t.equal(new Set(streamed).size, got.length)
})

t.test('screens hear alert changes and anomaly flags on their live topics', async (t) => {
  const { app, worker, wsUrl } = await startTestApp(t, { LANTERN_PARTITIONS: '1' }, { listen: true })
  await app.inject({ method: 'POST', url: '/v1/rules', payload: RULE })
  const c = new Client(wsUrl)
  t.teardown(() => c.ws.close())
  await c.opened()
  c.send({ type: 'subscribe', topic: { kind: 'alerts' } })
  c.send({ type: 'subscribe', topic: { kind: 'anomalies', metric: 'water.level' } })
  t.same((await c.next((m) => m.type === 'snapshot' && m.topic === 'alerts')).events, [])
  await c.next((m) => m.type === 'snapshot' && m.topic !== 'alerts')

  // A steady river for two hours, then the flood: the level jumps far outside anything seen.
  const steady = Array.from({ length: 120 }, (_, minute) => ({ station: 'kim-long', minute, value: 1 + (minute % 7) * 0.01 }))
  const surge = Array.from({ length: 10 }, (_, i) => ({ station: 'kim-long', minute: 120 + i, value: 3.5 }))
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: events([...steady, ...surge]) })
  await drainAll(makeDrainers(worker))
  const pending = await c.next((m) => m.type === 'delta' && m.topic === 'alerts')
  t.match(pending.event, { status: 'pending', rule: { name: RULE.name, severity: 'critical' }, series: { dims: { station: 'kim-long' } }, value: 3.5 })
  const firing = await c.next((m) => m.type === 'delta' && m.topic === 'alerts')
  t.match(firing.event, { status: 'firing', at: new Date(T0 + 125 * MIN).toISOString() })
  const flag = await c.next((m) => m.type === 'delta' && m.topic !== 'alerts')
  t.match(flag.event, { metric: 'water.level', ts: new Date(T0 + 120 * MIN).toISOString(), value: 3.5 })
})

/** A small deterministic PRNG, so the series is the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('an anomaly in a seasonal series is flagged, the seasonal peak itself is not', async (t) => {
  const { app, worker } = await startTestApp(t, { LANTERN_PARTITIONS: '1', LANTERN_ALLOWED_LATENESS_SEC: String(30 * 86400) })
  const rand = rng(7)
  // Nine days that end before the server clock's today.
  const S0 = Date.parse('2026-11-01T00:00:00Z')
  const STEP = 5 * MIN
  const days = 9
  const spikeAt = S0 + 8 * 86_400_000 + 3 * 3_600_000
  const samples = Array.from({ length: (days * 86_400_000) / STEP }, (_, i) => {
    const ts = S0 + i * STEP
    const hour = ((ts - S0) % 86_400_000) / 3_600_000
    // Evening traffic: a tall peak around 18:00 over a quiet night.
    const seasonal = 200 + 600 * Math.exp(-((hour - 18) ** 2) / (2 * 1.5 ** 2))
    const noise = (rand() + rand() + rand() - 1.5) * 20
    return { id: `t-${i}`, source: 'hue-traffic', metric: 'traffic.count', ts, value: seasonal + noise + (ts === spikeAt ? 250 : 0), dims: { province: '46', camera: 'C7' } }
  })
  for (let i = 0; i < samples.length; i += 500) {
    t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', payload: samples.slice(i, i + 500) })).statusCode, 202)
  }
  await drainAll(makeDrainers(worker))

  const flagged: { ts: string; score: number; detectors: string[]; expectedRange: [number, number]; value: number; eventId: string }[] = []
  for (let before: string | null = null; ; ) {
    const page: { anomalies: typeof flagged; next: string | null } = (await app.inject({ url: `/v1/anomalies?metric=traffic.count&dims.camera=C7&limit=50${before ? `&before=${before}` : ''}` })).json()
    flagged.push(...page.anomalies)
    if (!page.next) break
    before = page.next
  }
  const spike = flagged.find((f) => Date.parse(f.ts) === spikeAt)
  t.ok(spike, 'the injected spike is flagged')
  t.ok(spike && spike.score > 0 && spike.score <= 1 && spike.detectors.length > 0 && spike.expectedRange[1] < spike.value, 'with score, detectors and the expected range below the value')
  t.equal(spike?.eventId, `t-${(spikeAt - S0) / STEP}`)
  const peakFlags = flagged.filter((f) => {
    const ms = Date.parse(f.ts)
    const hour = ((ms - S0) % 86_400_000) / 3_600_000
    return ms >= S0 + 5 * 86_400_000 && hour >= 14 && hour <= 22
  })
  t.same(peakFlags, [], 'no flag on the evening peaks once the seasonal baseline knows them')
  t.ok(flagged.every((f, i) => i === 0 || Date.parse(f.ts) <= Date.parse((flagged[i - 1] as { ts: string }).ts)), 'newest first across pages')
  const warmup = flagged.filter((f) => Date.parse(f.ts) < S0 + 30 * STEP)
  t.same(warmup, [], 'no flag during warm-up')
})

t.test('a series can be scored without storing anything, every sample getting a verdict', async (t) => {
  const { app, api } = await startTestApp(t, { LANTERN_PARTITIONS: '1' })
  const rand = rng(3)
  const samples = Array.from({ length: 400 }, (_, i) => ({ ts: T0 + i * MIN, value: 20 + (rand() - 0.5) * 2 + (i === 300 ? 15 : 0) }))
  const res = await app.inject({ method: 'POST', url: '/v1/anomalies/score', payload: { samples } })
  t.equal(res.statusCode, 200, res.body)
  const { verdicts, flagged } = res.json()
  t.equal(verdicts.length, 400)
  t.ok(verdicts.every((v: { score: number }) => v.score >= 0 && v.score <= 1), 'a score in [0,1] for each sample')
  t.same(verdicts.flatMap((v: { flagged: boolean }, i: number) => (v.flagged ? [i] : [])), [300], 'only the spike is flagged')
  t.equal(flagged, 1)
  t.equal(Number((await sql<{ n: string }>`SELECT count(*)::text AS n FROM anomalies`.execute(api.db)).rows[0]?.n), 0, 'nothing stored')
  const bad = await app.inject({ method: 'POST', url: '/v1/anomalies/score', payload: { samples: [{ ts: 'yesterday', value: 1 }] } })
  t.equal(bad.statusCode, 400)
  t.match(bad.json().message, /samples\[0\]\.ts/)
})
