import t from 'tap'
import { startTestApp } from '../helpers/context.js'
import { Client } from '../helpers/ws-client.js'

/** Deterministic pseudo-random choices, so a failing payload can be reproduced by its index. */
function rng(seed: number): () => number {
  let x = seed
  return () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648
}

const GOOD = { id: 'x', source: 'fuzz', metric: 'fuzz.m', ts: 1795334400000, value: 1, dims: { a: 'b' } }
const GOOD_REPORT = { id: 'x', source: 'fuzz', service: 'paht', case: 'C1', status: 'received', ts: 1795334400000 }

/** Values no field of an event may hold (every field is a string or a number). */
const nasty: unknown[] = [
  null,
  true,
  false,
  [],
  [[[]]],
  ['x'],
  {},
  { __proto__: { polluted: true } },
  JSON.parse('{"__proto__":{"polluted":true}}'),
  { constructor: { prototype: { polluted: true } } },
  { $gt: '' },
  { toString: 'x' },
]

/** One hostile body: a raw string, always something the server must refuse. */
function payload(i: number, base: Record<string, unknown>, next: () => number): { body: string; type: string } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T
  // dims accepts any map of valid names, so hostile values go in the scalar fields.
  const fields = Object.keys(base).filter((f) => f !== 'dims')
  switch (i % 12) {
    case 0:
      return { body: JSON.stringify(base).slice(0, Math.floor(next() * 40)), type: 'application/json' }
    case 1:
      return { body: JSON.stringify({ ...base, [pick(fields)]: pick(nasty) }), type: 'application/json' }
    case 2:
      return { body: JSON.stringify([base, { ...base, [pick(fields)]: pick(nasty) }]), type: 'application/json' }
    case 3:
      return {
        body: JSON.stringify({ ...base, dims: { [pick(['__proto__', 'constructor', 'prototype', '', 'a b', 'x'.repeat(80), '\u0000', '\ud800', 'é'])]: pick(['v', '', 5, null, 'x'.repeat(2000)]) } }),
        type: 'application/json',
      }
    case 4:
      return { body: '['.repeat(1000 + Math.floor(next() * 50_000)) + ']'.repeat(10), type: 'application/json' }
    case 5:
      return { body: JSON.stringify({ ...base, value: 1 }).replace('"value":1', `"value":${pick(['1e999', '-1e999', 'NaN', 'Infinity', '0x10', '01', '.5', '1.', '+1'])}`), type: 'application/json' }
    case 6:
      return { body: `${JSON.stringify(base)}\n${pick(['{', 'null', '[]', '"x"', '{"id":1}', '\u0000'])}\n`, type: 'application/x-ndjson' }
    case 7:
      return { body: JSON.stringify({ ...base, extra: pick(nasty) }), type: 'application/json' }
    case 8:
      return { body: JSON.stringify({ ...base, ts: pick(['2026-02-30T00:00:00Z', '2026-11-22', 'yesterday', -1, 1e20, 99999999999999999, '9999-12-31T23:59:60Z']) }), type: 'application/json' }
    case 9:
      return { body: JSON.stringify(base), type: pick(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', '']) }
    case 10:
      return { body: pick(['', ' ', 'null', '42', '"str"', '[]', '[null]', '[1,2,3]', '\ufeff{}']), type: 'application/json' }
    default: {
      const dims: Record<string, string> = {}
      for (let k = 0; k < 17 + Math.floor(next() * 20); k++) dims[`d${k}`] = 'v'
      return { body: JSON.stringify({ ...base, dims }), type: 'application/json' }
    }
  }
}

t.test('10,000 malformed and hostile payloads: every one a 4xx, the server alive, nothing written', async (t) => {
  const { app, api } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_MAX_BODY_BYTES: String(256 * 1024), LANTERN_MAX_BATCH_EVENTS: '100' })
  const next = rng(7)
  const statuses = new Map<number, number>()
  let unexpected = 0
  for (let i = 0; i < 10_000; i++) {
    const isReport = next() < 0.5
    const { body, type } = payload(i, isReport ? GOOD_REPORT : GOOD, next)
    const res = await app.inject({ method: 'POST', url: isReport ? '/v1/reports' : '/v1/metrics', payload: body, headers: type ? { 'content-type': type } : {} })
    statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
    if (res.statusCode < 400 || res.statusCode >= 500) {
      if (unexpected++ < 5) t.fail(`payload ${i} (${type}) got ${res.statusCode}: ${body.slice(0, 200)} -> ${res.body.slice(0, 200)}`)
    } else if (res.statusCode !== 415 && !(typeof res.json().message === 'string' && res.json().code)) {
      t.fail(`payload ${i}: a 4xx without code and message: ${res.body.slice(0, 200)}`)
    }
  }
  t.equal(unexpected, 0, `every payload refused with a 4xx (${[...statuses].map(([s, n]) => `${s}: ${n}`).join(', ')})`)

  const oversized = await app.inject({ method: 'POST', url: '/v1/metrics', payload: JSON.stringify(Array.from({ length: 101 }, (_, i) => ({ ...GOOD, id: `o${i}` }))), headers: { 'content-type': 'application/json' } })
  t.equal(oversized.statusCode, 413, 'a batch over the event limit')
  const huge = await app.inject({ method: 'POST', url: '/v1/metrics', payload: `[${JSON.stringify({ ...GOOD, id: 'y'.repeat(300 * 1024) })}]`, headers: { 'content-type': 'application/json' } })
  t.equal(huge.statusCode, 413, 'a body over the byte limit')

  t.same(await Promise.all([0, 1].map((p) => api.redis.xlen(api.keys.stream(p)))), [0, 0], 'no log entry written')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype polluted')
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'still alive')
  const ok = await app.inject({ method: 'POST', url: '/v1/metrics', payload: GOOD })
  t.same(ok.json(), { accepted: 1, duplicates: 0 }, 'and still accepting good events')
})

t.test('hostile socket messages get errors, never a crash', async (t) => {
  const { wsUrl, hub } = await startTestApp(t, { LANTERN_PARTITIONS: '1' }, { listen: true })
  const c = new Client(wsUrl)
  t.teardown(() => c.ws.terminate())
  await c.opened()
  const next = rng(3)
  const bad = [
    'not json',
    '',
    'null',
    '[]',
    '{"type":"subscribe"}',
    '{"type":"subscribe","topic":{"kind":"aggregate","metric":"m","window":"1m","dims":{"__proto__":"x"}}}',
    '{"type":"subscribe","topic":{"kind":"kpi","province":{"$ne":1}}}',
    '{"type":"subscribe","topic":{"kind":"aggregate","metric":"m","window":"1m"},"since":-5}',
    '{"type":"subscribe","topic":{"kind":"aggregate","metric":"m","window":"1m"},"buckets":1e9}',
    '{"type":"unsubscribe","topic":{}}',
    '{"type":"explode"}',
    JSON.stringify({ type: 'subscribe', topic: { kind: 'aggregate', metric: 'x'.repeat(500), window: '1m' } }),
  ]
  for (let i = 0; i < 200; i++) c.ws.send(bad[Math.floor(next() * bad.length)] as string)
  let errors = 0
  while (errors < 200) {
    await c.next((m) => m.type === 'error')
    errors++
  }
  t.equal(errors, 200, 'one error per bad message')
  c.send({ type: 'ping', ts: 1 })
  t.equal((await c.next((m) => m.type === 'pong')).ts, 1, 'the socket still works')
  t.equal(hub.socketCount, 1)
})
