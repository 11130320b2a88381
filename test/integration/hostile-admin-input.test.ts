import t from 'tap'
import { sql } from 'kysely'
import { startTestApp } from '../helpers/context.js'

/** Deterministic pseudo-random choices, so a failing payload can be reproduced by its index. */
function rng(seed: number): () => number {
  let x = seed
  return () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648
}

const nasty: unknown[] = [null, true, [], [[[]]], {}, '', 'x'.repeat(100_000), -1, 1e308, 'NaN', '\u0000', '\ud800', { __proto__: { polluted: true } }, JSON.parse('{"__proto__":{"polluted":true}}'), { constructor: { prototype: { polluted: true } } }]

/** A valid body per route; the fuzz breaks one field at a time, or the whole body. */
const ROUTES: { method: 'POST' | 'PUT'; url: string; good: Record<string, unknown> }[] = [
  { method: 'POST', url: '/v1/rules', good: { name: 'r', metric: 'water.level', aggregate: 'max', window: '5m', op: '>=', value: 3, for: '1m', severity: 'critical', dims: { station: '*' }, labels: { a: 'b' } } },
  { method: 'PUT', url: '/v1/rules/1', good: { name: 'r', metric: 'water.level', value: 3 } },
  { method: 'POST', url: '/v1/webhooks', good: { name: 'w', url: 'http://127.0.0.1:9/hook', filter: { severities: ['critical'] } } },
  { method: 'PUT', url: '/v1/anomaly-settings/air.pm25', good: { detectors: ['robust_z'], sensitivity: 0.5, seasonality: 'daily', window: 60, minHistory: 30 } },
  { method: 'POST', url: '/v1/anomalies/score', good: { samples: [{ ts: 1, value: 1 }] } },
  { method: 'POST', url: '/v1/connectors/mqtt', good: { name: 'm', url: 'mqtt://127.0.0.1:1', topics: ['a/+/b'], mapping: { metric: 'x.y', value: '$.v' } } },
  { method: 'POST', url: '/v1/ngsi/v2/notify', good: { subscriptionId: 's', data: [{ id: 'e', type: 'T', a: { type: 'Number', value: 1 } }] } },
  { method: 'POST', url: '/v1/ngsi/ld/notify', good: { id: 'urn:n', type: 'Notification', subscriptionId: 's', notifiedAt: '2026-11-20T00:00:00Z', data: [{ id: 'urn:e', type: 'T', a: { type: 'Property', value: 1 } }] } },
]

function hostile(i: number, good: Record<string, unknown>, next: () => number): { body: string; type: string } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T
  const fields = Object.keys(good)
  switch (i % 6) {
    case 0:
      return { body: JSON.stringify({ ...good, [pick(fields)]: pick(nasty) }), type: 'application/json' }
    case 1:
      return { body: JSON.stringify(good).slice(0, Math.floor(next() * 30)), type: 'application/json' }
    case 2:
      return { body: JSON.stringify({ ...good, [pick(['__proto__', 'constructor', 'extra', ''])]: pick(nasty) }), type: 'application/json' }
    case 3:
      return { body: '{"a":'.repeat(500 + Math.floor(next() * 5000)), type: 'application/json' }
    case 4:
      return { body: pick(['', 'null', '42', '[]', '"x"', '[null]']), type: 'application/json' }
    default:
      return { body: JSON.stringify({ ...good, [pick(fields)]: { deep: pick(nasty), more: [pick(nasty)] } }), type: 'application/json' }
  }
}

t.test('hostile bodies on the alerting and source routes get a clear 4xx (or pass as valid), never a 5xx', async (t) => {
  const { app, api } = await startTestApp(t, { LANTERN_PARTITIONS: '1' })
  const next = rng(37)
  const statuses = new Map<number, number>()
  const fivexx: string[] = []
  for (let i = 0; i < 8000; i++) {
    const route = ROUTES[i % ROUTES.length] as (typeof ROUTES)[number]
    const { body, type } = hostile(Math.floor(i / ROUTES.length), route.good, next)
    const res = await app.inject({ method: route.method, url: route.url, payload: body, headers: { 'content-type': type } })
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
    if (res.statusCode >= 500) fivexx.push(`${i} ${route.method} ${route.url} ${res.statusCode} ${body.slice(0, 120)}`)
  }
  t.same(fivexx, [], 'no 5xx')
  t.ok([...statuses.keys()].every((s) => s < 500), JSON.stringify(Object.fromEntries(statuses)))
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution')
  const counts = await sql<{ t: string; n: string }>`
    SELECT 'rules' AS t, count(*)::text AS n FROM alert_rules UNION ALL SELECT 'webhooks', count(*)::text FROM webhooks
    UNION ALL SELECT 'settings', count(*)::text FROM anomaly_settings UNION ALL SELECT 'mqtt', count(*)::text FROM mqtt_subscriptions`.execute(api.db)
  t.ok(counts.rows.every((r) => Number(r.n) <= 8000), 'the server is still answering queries')
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'alive')
})
