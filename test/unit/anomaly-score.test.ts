import t from 'tap'
import { scoreOf, scoreThreshold, TailCalibration, thresholdFactor } from '../../src/domain/anomaly/score.js'

t.test('the score is monotone in [0, 1], 0.75 at the default threshold', async (t) => {
  let prev = -1
  let monotone = true
  for (let u = 0; u <= 4; u += 0.01) {
    const s = scoreOf(u)
    if (!(s >= prev && s >= 0 && s <= 1)) monotone = false
    prev = s
  }
  t.ok(monotone)
  t.equal(scoreOf(0), 0)
  t.equal(scoreOf(Number.NaN), 0)
  t.ok(Math.abs(scoreOf(1) - 0.75) < 1e-12)
  t.equal(thresholdFactor(0.5), 1)
  t.ok(Math.abs(scoreThreshold(0.5) - 0.75) < 1e-12)
})

t.test('higher sensitivity, lower threshold; out-of-range sensitivities are clamped', async (t) => {
  const ts = [0, 0.25, 0.5, 0.75, 1].map(scoreThreshold)
  for (let i = 1; i < ts.length; i++) t.ok(ts[i]! < ts[i - 1]!)
  t.equal(thresholdFactor(-3), thresholdFactor(0))
  t.equal(thresholdFactor(7), thresholdFactor(1))
  t.equal(thresholdFactor(Number.NaN), thresholdFactor(0.5))
})

t.test('tail calibration leaves Gaussian deviations alone and shrinks heavy-tailed ones', async (t) => {
  let s = 12345
  const uniform = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s + 0.5) / 4294967296
  }
  const normal = (): number => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform())
  const gauss = new TailCalibration()
  const heavy = new TailCalibration()
  for (let i = 0; i < 20_000; i++) {
    gauss.observe(Math.abs(normal()))
    // Student t with 2 degrees of freedom
    const chi = normal() ** 2 + normal() ** 2
    heavy.observe(Math.abs(normal() / Math.sqrt(chi / 2)))
  }
  t.equal(gauss.factor(), 1, `gaussian: 99th percentile ~${gauss.t.toFixed(2)}`)
  t.ok(heavy.factor() < 0.6, `t(2): 99th percentile ~${heavy.t.toFixed(2)}, factor ${heavy.factor().toFixed(2)}`)
})
