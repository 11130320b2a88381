import t from 'tap'
import { foldBatch } from '../../src/domain/fold.js'
import { bucketStart } from '../../src/domain/windows.js'
import type { MetricEvent } from '../../src/schemas/metric-event.js'

const ev = (id: string, ts: number, value: number, dims: Record<string, string> = { s: 'a' }): MetricEvent => ({ id, source: 'src', metric: 'm', ts, value, dims })
const T = Date.parse('2026-11-22T08:00:00Z')

t.test('events fold into 1m, 5m, 1h and 1d buckets by event time', async (t) => {
  const r = foldBatch([ev('1', T + 59_999, 1), ev('2', T + 60_000, 2), ev('3', T + 10, 3)], 0, { latenessMs: 120_000, dayOffsetMs: 0 })
  const sb = r.series.get('m{"s":"a"}')
  t.ok(sb)
  const minute = sb?.buckets.get(`60:${T}`)
  t.same(minute?.values, [1, 3])
  t.same(sb?.buckets.get(`60:${T + 60_000}`)?.values, [2])
  t.same(sb?.buckets.get(`300:${T}`)?.values, [1, 2, 3])
  t.same(sb?.buckets.get(`86400:${T - 8 * 3_600_000}`)?.values, [1, 2, 3])
  t.equal(r.watermarkMs, T + 60_000)
})

t.test('late events beyond the allowed lateness are counted on their series, not folded', async (t) => {
  const r = foldBatch([ev('1', T, 1), ev('2', T - 30_000, 2), ev('3', T - 61_000, 3), ev('4', T - 120_000, 4, { s: 'b' })], T - 5_000, {
    latenessMs: 60_000,
    dayOffsetMs: 0,
  })
  t.equal(r.lateEvents, 2)
  t.equal(r.series.get('m{"s":"a"}')?.lateEvents, 1)
  t.equal(r.series.get('m{"s":"a"}')?.events, 3)
  t.equal(r.series.get('m{"s":"b"}')?.buckets.size, 0)
  t.equal(r.series.get('m{"s":"b"}')?.lastLateTs, T - 120_000)
})

t.test('day buckets start at local midnight of the configured offset', async (t) => {
  const offset = 7 * 3_600_000
  t.equal(bucketStart(Date.parse('2026-11-22T16:59:59Z'), '1d', offset), Date.parse('2026-11-21T17:00:00Z'))
  t.equal(bucketStart(Date.parse('2026-11-22T17:00:00Z'), '1d', offset), Date.parse('2026-11-22T17:00:00Z'))
})
