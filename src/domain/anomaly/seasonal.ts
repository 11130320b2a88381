import { PeriodicKnots } from './periodic-knots.js'
import { TailCalibration } from './score.js'
import type { StateReader, StateWriter } from './state-codec.js'

export type Seasonality = 'daily' | 'weekly'

const HOUR = 3_600_000
const DAY = 24 * HOUR
const WEEK = 7 * DAY

/** Standardized residual that flags at sensitivity 0.5. */
export const SEASONAL_REF_Z = 5.5
/** Cycles (days or weeks) with data a slot needs before the baseline votes. */
export const SEASONAL_MIN_CYCLES: Record<Seasonality, number> = { daily: 3, weekly: 2 }
export const SEASONAL_SLOTS: Record<Seasonality, number> = { daily: 48, weekly: 168 }
const PERIOD: Record<Seasonality, number> = { daily: DAY, weekly: WEEK }
/**
 * Knots of the day-of-week correction of the daily profile: one per 8 hours of the week. Coarse on
 * purpose: a two-hour anomaly in one week is diluted four times in its knot instead of being
 * learned as next week's normal.
 */
const WEEK_KNOTS = 21
/** Values and residuals enter the baseline and spreads winsorized at this many sigmas. */
const CLIP = 4
/** Memory of the slot baseline, the slot spread and the day-of-week correction, in cycles. */
const MEM_BASE = 4
const MEM_SPREAD = 6
const MEM_WEEK = 3
/** Time constant of the level (offset of the whole profile). */
const TAU_LEVEL = 2 * HOUR
/** Time constant of the slow level the day-of-week correction is measured against. */
const TAU_SLOW = DAY
/** The day-of-week correction learns from values winsorized at this many sigmas. */
const WEEK_CLIP = 3
/** Time constant of the global spread. */
const TAU_GLOBAL = DAY
/** Time constant of the strength comparison (several cycles: a once-a-day feature must count every day). */
const TAU_STRENGTH = 3 * DAY
/** The slot spread is at least this fraction of the global one (a slot's own history is short). */
const GLOBAL_FRAC = 0.5
/** Adopting a new level (the mean of the run) after a sustained one-sided deviation, like the EWMA chart. */
const ADOPT_RUN = 6
const ADOPT_U = 1
/** Samples after which an adopted level is back to its normal time constant. */
const LEVEL_SETTLED = 1000
/** For this long after adopting a level, a value back at the previous level restores it. */
const REVERT_HORIZON = DAY
const REVERT_SIGMAS = 2.5
/** Mean absolute deviation to sigma for a Gaussian. */
const ABS_TO_SIGMA = 1.2533
/** The profile is "strong" (authoritative) when its residuals are this much smaller than a level-only model's; hysteresis. */
const STRONG_ENTER = 0.8
const STRONG_LEAVE = 0.95

/**
 * Seasonal baseline, additive Holt-Winters style: value = profile(time of day) + day-of-week
 * correction + level.
 *
 * - The profile has one knot per slot (48 half hours a day, or 168 hours a week with weekly
 *   seasonality), linearly interpolated between slot centres. A slot's baseline is the running
 *   mean of its first cycles, then an exponential average over about 4 cycles.
 * - With daily seasonality a coarse day-of-week correction (21 knots, 8 hours each) learns how
 *   (value - profile) in each part of the week differs from its one-day level (quiet weekends),
 *   averaged over about 3 weeks, winsorized at 3 sigma, and only where the profile itself is
 *   mature. It is used for a knot once the knot has data from a previous week.
 * - The level follows the residual with a 2 h time constant, winsorized; after a sustained
 *   one-sided deviation it jumps to the new level, and jumps back if the series returns within a day.
 * - A robust spread of the residual is kept per slot (the noise of a rush hour is not the noise of
 *   the night), floored by half the global spread, and self-calibrated to the series' tails.
 *
 * Slots are chosen by timestamp, so gaps in the data just leave slots untouched. The profile votes
 * once both slots around the sample have data from SEASONAL_MIN_CYCLES earlier cycles.
 *
 * The detector also measures its own worth: it runs a level-only twin (the same 2 h level without
 * a profile) and compares its root mean square residual over the last day or so with that of
 * the better of the twin and the rolling median for each sample. Squares, because what matters
 * is whether the profile explains the large deviations the other detectors would flag. The profile is
 * `strong` when it clearly explains the series better; the series detector then lets it overrule
 * the detectors that know nothing of time of day.
 */
export class Seasonal {
  readonly seasonality: Seasonality
  readonly slots: number
  private readonly profile: PeriodicKnots
  private readonly week: PeriodicKnots | null
  private readonly spread: Float32Array
  private readonly nSpread: Float32Array
  private c = 0
  private runSum = 0
  private nLevel = LEVEL_SETTLED
  private run = 0
  private cPrev = 0
  private sinceAdopt = REVERT_HORIZON
  private slow = NaN
  private gSpread = 0
  private gN = 0
  private twin = NaN
  private absS = 0
  private absN = 0
  private cmpN = 0
  strong = false
  /** Whether a whole day of comparisons (at the sampling interval dtEst) is behind `strong`. */
  judged(dtEst: number): boolean {
    return this.cmpN * dtEst >= DAY
  }
  readonly tail = new TailCalibration()

  /** Outputs of the last assess(). */
  has = false
  priorCycles = 0
  z = 0
  expected = NaN
  sigma = 0
  /** The profile plus day-of-week correction at the last assessed time (the baseline without the level). */
  shape = 0
  private b = 0
  private wk = 0
  private e = 0
  private rawZ = 0
  private scored = false
  private revert = false

  constructor(seasonality: Seasonality) {
    this.seasonality = seasonality
    this.slots = SEASONAL_SLOTS[seasonality]
    this.profile = new PeriodicKnots(this.slots, PERIOD[seasonality])
    this.week = seasonality === 'daily' ? new PeriodicKnots(WEEK_KNOTS, WEEK, true) : null
    this.spread = new Float32Array(this.slots)
    this.nSpread = new Float32Array(this.slots)
  }

  get minCycles(): number {
    return SEASONAL_MIN_CYCLES[this.seasonality]
  }

  /** `minScale`: a floor for sigma in value units (the series' typical step). */
  assess(ts: number, x: number, minScale = 0): void {
    this.revert = false
    const p = this.profile
    p.locate(ts)
    let wk = 0
    if (this.week) {
      this.week.locate(ts)
      wk = this.week.atReady(1)
    }
    this.wk = wk
    if (!p.known()) {
      this.has = false
      this.scored = false
      this.priorCycles = 0
      this.z = 0
      this.expected = x
      this.sigma = 0
      this.e = 0
      this.b = x - wk - this.c
      this.shape = x - this.c
      return
    }
    const b = p.at()
    let s = this.spread[p.k0]! + p.w1 * (this.spread[p.k1]! - this.spread[p.k0]!)
    this.priorCycles = p.priorCycles()
    const shape = b + wk
    const expected = shape + this.c
    const g = GLOBAL_FRAC * this.gSpread
    if (g > s) s = g
    let sigma = ABS_TO_SIGMA * s
    const floor = Math.max(1e-9 * Math.abs(expected), minScale)
    if (!(sigma > floor)) sigma = floor || Number.MIN_VALUE
    const e = x - expected
    this.has = true
    this.b = b
    this.shape = shape
    this.e = e
    this.expected = expected
    this.sigma = sigma
    this.scored = this.priorCycles >= 1 && this.gN > 0
    this.rawZ = this.scored ? e / sigma : 0
    this.z = this.rawZ * this.tail.factor()
    if (this.sinceAdopt < REVERT_HORIZON && Math.abs(this.z) >= ADOPT_U * SEASONAL_REF_Z) {
      const back = (x - shape - this.cPrev) / sigma
      if (Math.abs(back) < REVERT_SIGMAS) {
        this.revert = true
        this.z = back
      }
    }
  }

  /** Half-width of the expected range for a threshold factor (1 = the default sensitivity). */
  halfWidth(factor: number): number {
    return (factor * SEASONAL_REF_Z * this.sigma) / this.tail.factor()
  }

  /** `median`: the robust detector's rolling median, the other level-only model the profile must beat. */
  update(x: number, dtEst: number, median = NaN): void {
    const p = this.profile
    const known = this.scored
    if (known) this.tail.observe(Math.abs(this.rawZ))
    const lim = known ? CLIP * this.sigma : Infinity
    // level: follows the residual from the shape, winsorized; adopted after a sustained shift
    const r = x - this.shape
    const dev = r - this.c
    const rc = dev > lim ? this.c + lim : dev < -lim ? this.c - lim : r
    const aLevel = dtEst / (TAU_LEVEL + dtEst)
    const eClipped = this.e > lim ? lim : this.e < -lim ? -lim : this.e
    // the level-only twin and the strength comparison
    if (this.twin !== this.twin) this.twin = x
    const et = Math.abs(x - this.twin)
    const em = Math.abs(x - median)
    const an0 = em < et ? em : et
    if (this.has && this.priorCycles >= 1) {
      // not while the series is out of line (or just after a level was adopted): the profile's
      // level jumps to a new regime, the twins lag, and the comparison would favour the profile
      const settled = Math.abs(this.z) < ADOPT_U * SEASONAL_REF_Z && this.sinceAdopt >= TAU_LEVEL
      if (settled || !known) {
        this.cmpN++
        const a = Math.max(dtEst / TAU_STRENGTH, 1 / this.cmpN)
        const es = this.e
        this.absS += a * (es * es - this.absS)
        this.absN += a * (an0 * an0 - this.absN)
        if (this.cmpN * dtEst >= DAY) {
          const ratio = Math.sqrt(this.absS / this.absN)
          if (this.strong ? ratio > STRONG_LEAVE : ratio < STRONG_ENTER) this.strong = !this.strong
        }
      }
      this.gN++
      const ag = Math.max(dtEst / TAU_GLOBAL, 1 / this.gN)
      this.gSpread += ag * (Math.abs(eClipped) - this.gSpread)
    }
    this.twin += aLevel * (x - this.twin)
    if (this.revert) {
      this.c = this.cPrev
      this.run = 0
      this.runSum = 0
      this.nLevel = LEVEL_SETTLED
    } else {
      if (this.sinceAdopt < REVERT_HORIZON) this.sinceAdopt += dtEst
      // precision-weighted: where the profile is loose (a peak it cannot follow exactly) the level
      // learns less, so the profile's systematic misfit there does not drag the level along
      let ac = aLevel
      if (known) {
        const q = (ABS_TO_SIGMA * this.gSpread) / this.sigma
        if (q < 1) ac *= q * q
      }
      // just after adopting a new level, a running mean of the new regime
      if (this.nLevel < LEVEL_SETTLED) {
        this.nLevel++
        if (1 / this.nLevel > ac) ac = 1 / this.nLevel
      }
      this.c += ac * (rc - this.c)
      const u = this.z / SEASONAL_REF_Z
      if (u >= ADOPT_U) {
        if (this.run > 0) {
          this.run++
          this.runSum += r
        } else {
          this.run = 1
          this.runSum = r
        }
      } else if (u <= -ADOPT_U) {
        if (this.run < 0) {
          this.run--
          this.runSum += r
        } else {
          this.run = -1
          this.runSum = r
        }
      } else {
        this.run = 0
        this.runSum = 0
      }
      if (this.run >= ADOPT_RUN || this.run <= -ADOPT_RUN) {
        const k = Math.abs(this.run)
        this.cPrev = this.c
        this.sinceAdopt = 0
        this.c = this.runSum / k
        this.nLevel = k
        this.run = 0
        this.runSum = 0
      }
    }
    // profile: a gradient step of the interpolated knots towards (value - day-of-week correction -
    // level), winsorized
    const perCycle = p.knotMs / dtEst
    const target = x - this.wk - this.c
    const err0 = target - this.b
    const err = err0 > lim ? lim : err0 < -lim ? -lim : err0
    const absE = Math.abs(eClipped)
    if (p.prior0() >= 1) this.learnSpread(p.k0, 1 - p.w1, absE, MEM_SPREAD * perCycle)
    if (p.prior1() >= 1) this.learnSpread(p.k1, p.w1, absE, MEM_SPREAD * perCycle)
    p.learn(target, err, MEM_BASE * perCycle)
    // day-of-week correction: how (value - profile) differs from its slow level in this part of
    // the week; learned only where the profile is mature, winsorized
    const wkn = this.week
    if (wkn && known && this.priorCycles >= this.minCycles) {
      const rw = x - this.b
      if (this.slow !== this.slow) this.slow = rw - this.wk
      const tw0 = rw - this.slow
      const wl = WEEK_CLIP * this.sigma
      const tw = tw0 > wl ? wl : tw0 < -wl ? -wl : tw0
      const cur = wkn.at()
      const errW0 = cur === cur ? tw0 - cur : tw
      const errW = errW0 > wl ? wl : errW0 < -wl ? -wl : errW0
      wkn.learn(tw, errW, MEM_WEEK * (wkn.knotMs / dtEst))
      const ds = rw - this.wk - this.slow
      const aSlow = dtEst / (TAU_SLOW + dtEst)
      this.slow += aSlow * (ds > lim ? lim : ds < -lim ? -lim : ds)
    }
  }

  private learnSpread(k: number, w: number, absE: number, cap: number): void {
    if (!(w > 0)) return
    let n = this.nSpread[k]! + w
    if (n > cap) n = cap
    this.nSpread[k] = n
    this.spread[k] = this.spread[k]! + (w / n) * (absE - this.spread[k]!)
  }

  encode(w: StateWriter): void {
    w.f64(this.c)
    w.f64(this.runSum)
    w.f64(this.nLevel)
    w.f64(this.run)
    w.f64(this.cPrev)
    w.f64(this.sinceAdopt)
    w.f64(this.slow)
    w.f64(this.gSpread)
    w.f64(this.gN)
    w.f64(this.twin)
    w.f64(this.absS)
    w.f64(this.absN)
    w.f64(this.cmpN)
    w.f64(this.tail.t)
    w.u8(this.strong ? 1 : 0)
    this.profile.encode(w)
    w.f32s(this.spread)
    w.f32s(this.nSpread)
    this.week?.encode(w)
  }

  decode(r: StateReader): void {
    this.c = r.f64()
    this.runSum = r.f64()
    this.nLevel = r.f64()
    this.run = r.f64()
    this.cPrev = r.f64()
    this.sinceAdopt = r.f64()
    this.slow = r.f64()
    this.gSpread = r.f64()
    this.gN = r.f64()
    this.twin = r.f64()
    this.absS = r.f64()
    this.absN = r.f64()
    this.cmpN = r.f64()
    this.tail.t = r.f64()
    this.strong = r.u8() === 1
    this.profile.decode(r)
    r.f32s(this.spread, this.slots)
    r.f32s(this.nSpread, this.slots)
    this.week?.decode(r)
  }
}
