import t from 'tap'
import { DEFAULT_DETECTOR_CONFIG, SeriesDetector, type DetectorConfig, type Verdict } from '../../src/domain/anomaly/series-detector.js'
import { scoreThreshold } from '../../src/domain/anomaly/score.js'
import { AnomalyStateError } from '../../src/domain/anomaly/state-codec.js'

const MIN = 60_000
const DAY = 86_400_000
const T0 = Date.UTC(2026, 2, 2) // a Monday
const STEP = 5 * MIN
const PER_DAY = DAY / STEP

/** Seeded standard normal values (LCG + Box-Muller): deterministic test series. */
function normals(seed: number): () => number {
  let s = seed >>> 0
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s + 0.5) / 4294967296
  }
  return () => Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next())
}

/** 5-minute samples over `days` days: base 100, a big daily peak (to 500 at 14:00), noise sigma 5. */
function dailyPeak(days: number, seed: number): number[] {
  const z = normals(seed)
  return Array.from({ length: days * PER_DAY }, (_, i) => {
    const h = (i % PER_DAY) / 12
    return 100 + 400 * Math.exp(-0.5 * ((h - 14) / 1.5) ** 2) + 5 * z()
  })
}

function run(values: number[], config: DetectorConfig = DEFAULT_DETECTOR_CONFIG, d = SeriesDetector.create(config)): Verdict[] {
  return values.map((v, i) => d.observe(T0 + i * STEP, v) as Verdict)
}

const flaggedAt = (vs: Verdict[]): number[] => vs.flatMap((v, i) => (v.flagged ? [i] : []))

t.test('a daily series: the injected anomalies are flagged, the regular daily peak is not', async (t) => {
  for (const seed of [1, 2, 3]) {
    const values = dailyPeak(9, seed)
    const spike = 6 * PER_DAY + 168 // day 6 at 14:00, on top of the peak
    const dip = 7 * PER_DAY + 30 // day 7 at 02:30, in the quiet night
    values[spike] = values[spike]! + 120
    values[dip] = values[dip]! - 45
    const verdicts = run(values)
    const flags = flaggedAt(verdicts)
    t.ok(verdicts[spike]!.flagged, `seed ${seed}: spike on the peak flagged`)
    t.ok(verdicts[dip]!.flagged, `seed ${seed}: dip in the night flagged`)
    t.ok(verdicts[spike]!.detectors.includes('seasonal'), 'the seasonal baseline is authoritative')
    t.ok(verdicts[spike]!.expected > 400 && verdicts[spike]!.high < values[spike]!, 'the expected range is the peak, the value above it')
    // once the seasonal baseline is ready (day 3 on) nothing but the anomalies is flagged
    t.same(
      flags.filter((i) => i >= 3 * PER_DAY),
      [spike, dip],
      `seed ${seed}: no flag at the peak from day 3 on`,
    )
    // and even before, the peak itself hardly ever is
    t.ok(flags.filter((i) => i < 3 * PER_DAY).length <= 2, `seed ${seed}: at most 2 flags in the first 3 days (${flags.filter((i) => i < 3 * PER_DAY)})`)
  }
})

t.test('warm-up: no flag and score 0 before minHistory samples', async (t) => {
  const values = Array.from({ length: 40 }, (_, i) => (i === 5 ? 1000 : i === 20 ? -1000 : 10 + (i % 3)))
  const verdicts = run(values, { ...DEFAULT_DETECTOR_CONFIG, minHistory: 30 })
  t.same(flaggedAt(verdicts), [])
  t.ok(verdicts.slice(0, 30).every((v) => v.score === 0))
  const later = run([...values, 1000], { ...DEFAULT_DETECTOR_CONFIG, minHistory: 30 })
  t.ok(later[40]!.flagged, 'after the warm-up the same jump is flagged')
})

t.test('out-of-order and duplicate timestamps are not scored and change nothing', async (t) => {
  const d = SeriesDetector.create(DEFAULT_DETECTOR_CONFIG)
  run(dailyPeak(1, 4).slice(0, 100), DEFAULT_DETECTOR_CONFIG, d)
  const before = d.encode()
  t.equal(d.samples, 100)
  t.equal(d.observe(T0 + 99 * STEP, 5), null, 'same timestamp')
  t.equal(d.observe(T0 + 50 * STEP, 5), null, 'older timestamp')
  t.equal(d.observe(T0 + 100 * STEP, Number.NaN), null, 'not a number')
  t.equal(d.observe(Number.NaN, 5), null, 'no timestamp')
  t.equal(d.samples, 100)
  t.same(d.encode(), before, 'state unchanged')
  t.ok(d.observe(T0 + 100 * STEP, 100))
})

t.test('deterministic, and encode/decode mid-stream continues exactly like the uninterrupted detector', async (t) => {
  const values = dailyPeak(10, 7)
  values[5 * PER_DAY + 100] = values[5 * PER_DAY + 100]! + 200
  for (let i = 8 * PER_DAY; i < 8 * PER_DAY + 30; i++) values[i] = values[i]! - 80 // an outage
  for (const config of [DEFAULT_DETECTOR_CONFIG, { ...DEFAULT_DETECTOR_CONFIG, seasonality: 'weekly' as const, sensitivity: 0.8 }]) {
    const reference = run(values, config)
    t.same(run(values, config), reference, 'same inputs, same verdicts')
    // persist after every "batch" (of 97 samples, and of a single sample), resume from the bytes
    for (const batch of [97, 1]) {
      let d = SeriesDetector.create(config)
      const resumed: Verdict[] = []
      for (let i = 0; i < values.length; i++) {
        if (i % batch === 0) d = SeriesDetector.decode(d.encode(), config)
        resumed.push(d.observe(T0 + i * STEP, values[i]!) as Verdict)
      }
      t.same(resumed, reference, `${config.seasonality}, batches of ${batch}: resumed verdicts equal the uninterrupted ones`)
    }
    const d = SeriesDetector.create(config)
    run(values, config, d)
    t.same(SeriesDetector.decode(d.encode(), config).encode(), d.encode(), 'decode(encode()) encodes to the same bytes')
    t.equal(d.samples, values.length)
  }
})

t.test('a weekly pattern under daily seasonality: only the first weekend is news', async (t) => {
  const z = normals(17)
  const values = Array.from({ length: 28 * PER_DAY }, (_, i) => {
    const day = Math.floor(i / PER_DAY) // day 0 is a Monday
    const h = (i % PER_DAY) / 12
    const amplitude = day % 7 < 5 ? 300 : 100
    return 50 + amplitude * Math.exp(-0.5 * ((h - 13) / 3) ** 2) + 5 * z()
  })
  const flags = flaggedAt(run(values))
  t.same(
    flags.filter((i) => i >= 7 * PER_DAY),
    [],
    `weeks 2 to 4: no flags (week 1: ${flags.length})`,
  )
})

t.test('state is compact', async (t) => {
  const d = SeriesDetector.create(DEFAULT_DETECTOR_CONFIG)
  run(dailyPeak(15, 8), DEFAULT_DETECTOR_CONFIG, d)
  const bytes = d.encode().length
  t.ok(bytes < 2500, `daily: ${bytes} bytes`)
  const w = SeriesDetector.create({ ...DEFAULT_DETECTOR_CONFIG, seasonality: 'weekly' })
  run(dailyPeak(15, 8), { ...DEFAULT_DETECTOR_CONFIG, seasonality: 'weekly' }, w)
  t.ok(w.encode().length < 5000, `weekly: ${w.encode().length} bytes`)
})

t.test('decode under a changed configuration keeps what it can and never throws', async (t) => {
  const values = dailyPeak(6, 9)
  const d = SeriesDetector.create(DEFAULT_DETECTOR_CONFIG)
  run(values, DEFAULT_DETECTOR_CONFIG, d)
  const state = d.encode()
  const variants: Array<Partial<DetectorConfig>> = [
    { window: 30 },
    { window: 200, minHistory: 100 },
    { seasonality: 'weekly' },
    { detectors: ['robust_z'] },
    { sensitivity: 0.9 },
  ]
  for (const change of variants) {
    const config = { ...DEFAULT_DETECTOR_CONFIG, ...change }
    const r = SeriesDetector.decode(state, config)
    t.equal(r.samples, d.samples, `${JSON.stringify(change)}: sample count kept`)
    const next = r.observe(T0 + values.length * STEP, 100)
    t.ok(next && next.score >= 0 && next.score <= 1, `${JSON.stringify(change)}: observes`)
  }
  // the seasonal profile survives a window change: the peak of day 7 is still not flagged
  const narrower = SeriesDetector.decode(state, { ...DEFAULT_DETECTOR_CONFIG, window: 30 })
  const day7 = dailyPeak(7, 9).slice(6 * PER_DAY)
  const verdicts = day7.map((v, i) => narrower.observe(T0 + (6 * PER_DAY + i) * STEP, v) as Verdict)
  t.same(flaggedAt(verdicts), [], 'profile kept across a window change')
  t.equal(SeriesDetector.decode(Buffer.alloc(0), DEFAULT_DETECTOR_CONFIG).samples, 0, 'empty state: a fresh detector')
  t.throws(() => SeriesDetector.decode(Buffer.from('{"not":"state"}'), DEFAULT_DETECTOR_CONFIG), AnomalyStateError)
  t.throws(() => SeriesDetector.decode(state.subarray(0, 100), DEFAULT_DETECTOR_CONFIG), AnomalyStateError)
})

t.test('a constant series: float jitter is not flagged, a real jump is', async (t) => {
  const values = Array.from({ length: 200 }, (_, i) => (i % 2 ? 0.1 + 0.2 : 0.3)) // 0.30000000000000004 vs 0.3
  const quiet = run(values)
  t.same(flaggedAt(quiet), [], 'jitter')
  const jumped = run([...values, 0.31])
  t.ok(jumped[200]!.flagged, 'a jump of 3%')
  t.ok(jumped[200]!.detectors.includes('robust_z'))
})

t.test('a quantized series that mostly repeats a value: the usual quantum is not news, a big change is', async (t) => {
  const z = normals(11)
  const values = Array.from({ length: 3000 }, (): number => {
    const u = z()
    return u > 2.1 ? 2.1 : u < -2.3 ? 1.9 : 2.0
  })
  values[2500] = 9
  const verdicts = run(values)
  // (the very first 2.1 or 1.9 after a constant start may flag: until then the series was constant)
  t.same(
    flaggedAt(verdicts).filter((i) => i > 300),
    [2500],
  )
})

t.test('noise gives (almost) no flags; spikes and a level shift do, the shift only briefly', async (t) => {
  const z = normals(12)
  const noise = Array.from({ length: 5000 }, () => 50 + 2 * z())
  t.ok(flaggedAt(run(noise)).length <= 1, `pure noise: ${flaggedAt(run(noise))}`)
  const values = [...noise]
  for (const i of [1000, 2000, 3000]) values[i] = values[i]! + 24 // 12 sigma
  for (let i = 4000; i < values.length; i++) values[i] = values[i]! - 16 // 8 sigma down for good
  const verdicts = run(values)
  const flags = flaggedAt(verdicts)
  for (const i of [1000, 2000, 3000, 4000]) t.ok(verdicts[i]!.flagged, `flagged at ${i}`)
  const afterShift = flags.filter((i) => i >= 4000)
  t.ok(afterShift.length <= 10 && afterShift.every((i) => i < 4030), `a short burst after the shift: ${afterShift}`)
  t.ok(flags.filter((i) => i < 4000).length <= 4, `nothing else: ${flags}`)
})

t.test('a gap of days in the data breaks nothing', async (t) => {
  const values = dailyPeak(10, 13)
  const d = SeriesDetector.create(DEFAULT_DETECTOR_CONFIG)
  const verdicts: Verdict[] = []
  for (let i = 0; i < values.length; i++) {
    if (i >= 4 * PER_DAY && i < 6 * PER_DAY + 100) continue // two days and 8 hours missing
    verdicts.push(d.observe(T0 + i * STEP, values[i]!) as Verdict)
  }
  const afterGap = verdicts.slice(4 * PER_DAY)
  t.ok(flaggedAt(afterGap).length <= 1, `after the gap: ${flaggedAt(afterGap).length} flags`)
  t.ok(afterGap.every((v) => Number.isFinite(v.score) && Number.isFinite(v.expected) && v.low <= v.high))
})

t.test('sensitivity orders the flags; flagged iff score >= the sensitivity threshold', async (t) => {
  const z = normals(14)
  const values = Array.from({ length: 4000 }, (_, i) => 20 + 1.5 * z() + (i % 500 === 250 ? (i / 500) * 1.5 : 0))
  let previous = -1
  for (const sensitivity of [0, 0.25, 0.5, 0.75, 1]) {
    const verdicts = run(values, { ...DEFAULT_DETECTOR_CONFIG, sensitivity })
    const n = flaggedAt(verdicts).length
    t.ok(n >= previous, `sensitivity ${sensitivity}: ${n} flags`)
    previous = n
    const thr = scoreThreshold(sensitivity)
    t.ok(
      verdicts.every((v) => v.score >= 0 && v.score <= 1 && v.flagged === v.score >= thr && v.flagged === v.detectors.length > 0),
      'score and flag agree',
    )
  }
})

t.test('only the configured detectors vote', async (t) => {
  const values = dailyPeak(6, 15)
  values[5 * PER_DAY] = values[5 * PER_DAY]! + 300
  for (const only of ['robust_z', 'ewma', 'seasonal'] as const) {
    const verdicts = run(values, { ...DEFAULT_DETECTOR_CONFIG, detectors: [only] })
    t.ok(
      verdicts.every((v) => v.detectors.every((name) => name === only)),
      `${only} alone`,
    )
  }
  const robustOnly = run(values, { ...DEFAULT_DETECTOR_CONFIG, detectors: ['robust_z'] })
  t.ok(robustOnly[5 * PER_DAY]!.flagged)
  t.same(
    flaggedAt(run(values, { ...DEFAULT_DETECTOR_CONFIG, detectors: [] })),
    [],
    'no detector, no flag',
  )
})

t.test('cost per observe stays in the microseconds', async (t) => {
  const values = dailyPeak(20, 16)
  run(values) // warm up the JIT
  const t0 = process.hrtime.bigint()
  run(values)
  const ns = Number(process.hrtime.bigint() - t0) / values.length
  t.ok(ns < 20_000, `${Math.round(ns)} ns per observe`)
})
