import { Ewma, EWMA_REF_Z } from './ewma.js'
import { ROBUST_REF_Z, RobustZ } from './robust-z.js'
import { scoreOf, thresholdFactor } from './score.js'
import { Seasonal, SEASONAL_REF_Z, type Seasonality } from './seasonal.js'
import { AnomalyStateError, StateReader, StateWriter } from './state-codec.js'

export type DetectorName = 'robust_z' | 'ewma' | 'seasonal'

export interface DetectorConfig {
  /** Which detectors run; default all three. */
  detectors: DetectorName[]
  /** 0..1, default 0.5; higher flags more readily. */
  sensitivity: number
  /** Period of the seasonal baseline; default 'daily'. */
  seasonality: 'daily' | 'weekly'
  /** Robust z-score rolling window in samples; default 60. */
  window: number
  /** Warm-up: no flag before this many samples of the series; default 30. */
  minHistory: number
}

export const DEFAULT_DETECTOR_CONFIG: DetectorConfig = Object.freeze({
  detectors: Object.freeze(['robust_z', 'ewma', 'seasonal']) as unknown as DetectorName[],
  sensitivity: 0.5,
  seasonality: 'daily',
  window: 60,
  minHistory: 30,
}) as DetectorConfig

export interface Verdict {
  /** In [0, 1]; every sample gets one (0 during warm-up). */
  score: number
  flagged: boolean
  /** Detectors that flagged this sample (empty when not flagged). */
  detectors: DetectorName[]
  /** The baseline value the authoritative detector expected. */
  expected: number
  /** Expected range: values inside it would not have been flagged by that detector. */
  low: number
  high: number
}

const FORMAT_MAGIC = 0x4c // 'L'
const FORMAT_VERSION = 1
const SEASONALITY_CODE: Record<Seasonality, number> = { daily: 1, weekly: 2 }
/** Where the profile has a say, the time-blind detectors' scores (as deviations relative to their
 * thresholds) are capped at this multiple of the seasonal one. */
const VETO_BOOST = 1.5
const DEFAULT_DT = 60_000
/**
 * Every detector's scale is at least STEP_FLOOR times the mean non-zero step between consecutive
 * values (memory about 1/STEP_ALPHA steps). On a continuous series this is far below the noise and
 * changes nothing; on a quantized one that mostly repeats a value (a CPU at 2.0 that reads 2.1 now
 * and then) a single quantum is no longer an infinite z-score. A constant series has no step yet,
 * so its first jump is still flagged.
 */
const STEP_FLOOR = 0.5
/**
 * The EWMA chart votes only once the series spans a day: its control limits come from the
 * observed spread of its statistics, and until they have seen a whole daily cycle the first
 * morning rise of a seasonal series would look like a shift.
 */
const EWMA_WARMUP_MS = 86_400_000
const STEP_ALPHA = 0.01
/** The chart on the seasonal residual needs this much more than the chart on raw values. */
const RESID_REF_FACTOR = 1.3

function validDetectors(list: readonly DetectorName[] | undefined): { r: boolean; e: boolean; s: boolean } {
  const l = list ?? DEFAULT_DETECTOR_CONFIG.detectors
  return { r: l.includes('robust_z'), e: l.includes('ewma'), s: l.includes('seasonal') }
}

function normalize(config: DetectorConfig): DetectorConfig {
  const d = DEFAULT_DETECTOR_CONFIG
  const window = Number.isInteger(config.window) && config.window >= 5 ? Math.min(config.window, 4096) : d.window
  const minHistory = Number.isFinite(config.minHistory) && config.minHistory >= 0 ? Math.floor(config.minHistory) : d.minHistory
  const sensitivity = Number.isFinite(config.sensitivity) ? Math.min(1, Math.max(0, config.sensitivity)) : d.sensitivity
  const seasonality = config.seasonality === 'weekly' ? 'weekly' : 'daily'
  return { detectors: config.detectors ?? d.detectors, sensitivity, seasonality, window, minHistory }
}

/**
 * Anomaly detection for one series, on event time. Three detectors see every sample:
 *
 * - robust_z: distance from the rolling median in robust standard deviations (spikes, dips, the
 *   start of a level shift);
 * - ewma: an EWMA control chart against a slow mean (sustained shifts, drifts, stuck values too
 *   small for a single sample to stand out). A second chart of the same kind runs on the seasonal
 *   residual (value minus profile) and speaks for 'ewma' once the profile is authoritative;
 * - seasonal: distance from the time-of-day profile (with a day-of-week correction) plus the
 *   current level.
 *
 * How they combine, per sample:
 * 1. Warm-up (fewer than minHistory samples): score 0, no flag. The raw EWMA chart also waits
 *    until the series spans a day.
 * 2. Before the profile knows this time of day: the larger robust_z / ewma score decides.
 * 3. Once the profile has one earlier cycle it is a second opinion (a veto) while its worth is
 *    being judged, and afterwards if it proved "strong" (it explains the series clearly better
 *    than a level alone): robust_z / ewma count only as far as the profile partly agrees, so the
 *    regular daily peak does not flag from day two on.
 * 4. Once it has SEASONAL_MIN_CYCLES earlier cycles (3 days, or 2 weeks) and is strong, it is
 *    authoritative: the score is the largest of the seasonal score, the residual chart's score,
 *    and the others' scores capped by the seasonal agreement.
 * On a series without a real daily shape the profile never becomes strong and step 2 applies
 * throughout. Disabled detectors keep their state (enabling one later needs no warm-up) but
 * never vote; with only 'seasonal' enabled it votes whenever it has enough cycles.
 *
 * Deterministic: the verdicts depend only on the samples and their order; encode() captures the
 * whole state, so decode(encode()) continues exactly like the uninterrupted detector.
 */
export class SeriesDetector {
  private readonly config: DetectorConfig
  private readonly useR: boolean
  private readonly useE: boolean
  private readonly useS: boolean
  private readonly factor: number
  private readonly robust: RobustZ
  private readonly ewma: Ewma
  private readonly seasonal: Seasonal
  /** The EWMA chart on the seasonal residual (value minus profile): it votes when the profile is authoritative. */
  private readonly resid: Ewma
  private residActive = false
  private n = 0
  private lastTs = -Infinity
  private dtEst = 0
  private lastValue = 0
  private firstTs = NaN
  /** Mean size of the non-zero steps between consecutive values: half of it floors every scale. */
  private step = 0
  private stepN = 0

  private constructor(config: DetectorConfig) {
    this.config = normalize(config)
    const use = validDetectors(this.config.detectors)
    this.useR = use.r
    this.useE = use.e
    this.useS = use.s
    this.factor = thresholdFactor(this.config.sensitivity)
    this.robust = new RobustZ(this.config.window)
    this.ewma = new Ewma()
    this.seasonal = new Seasonal(this.config.seasonality)
    this.resid = new Ewma()
  }

  static create(config: DetectorConfig = DEFAULT_DETECTOR_CONFIG): SeriesDetector {
    return new SeriesDetector(config)
  }

  /**
   * Restores state written by encode(). A changed window keeps the newest values that fit; a
   * changed seasonality starts the seasonal profile afresh; sensitivity, detectors and minHistory
   * are not part of the state. An empty buffer gives a fresh detector; a buffer that is not
   * detector state (or is truncated) throws AnomalyStateError.
   */
  static decode(state: Uint8Array, config: DetectorConfig = DEFAULT_DETECTOR_CONFIG): SeriesDetector {
    const d = new SeriesDetector(config)
    if (state.byteLength === 0) return d
    const r = new StateReader(state)
    if (r.u8() !== FORMAT_MAGIC) throw new AnomalyStateError('not anomaly detector state')
    const version = r.u8()
    if (version !== FORMAT_VERSION) throw new AnomalyStateError(`unknown anomaly state version ${version}`)
    d.n = r.f64()
    d.lastTs = r.f64()
    d.dtEst = r.f64()
    d.firstTs = r.f64()
    d.lastValue = r.f64()
    d.step = r.f64()
    d.stepN = r.f64()
    const count = r.u16()
    const values = new Array<number>(count)
    r.f64s(values, count)
    d.robust.window.load(values)
    d.robust.tail.t = r.f64()
    d.ewma.decode(r)
    const code = r.u8()
    if (code === SEASONALITY_CODE[d.seasonal.seasonality]) {
      d.seasonal.decode(r)
      d.resid.decode(r)
    } else if (code !== 1 && code !== 2) throw new AnomalyStateError(`unknown seasonality code ${code}`)
    return d
  }

  /**
   * Compact binary state (little-endian, versioned): about 2.2 KB with the default window of 60
   * and daily seasonality (the window's 60 values, two EWMA charts, 48 profile slots, 21
   * day-of-week knots); about 4.7 KB with weekly seasonality (168 slots). Each extra window sample
   * adds 8 bytes.
   */
  encode(): Buffer {
    const w = new StateWriter(2048 + this.seasonal.slots * 25)
    w.u8(FORMAT_MAGIC)
    w.u8(FORMAT_VERSION)
    w.f64(this.n)
    w.f64(this.lastTs)
    w.f64(this.dtEst)
    w.f64(this.firstTs)
    w.f64(this.lastValue)
    w.f64(this.step)
    w.f64(this.stepN)
    const values = this.robust.window.values()
    w.u16(values.length)
    w.f64s(values)
    w.f64(this.robust.tail.t)
    this.ewma.encode(w)
    w.u8(SEASONALITY_CODE[this.seasonal.seasonality])
    this.seasonal.encode(w)
    this.resid.encode(w)
    return w.done()
  }

  /** Samples observed so far. */
  get samples(): number {
    return this.n
  }

  /** The last observed event time (epoch ms), -Infinity before the first sample. */
  get lastTimestamp(): number {
    return this.lastTs
  }

  /**
   * Feeds one sample in event-time order. Returns null (and changes nothing) when ts <= the last
   * observed ts (out-of-order samples are not scored) or when ts or value is not a finite number.
   */
  observe(ts: number, value: number): Verdict | null {
    if (!(ts > this.lastTs) || !Number.isFinite(ts) || !Number.isFinite(value)) return null
    if (this.n === 0) this.firstTs = ts
    else {
      const dt = ts - this.lastTs
      if (this.dtEst === 0) this.dtEst = dt
      else {
        const c = dt > 4 * this.dtEst ? 4 * this.dtEst : dt < this.dtEst / 4 ? this.dtEst / 4 : dt
        this.dtEst += 0.05 * (c - this.dtEst)
      }
    }
    const dt = this.dtEst > 0 ? this.dtEst : DEFAULT_DT
    const robust = this.robust
    const ewma = this.ewma
    const seasonal = this.seasonal
    const minScale = STEP_FLOOR * this.step
    robust.assess(value, minScale)
    ewma.assess(value, minScale)
    seasonal.assess(ts, value, minScale)
    const residual = value - seasonal.shape
    this.residActive = seasonal.has && seasonal.priorCycles >= 1
    if (this.residActive) this.resid.assess(residual, minScale)
    const verdict = this.decide(ts)
    robust.update(value)
    ewma.update(value)
    if (this.residActive) this.resid.update(residual)
    seasonal.update(value, dt, robust.ready ? robust.expected : NaN)
    if (this.n > 0) {
      const jump = Math.abs(value - this.lastValue)
      if (jump > 0) {
        this.stepN++
        this.step += Math.max(STEP_ALPHA, 1 / this.stepN) * (jump - this.step)
      }
    }
    this.lastValue = value
    this.n++
    this.lastTs = ts
    return verdict
  }

  private decide(ts: number): Verdict {
    const F = this.factor
    const robust = this.robust
    const ewma = this.ewma
    const seasonal = this.seasonal
    const warm = this.n >= this.config.minHistory
    const uR = this.useR && robust.ready ? Math.abs(robust.z) / ROBUST_REF_Z : 0
    const uE = this.useE && ts - this.firstTs >= EWMA_WARMUP_MS ? Math.abs(ewma.z) / EWMA_REF_Z : 0
    const onlySeasonal = !this.useR && !this.useE
    const uS = this.useS && seasonal.has ? Math.abs(seasonal.z) / SEASONAL_REF_Z : 0
    const sReady = this.useS && seasonal.has && seasonal.priorCycles >= seasonal.minCycles && (seasonal.strong || onlySeasonal)
    // before it is authoritative, a profile with one earlier cycle is a second opinion: while its
    // worth is still being judged (day two) and afterwards if it proved strong
    const sVeto = !sReady && this.useS && seasonal.has && seasonal.priorCycles >= 1 && !onlySeasonal && (seasonal.strong || !seasonal.judged(this.dtEst > 0 ? this.dtEst : DEFAULT_DT))
    if (!warm) {
      const src = sReady ? 's' : this.useR || !this.useE ? 'r' : 'e'
      return this.verdict(0, false, [], src)
    }
    if (sReady) {
      const uC = this.useE && this.residActive ? Math.abs(this.resid.z) / (EWMA_REF_Z * RESID_REF_FACTOR) : 0
      // the time-blind detectors count only as far as the profile partly agrees
      const cap = uS * VETO_BOOST
      const uRc = uR < cap ? uR : cap
      const uEc = uE < cap ? uE : cap
      let u = uS >= uC ? uS : uC
      if (uRc > u) u = uRc
      if (uEc > u) u = uEc
      const flagged = u >= F
      const detectors: DetectorName[] = []
      if (flagged) {
        if (uRc >= F) detectors.push('robust_z')
        if (uEc >= F || uC >= F) detectors.push('ewma')
        if (uS >= F) detectors.push('seasonal')
      }
      return this.verdict(scoreOf(u), flagged, detectors, 's')
    }
    let u = uR >= uE ? uR : uE
    const src = uR >= uE ? (this.useR ? 'r' : 'e') : 'e'
    if (sVeto) {
      const cap = uS * VETO_BOOST
      if (cap < u) u = cap
    }
    const flagged = u >= F
    const detectors: DetectorName[] = []
    if (flagged) {
      if (uR >= F) detectors.push('robust_z')
      if (uE >= F) detectors.push('ewma')
    }
    return this.verdict(scoreOf(u), flagged, detectors, src)
  }

  private verdict(score: number, flagged: boolean, detectors: DetectorName[], src: 'r' | 'e' | 's'): Verdict {
    const F = this.factor
    let expected: number
    let half: number
    if (src === 's') {
      expected = this.seasonal.expected
      half = this.seasonal.halfWidth(F)
    } else if (src === 'e') {
      expected = this.ewma.expected
      half = this.ewma.halfWidth(F)
    } else {
      expected = this.robust.expected
      half = this.robust.halfWidth(F)
    }
    if (!Number.isFinite(half)) half = 0
    return { score, flagged, detectors, expected, low: expected - half, high: expected + half }
  }
}
