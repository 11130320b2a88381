import t from 'tap'
import * as ss from 'simple-statistics'
import { startTestApp } from '../helpers/context.js'
import type { MetricEvent } from '../../src/schemas/metric-event.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'

const MIN = 60_000
const T0 = Math.floor((Date.now() - 6 * 3_600_000) / 3_600_000) * 3_600_000

type Ev = MetricEvent

/** Many series, values over three hours, shuffled so arrival order differs from event time. */
function dataset(n: number): Ev[] {
  const out: Ev[] = []
  let x = 42
  const rnd = (): number => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648)
  for (let i = 0; i < n; i++) {
    const province = String(10 + (i % 7))
    const station = `S${i % 13}`
    out.push({
      id: `ev-${i}`,
      source: `src-${i % 3}`,
      metric: i % 5 === 0 ? 'water.level' : 'air.pm25',
      ts: T0 + Math.floor(rnd() * 180) * MIN + Math.floor(rnd() * MIN),
      value: Math.round((rnd() * 300 - 20) * 10) / 10,
      dims: { province, station },
    })
  }
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1))
    ;[out[i], out[j]] = [out[j] as Ev, out[i] as Ev]
  }
  return out
}

t.test('aggregates equal an independent computation over the raw events', async (t) => {
  // Lateness covers the whole shuffled range, so every event lands in its bucket.
  const { app, api, worker } = await startTestApp(t, { LANTERN_ALLOWED_LATENESS_SEC: String(4 * 3600), LANTERN_PARTITIONS: '4' })

  const events = dataset(12_000)
  for (let i = 0; i < events.length; i += 3000) {
    const res = await app.inject({ method: 'POST', url: '/v1/metrics', payload: events.slice(i, i + 3000) })
    t.equal(res.statusCode, 202, res.body)
  }
  // A retried request changes nothing: every id is known.
  const again = await app.inject({ method: 'POST', url: '/v1/metrics', payload: events.slice(0, 500) })
  t.same(again.json(), { accepted: 0, duplicates: 500 })

  const drained = await drainAll(makeDrainers(worker))
  t.equal(drained, events.length)

  const check = async (metric: string, window: string, widthMs: number, filter: Record<string, string>): Promise<void> => {
    const qs = new URLSearchParams({ metric, window, from: String(T0 - 86_400_000), to: String(T0 + 86_400_000) })
    for (const [k, v] of Object.entries(filter)) qs.set(`dims.${k}`, v)
    const res = await app.inject({ url: `/v1/aggregates?${qs}` })
    t.equal(res.statusCode, 200, res.body)
    const buckets = res.json().groups[0]?.buckets ?? []
    const expected = new Map<number, number[]>()
    for (const e of events) {
      if (e.metric !== metric || Object.entries(filter).some(([k, v]) => e.dims[k] !== v)) continue
      const start = Math.floor(e.ts / widthMs) * widthMs
      expected.set(start, [...(expected.get(start) ?? []), e.value])
    }
    t.equal(buckets.length, expected.size, `${metric} ${window} ${JSON.stringify(filter)}: bucket count`)
    let exact = 0
    for (const b of buckets) {
      const xs = expected.get(Date.parse(b.start))
      if (!xs) continue
      const sorted = [...xs].sort((a, c) => a - c)
      const p95 = sorted[Math.floor(0.95 * (sorted.length - 1))] as number
      if (
        b.count === xs.length &&
        Math.abs(b.sum - ss.sum(xs)) < 1e-6 &&
        b.min === ss.min(xs) &&
        b.max === ss.max(xs) &&
        Math.abs(b.mean - ss.mean(xs)) < 1e-9 &&
        Math.abs(b.stddev - ss.standardDeviation(xs)) < 1e-6 &&
        Math.abs(b.p95 - p95) <= Math.abs(p95) * 0.01 + 1e-9
      ) {
        exact++
      } else {
        t.fail(`bucket ${b.start}: got ${JSON.stringify(b)}, want count ${xs.length} sum ${ss.sum(xs)} p95 ${p95}`)
      }
    }
    t.equal(exact, expected.size, `${metric} ${window} ${JSON.stringify(filter)}: every bucket matches`)
  }
  await check('air.pm25', '1m', MIN, {})
  await check('air.pm25', '5m', 5 * MIN, { province: '12' })
  await check('air.pm25', '1h', 60 * MIN, { province: '11', station: 'S4' })
  await check('water.level', '1d', 1440 * MIN, {})

  const grouped = await app.inject({ url: `/v1/aggregates?metric=air.pm25&window=1d&group_by=province&from=${T0 - 86_400_000}&to=${T0 + 86_400_000}` })
  const groups = grouped.json().groups as { key: { province: string }; buckets: { count: number }[] }[]
  t.equal(groups.length, 7, 'one group per province')
  const perProvince = groups.map((g) => g.buckets.reduce((a, b) => a + b.count, 0)).reduce((a, b) => a + b, 0)
  t.equal(perProvince, events.filter((e) => e.metric === 'air.pm25').length)
})

t.test('events later than the allowed lateness are counted per series, never dropped silently', async (t) => {
  const { app, api, worker } = await startTestApp(t, { LANTERN_ALLOWED_LATENESS_SEC: '60', LANTERN_PARTITIONS: '1' })
  const now = Math.floor(Date.now() / MIN) * MIN
  const ev = (id: string, ts: number, value: number) => ({ id, source: 'hue-env', metric: 'river.level', ts, value, dims: { station: 'R1' } })
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: [ev('a', now, 1), ev('b', now - 30_000, 2), ev('c', now - 5 * MIN, 3)] })
  const drainers = makeDrainers(worker)
  await drainAll(drainers)
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: [ev('d', now - 10 * MIN, 4)] })
  await drainAll(drainers)
  const series = (await app.inject({ url: '/v1/series?metric=river.level' })).json().series
  t.equal(series[0].events, 4)
  t.equal(series[0].lateEvents, 2)
  const agg = (await app.inject({ url: `/v1/aggregates?metric=river.level&window=1h&from=${now - 86_400_000}&to=${now + 86_400_000}` })).json()
  t.equal(agg.groups[0].buckets.reduce((a: number, b: { count: number }) => a + b.count, 0), 2, 'only on-time events are in buckets')
})

t.test('a bad batch is refused whole and writes nothing', async (t) => {
  const { app, api } = await startTestApp(t, { LANTERN_PARTITIONS: '2' })
  const good = { id: 'g1', source: 'hue-env', metric: 'air.pm25', ts: Date.now(), value: 1, dims: { station: 'S1' } }
  const res = await app.inject({ method: 'POST', url: '/v1/metrics', payload: [good, { ...good, id: 'g2', value: 'NaN' }, { ...good, id: 'g3', dims: { station: 7 } }] })
  t.equal(res.statusCode, 400)
  t.match(res.json(), { code: 'INVALID_EVENTS', errors: [{ index: 1, path: '/value' }, { index: 2, path: '/dims/station' }] })
  const lengths = await Promise.all([0, 1].map((p) => api.redis.xlen(api.keys.stream(p))))
  t.same(lengths, [0, 0], 'no partition log holds anything')
  // The good event was not remembered as seen either: sending it alone is accepted.
  const retry = await app.inject({ method: 'POST', url: '/v1/metrics', payload: good })
  t.same(retry.json(), { accepted: 1, duplicates: 0 })

  const ndjson = await app.inject({ method: 'POST', url: '/v1/metrics', headers: { 'content-type': 'application/x-ndjson' }, payload: `${JSON.stringify({ ...good, id: 'n1' })}\n{bad json\n` })
  t.equal(ndjson.statusCode, 400)
  t.match(ndjson.json(), { errors: [{ index: 1 }] })
  t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', headers: { 'content-type': 'text/csv' }, payload: 'a,b' })).statusCode, 415)
  t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', headers: { 'content-type': 'application/json' }, payload: '{"id":' })).json().code, 'INVALID_JSON')
  t.equal((await app.inject({ url: '/v1/aggregates?metric=air.pm25&window=2m' })).statusCode, 400)
  t.equal((await app.inject({ url: '/v1/aggregates?metric=air.pm25&window=1m&dim.station=S1' })).statusCode, 400, 'a misspelt filter is refused, not ignored')
})

t.test('ingest answers 503 with Retry-After when the log is unreachable', async (t) => {
  const { app, api } = await startTestApp(t, { LANTERN_PARTITIONS: '1' })
  api.redis.disconnect()
  const res = await app.inject({ method: 'POST', url: '/v1/metrics', payload: { id: 'x', source: 's', metric: 'm', ts: Date.now(), value: 1 } })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '2')
  t.equal(res.json().code, 'LOG_UNAVAILABLE')
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 503)
})
