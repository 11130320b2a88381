import t from 'tap'
import { makeMetricValidator } from '../../src/ingest/validate-events.js'
import { parseEventBody } from '../../src/ingest/parse-body.js'

const validate = makeMetricValidator({ maxDims: 4, maxDimValueLength: 16, maxFutureMs: 900_000 })
const now = Date.parse('2026-11-22T09:00:00Z')
const good = { id: 'gw7-1', source: 'hue-env', metric: 'air.pm25', ts: '2026-11-22T08:00:00Z', value: 41.2, dims: { station: 'S12', province: '46' } }

t.test('a good event is normalised: epoch ms, sorted dims', async (t) => {
  const r = validate([good, { ...good, id: 'gw7-2', ts: now - 1000, dims: undefined }], now)
  t.ok(r.ok)
  if (!r.ok) return
  t.equal(r.events[0]?.ts, Date.parse('2026-11-22T08:00:00Z'))
  t.same(Object.keys(r.events[0]?.dims ?? {}), ['province', 'station'])
  t.same(r.events[1]?.dims, {})
})

t.test('every bad event is listed with its index and reason', async (t) => {
  const batch: unknown[] = [
    good,
    { ...good, value: 'x' },
    { ...good, ts: '2026-02-30T08:00:00Z' },
    { ...good, ts: '2026-11-22 08:00' },
    { ...good, ts: now + 3_600_000 },
    { ...good, extra: 1 },
    { ...good, dims: { __proto__x: 'a', constructor: 'b' } },
    { ...good, dims: { a: '1', b: '2', c: '3', d: '4', e: '5' } },
    { ...good, dims: { a: 'x'.repeat(17) } },
    { ...good, value: Infinity },
    { ...good, id: '' },
    { ...good, metric: 'bad metric' },
    { ...good, dims: { 'a b': 'x' } },
    'not an object',
    null,
  ]
  const r = validate(batch, now)
  t.notOk(r.ok)
  if (r.ok) return
  t.same(r.errors.map((e) => e.index), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
  t.match(r.errors[0], { path: '/value', reason: /number/ })
  t.match(r.errors[1], { path: '/ts', reason: /calendar date/ })
  t.match(r.errors[3], { path: '/ts', reason: /ahead of the server clock/ })
  t.match(r.errors[4], { path: '/extra', reason: /unknown field/ })
  t.match(r.errors[5], { path: '/dims/__proto__x', reason: /dimension name/ })
  t.match(r.errors[8], { path: '/value', reason: /number/ })
  t.match(r.errors[11], { path: '/dims', reason: /dimension name "a b"/ })
})

t.test('bodies: object, array and NDJSON; bad lines reported with the rest', async (t) => {
  t.equal(parseEventBody(JSON.stringify(good), false, 10).length, 1)
  t.equal(parseEventBody(JSON.stringify([good, good]), false, 10).length, 2)
  const items = parseEventBody(`${JSON.stringify(good)}\n\n{oops\n${JSON.stringify({ ...good, value: 'x' })}\n`, true, 10)
  const r = validate(items, now)
  t.notOk(r.ok)
  if (!r.ok) t.same(r.errors.map((e) => e.index), [1, 2])
  t.throws(() => parseEventBody('[]', false, 10), { code: 'EMPTY_BATCH', statusCode: 400 })
  t.throws(() => parseEventBody('{', false, 10), { code: 'INVALID_JSON' })
  t.throws(() => parseEventBody(JSON.stringify([good, good, good]), false, 2), { code: 'TOO_MANY_EVENTS' })
  t.throws(() => parseEventBody('"text"', false, 2), { code: 'INVALID_EVENTS' })
  t.throws(() => parseEventBody('['.repeat(200_000), false, 2), { code: 'INVALID_JSON' })
})

t.test('names that reach Object.prototype are refused even where the name pattern allows them', async (t) => {
  const r = validate([{ ...good, dims: { constructor: 'x' } }, { ...good, dims: { prototype: 'x' } }], now)
  t.notOk(r.ok)
  if (!r.ok) t.match(r.errors, [{ path: '/dims/constructor', reason: /not allowed/ }, { path: '/dims/prototype', reason: /not allowed/ }])
})
