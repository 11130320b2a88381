import t from 'tap'
import { RollingWindow } from '../../src/domain/anomaly/rolling-window.js'

/** Deterministic values with repeats and negatives (LCG). */
function values(n: number, seed: number, levels = 0): number[] {
  let x = seed >>> 0
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    const u = x / 4294967296
    out.push(levels > 0 ? Math.floor(u * levels) : Math.round((u * 200 - 50) * 100) / 100)
  }
  return out
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const h = s.length >> 1
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2
}
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  const p = q * (s.length - 1)
  const i = Math.floor(p)
  return i >= s.length - 1 ? s[s.length - 1]! : s[i]! + (s[i + 1]! - s[i]!) * (p - i)
}

t.test('median, MAD, quantiles and counts equal a full sort of the last n values at every step', async (t) => {
  for (const [capacity, levels] of [
    [1, 0],
    [2, 0],
    [5, 0],
    [60, 0],
    [60, 4],
    [61, 0],
  ] as const) {
    const w = new RollingWindow(capacity)
    const xs = values(600, capacity * 31 + levels, levels)
    let bad = 0
    for (let i = 0; i < xs.length; i++) {
      w.push(xs[i]!)
      const last = xs.slice(Math.max(0, i + 1 - capacity), i + 1)
      const med = median(last)
      const mad = median(last.map((v) => Math.abs(v - med)))
      const probe = xs[(i * 7) % xs.length]!
      if (w.size !== last.length) bad++
      if (w.median() !== med) bad++
      if (Math.abs(w.mad(med) - mad) > 1e-12) bad++
      for (const q of [0, 0.05, 0.5, 0.95, 1]) if (Math.abs(w.quantile(q) - quantile(last, q)) > 1e-9) bad++
      if (w.countAtLeast(probe) !== last.filter((v) => v >= probe).length) bad++
      if (w.countAtMost(probe) !== last.filter((v) => v <= probe).length) bad++
      if (JSON.stringify(w.values()) !== JSON.stringify(last)) bad++
    }
    t.equal(bad, 0, `capacity ${capacity}${levels ? `, ${levels} distinct values` : ''}`)
  }
})

t.test('load keeps the newest values that fit', async (t) => {
  const w = new RollingWindow(3)
  w.load([1, 2, 3, 4, 5])
  t.same(w.values(), [3, 4, 5])
  t.equal(w.median(), 4)
  w.push(0)
  t.same(w.values(), [4, 5, 0])
  t.equal(w.median(), 4)
  t.equal(w.quantile(0), 0)
  t.equal(w.quantile(1), 5)
})

t.test('an empty window has no median; a bad capacity is refused', async (t) => {
  t.ok(Number.isNaN(new RollingWindow(4).median()))
  t.throws(() => new RollingWindow(0), RangeError)
  t.throws(() => new RollingWindow(2.5), RangeError)
})
