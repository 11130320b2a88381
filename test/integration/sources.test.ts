import t from 'tap'
import { sql } from 'kysely'
import { startTestApp } from '../helpers/context.js'
import { listSourceHealth } from '../../src/ingest/source-health.js'
import { evaluateSilence } from '../../workers/source-watch.worker.js'
import { listRules } from '../../src/repositories/rules.repository.js'

const sample = (i: number, ts: number, source = 'hue-env') => ({ id: `${source}-${i}`, source, metric: 'air.pm25', ts, value: 40 + i, dims: { province: '46' } })

t.test('every source shows its health: alive, newest event, lag, rate, rejections with the last reason', async (t) => {
  const { app } = await startTestApp(t, { LANTERN_PARTITIONS: '2' })
  const now = Date.now()
  t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', payload: [sample(1, now - 90_000), sample(2, now - 30_000)] })).statusCode, 202)
  const bad = await app.inject({ method: 'POST', url: '/v1/metrics', payload: [sample(3, now), { ...sample(4, now), value: 'high' }] })
  t.equal(bad.statusCode, 400)
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: [sample(1, now, 'hcm-traffic')] })

  const { sources } = (await app.inject({ url: '/v1/sources' })).json()
  const env = sources.find((s: { source: string }) => s.source === 'hue-env')
  t.match(env, { status: 'live', events: 2, rejected: 1, lastEventAt: new Date(now - 30_000).toISOString() })
  t.ok(env.lagSeconds >= 30 && env.lagSeconds < 40, `lag is arrival minus the newest event time (${env.lagSeconds} s)`)
  t.match(env.lastRejection.reason, /value/, 'the last rejection names what was wrong')
  t.same(sources.map((s: { source: string }) => s.source).sort(), ['hcm-traffic', 'hue-env'])
})

t.test('a silence rule fires when a source stops sending and resolves when data returns, once each', async (t) => {
  const { app, api } = await startTestApp(t, { LANTERN_PARTITIONS: '1' })
  for (const [payload, message] of [
    [{ name: 'quiet', kind: 'silence', dims: { source: 'hue-env' } }, /for is required/],
    [{ name: 'quiet', kind: 'silence', metric: 'air.pm25', for: '10m' }, /metric does not apply/],
    [{ name: 'quiet', kind: 'silence', dims: { province: '46' }, for: '10m' }, /dims.source only/],
  ] as const) {
    const res = await app.inject({ method: 'POST', url: '/v1/rules', payload })
    t.equal(res.statusCode, 400)
    t.match(res.json().message, message)
  }
  const rule = await app.inject({ method: 'POST', url: '/v1/rules', payload: { name: 'Sensor gateway quiet', kind: 'silence', dims: { source: '*' }, for: '10m', severity: 'critical' } })
  t.equal(rule.statusCode, 201, rule.body)

  const start = Date.now()
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: [sample(1, start)] })
  const check = async (at: number) => evaluateSilence(api, (await listRules(api.db)).filter((r) => r.kind === 'silence'), await listSourceHealth(api.redis, api.keys, at, 300_000), at)

  t.same(await check(start + 9 * 60_000), [], 'quiet for 9 minutes: nothing yet')
  const fired = await check(start + 11 * 60_000)
  t.match(fired, [{ status: 'firing', series: { metric: 'lantern.source', dims: { source: 'hue-env' } }, rule: { name: 'Sensor gateway quiet' } }])
  t.same(await check(start + 12 * 60_000), [], 'still quiet: no second alert')

  await app.inject({ method: 'POST', url: '/v1/metrics', payload: [sample(2, Date.now())] })
  const resolved = await check(Date.now())
  t.match(resolved, [{ status: 'resolved', alertId: fired[0]?.alertId }])
  t.same(await check(Date.now()), [], 'resolved once')

  const { rows } = await sql<{ status: string }>`SELECT status FROM alert_events ORDER BY id`.execute(api.db)
  t.same(rows.map((r) => r.status), ['firing', 'resolved'], 'both changes are in the outbox, for the stream and webhooks')
  t.match((await app.inject({ url: '/v1/alerts' })).json().alerts, [{ status: 'resolved', series: { dims: { source: 'hue-env' } } }])
})
