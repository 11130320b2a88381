import t from 'tap'
import * as ss from 'simple-statistics'
import { addValue, emptyBucket, fromStored, mergeInto, observeLast, summarize, toStored } from '../../src/domain/bucket.js'

/** Deterministic values with spread, negatives and repeats, like real sensor readings. */
function values(n: number, seed: number): number[] {
  let x = seed
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648
    out.push(Math.round(((x / 2147483648) * 400 - 50) * 100) / 100)
  }
  return out
}

/** The value at rank floor(q * (n - 1)) of the sorted sample: the quantile DDSketch estimates. */
const rankQuantile = (sorted: number[], q: number): number => sorted[Math.floor(q * (sorted.length - 1))] as number

t.test('a bucket summarises its samples like an independent computation', async (t) => {
  const xs = values(5000, 7)
  const b = emptyBucket()
  for (const x of xs) addValue(b, x)
  const s = summarize(b)
  t.equal(s.count, xs.length)
  t.ok(Math.abs(s.sum - ss.sum(xs)) < 1e-6, 'sum')
  t.equal(s.min, ss.min(xs))
  t.equal(s.max, ss.max(xs))
  t.ok(Math.abs((s.mean as number) - ss.mean(xs)) < 1e-9, 'mean')
  t.ok(Math.abs((s.stddev as number) - ss.standardDeviation(xs)) < 1e-9, 'population stddev')
  const sorted = [...xs].sort((a, b) => a - b)
  for (const [q, got] of [[0.5, s.p50], [0.95, s.p95], [0.99, s.p99]] as const) {
    const want = rankQuantile(sorted, q)
    t.ok(Math.abs((got as number) - want) <= Math.abs(want) * 0.01 + 1e-9, `p${q * 100} ${got} within 1% of ${want}`)
  }
})

t.test('merging buckets of parts equals one bucket of the whole (no average of averages)', async (t) => {
  const parts = [values(10, 1), values(3000, 2), values(1, 3), values(700, 4).map((v) => v * 1000)]
  const merged = emptyBucket()
  for (const part of parts) {
    const b = emptyBucket()
    for (const x of part) addValue(b, x)
    mergeInto(merged, fromStored(toStored(b)))
  }
  const all = parts.flat()
  const s = summarize(merged)
  t.equal(s.count, all.length)
  t.ok(Math.abs((s.mean as number) - ss.mean(all)) < 1e-6)
  t.ok(Math.abs((s.stddev as number) - ss.standardDeviation(all)) / ss.standardDeviation(all) < 1e-9)
  t.equal(s.min, ss.min(all))
  t.equal(s.max, ss.max(all))
  const want = rankQuantile([...all].sort((a, b) => a - b), 0.99)
  t.ok(Math.abs((s.p99 as number) - want) <= Math.abs(want) * 0.01, `merged p99 ${s.p99} within 1% of ${want}`)
})

t.test('an empty bucket reports nulls, not zeros', async (t) => {
  const s = summarize(emptyBucket())
  t.same(s, { count: 0, sum: 0, min: null, max: null, mean: null, stddev: null, p50: null, p95: null, p99: null, last: null, lastTs: null })
})

t.test('the last value is the sample with the latest event time, whatever the merge order', async (t) => {
  const a = emptyBucket()
  addValue(a, 518)
  observeLast(a, Date.parse('2020-12-31T00:00:00Z'), 518)
  const b = emptyBucket()
  addValue(b, 400)
  observeLast(b, Date.parse('2020-06-30T00:00:00Z'), 400)
  for (const [x, y] of [[a, b], [b, a]] as const) {
    const m = emptyBucket()
    mergeInto(m, fromStored(toStored(x)))
    mergeInto(m, fromStored(toStored(y)))
    t.equal(summarize(m).last, 518)
    t.equal(summarize(m).lastTs, '2020-12-31T00:00:00.000Z')
  }
})

t.test('the compact sketch encoding round-trips every bin, negatives and zeros included', async (t) => {
  const typical = emptyBucket()
  for (const x of values(3000, 9)) addValue(typical, Math.abs(x))
  t.ok(toStored(typical).sketch.length < 800, `a typical bucket encodes in ${toStored(typical).sketch.length} bytes`)
  const b = emptyBucket()
  for (const x of [...values(3000, 9), 0, 0, -0.5, -1234.5, 1e9, 1e-9]) addValue(b, x)
  const stored = toStored(b)
  const back = fromStored(stored)
  for (const q of [0, 0.001, 0.01, 0.25, 0.5, 0.75, 0.95, 0.99, 1]) {
    t.equal(back.sketch.getValueAtQuantile(q), b.sketch.getValueAtQuantile(q), `q${q}`)
  }
  t.equal(back.sketch.zeroCount, 2)
})
