import type { StateReader, StateWriter } from './state-codec.js'

/** Standardized deviation of a chart statistic that flags at sensitivity 0.5. */
export const EWMA_REF_Z = 5
/** Slow mean (the in-control level) and the values' variance: about 100 samples of memory. */
const ALPHA = 0.01
/** Memory of the chart statistics' variances: about 1000 samples, so a drift cannot hide in it. */
const ALPHA_D = 0.001
/** Smoothing of the two chart statistics: a quick one for shifts, a slow one for small sustained changes. */
const LAMBDA_FAST = 0.25
const LAMBDA_SLOW = 0.05
/** Values enter the chart winsorized at mean +- CLIP sigma: one spike cannot move it much. */
const CLIP = 4
/** The statistics' deviations enter their variance winsorized at this many sigmas. */
const CLIP_D = 2.5
/** After this many consecutive samples beyond ADOPT_U of the reference in one direction the level is adopted. */
const ADOPT_RUN = 6
const ADOPT_U = 1
/** For this many samples after adopting a level, a value back at the previous level restores it. */
const REVERT_HORIZON = 500
const REVERT_SIGMAS = 2.5
/** Samples before winsorizing starts (the spread is not known yet). */
const WARM = 10
const statSigma = (lambda: number): number => Math.sqrt(lambda / (2 - lambda))
const SIG_FAST = statSigma(LAMBDA_FAST)
const SIG_SLOW = statSigma(LAMBDA_SLOW)

/**
 * EWMA control chart with empirical control limits. Two chart statistics, EWMAs of the
 * winsorized values with lambda 0.25 (quick) and 0.05 (slow), are compared with a slow mean m
 * (alpha 0.01); each deviation is standardized by its own observed spread over about 1000 samples
 * (not the white-noise formula), so autocorrelated series such as a wandering sensor calibrate
 * themselves. The larger of the two standardized deviations is the chart's z.
 *
 * Winsorizing at m +- 4 sigma keeps one spike from moving the chart (spikes are the robust
 * z-score's job); a sustained shift, a drift or a stuck-at value moves the statistics step by
 * step. When the chart stays out of control in one direction for ADOPT_RUN samples the new level
 * (the mean of those samples) is adopted and the slow mean restarts from it, so a level shift
 * gives a short burst, not an endless alarm; if the series comes back to the previous level
 * within REVERT_HORIZON samples, that level is restored without a flag.
 */
export class Ewma {
  private n = 0
  private m = 0
  private vx = 0
  private f1 = 0
  private f2 = 0
  private vd1 = 0
  private vd2 = 0
  private nLevel = 0
  private run = 0
  private runSum = 0
  private mPrev = 0
  private sinceAdopt = REVERT_HORIZON
  /** Outputs of the last assess(). */
  z = 0
  expected = NaN
  private sx = 0
  private sd1 = 0
  private sd2 = 0
  private f1Next = 0
  private f2Next = 0
  private xClipped = 0
  private revert = false

  /** `minScale`: a floor for the values' sigma in value units (the series' typical step). */
  assess(x: number, minScale = 0): void {
    this.revert = false
    if (this.n === 0) {
      this.z = 0
      this.expected = x
      this.sx = 0
      this.f1Next = this.f2Next = this.xClipped = x
      return
    }
    const m = this.m
    const floor = Math.max(1e-9 * Math.abs(m), minScale) || Number.MIN_VALUE
    let sx = Math.sqrt(this.vx)
    if (!(sx > floor)) sx = floor
    const lim = this.n < WARM ? Infinity : CLIP * sx
    const xc = x > m + lim ? m + lim : x < m - lim ? m - lim : x
    const f1 = this.f1 + LAMBDA_FAST * (xc - this.f1)
    const f2 = this.f2 + LAMBDA_SLOW * (xc - this.f2)
    let sd1 = Math.sqrt(this.vd1)
    if (!(sd1 > floor * SIG_FAST)) sd1 = floor * SIG_FAST
    let sd2 = Math.sqrt(this.vd2)
    if (!(sd2 > floor * SIG_SLOW)) sd2 = floor * SIG_SLOW
    const z1 = (f1 - m) / sd1
    const z2 = (f2 - m) / sd2
    let z = Math.abs(z1) >= Math.abs(z2) ? z1 : z2
    if (this.sinceAdopt < REVERT_HORIZON && Math.abs(z) >= ADOPT_U * EWMA_REF_Z && Math.abs(x - this.mPrev) < REVERT_SIGMAS * sx) {
      this.revert = true
      z = (x - this.mPrev) / sx
    }
    this.sx = sx
    this.sd1 = sd1
    this.sd2 = sd2
    this.xClipped = xc
    this.f1Next = f1
    this.f2Next = f2
    this.z = z
    this.expected = m
  }

  /** Half-width of the expected range, in value units, for a threshold factor (1 = the default sensitivity). */
  halfWidth(factor: number): number {
    return factor * EWMA_REF_Z * (this.n > 0 ? Math.max(this.sx, this.sd1 / SIG_FAST) : 0)
  }

  update(x: number): void {
    if (this.n === 0) {
      this.n = 1
      this.nLevel = 1
      this.m = this.f1 = this.f2 = x
      return
    }
    this.n++
    this.nLevel++
    if (this.revert) {
      this.m = this.f1 = this.f2 = this.mPrev
      this.run = 0
      this.runSum = 0
      this.sinceAdopt = REVERT_HORIZON
      return
    }
    if (this.sinceAdopt < REVERT_HORIZON) this.sinceAdopt++
    const a = Math.max(ALPHA, 1 / this.nLevel)
    const ad = Math.max(ALPHA_D, 1 / this.n)
    const m = this.m
    const d1 = this.f1Next - m
    const d2 = this.f2Next - m
    this.f1 = this.f1Next
    this.f2 = this.f2Next
    const dev = this.xClipped - m
    this.m += a * dev
    this.vx += a * (dev * dev * (1 - a) - this.vx)
    const warm = this.n <= WARM
    const l1 = warm ? Infinity : CLIP_D * this.sd1
    const l2 = warm ? Infinity : CLIP_D * this.sd2
    const c1 = d1 > l1 ? l1 : d1 < -l1 ? -l1 : d1
    const c2 = d2 > l2 ? l2 : d2 < -l2 ? -l2 : d2
    this.vd1 += ad * (c1 * c1 - this.vd1)
    this.vd2 += ad * (c2 * c2 - this.vd2)
    // a run of out-of-control samples on one side; the new level is the mean of the run's values,
    // and the slow mean restarts from it as a running mean
    const u = this.z / EWMA_REF_Z
    if (u >= ADOPT_U) {
      if (this.run > 0) {
        this.run++
        this.runSum += x
      } else {
        this.run = 1
        this.runSum = x
      }
    } else if (u <= -ADOPT_U) {
      if (this.run < 0) {
        this.run--
        this.runSum += x
      } else {
        this.run = -1
        this.runSum = x
      }
    } else {
      this.run = 0
      this.runSum = 0
    }
    if (this.run >= ADOPT_RUN || this.run <= -ADOPT_RUN) {
      const k = Math.abs(this.run)
      this.mPrev = m
      this.sinceAdopt = 0
      this.m = this.f1 = this.f2 = this.runSum / k
      this.nLevel = k
      this.run = 0
      this.runSum = 0
    }
  }

  encode(w: StateWriter): void {
    w.f64(this.n)
    w.f64(this.m)
    w.f64(this.vx)
    w.f64(this.f1)
    w.f64(this.f2)
    w.f64(this.vd1)
    w.f64(this.vd2)
    w.f64(this.nLevel)
    w.f64(this.run)
    w.f64(this.runSum)
    w.f64(this.mPrev)
    w.f64(this.sinceAdopt)
  }

  decode(r: StateReader): void {
    this.n = r.f64()
    this.m = r.f64()
    this.vx = r.f64()
    this.f1 = r.f64()
    this.f2 = r.f64()
    this.vd1 = r.f64()
    this.vd2 = r.f64()
    this.nLevel = r.f64()
    this.run = r.f64()
    this.runSum = r.f64()
    this.mPrev = r.f64()
    this.sinceAdopt = r.f64()
  }
}
