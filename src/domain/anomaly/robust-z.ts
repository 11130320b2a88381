import { RollingWindow } from './rolling-window.js'
import { TailCalibration } from './score.js'

/** Deviation (in robust standard deviations) that flags at sensitivity 0.5. */
export const ROBUST_REF_Z = 5
/** A value is only news when fewer than this many of the window's values are at least as extreme. */
const GUARD_COUNT = 2
/** A guarded value scores at most this fraction of the reference deviation. */
const GUARD_CAP_U = 0.5
/** Robust scale of a Gaussian: sigma = 1.4826 MAD = (q95 - q05) / 3.29. */
const MAD_TO_SIGMA = 1.4826
const TAIL_SPAN = 3.2897
/** Fewer values than this in the window: no opinion. */
const MIN_FILL = 5

/**
 * Robust rolling z-score: (x - median) / scale over the last `window` values, scored before the
 * value joins the window. The scale is 1.4826 MAD, but at least the Gaussian-equivalent width of
 * the 5%..95% span (so a mostly-constant series whose other values are routine, like a count that
 * is usually 0, does not flag every non-zero), at least half the series' typical non-zero step
 * (passed in as minScale) and at least 1e-9 of |median| (so float jitter on a constant series does
 * not flag, while any real jump does). Deviations are then shrunk for series with heavy tails
 * (TailCalibration).
 *
 * Repeat guard: a value is not flagged when at least GUARD_COUNT values in the window are as
 * extreme as it is. A spike is flagged; after a level shift only the first samples at the new
 * level are (the window then holds values like them) while the median catches up.
 */
export class RobustZ {
  readonly window: RollingWindow
  readonly tail = new TailCalibration()
  private rawZ = 0
  /** Outputs of the last assess(). */
  z = 0
  expected = NaN
  scale = NaN
  ready = false

  constructor(capacity: number) {
    this.window = new RollingWindow(capacity)
  }

  /** `minScale`: a floor for the scale in value units (the series' typical step, see SeriesDetector). */
  assess(x: number, minScale = 0): void {
    const w = this.window
    if (w.size < MIN_FILL) {
      this.ready = false
      this.z = 0
      this.expected = w.size > 0 ? w.median() : x
      this.scale = 0
      return
    }
    const med = w.median()
    let scale = MAD_TO_SIGMA * w.mad(med)
    const tail = (w.quantile(0.95) - w.quantile(0.05)) / TAIL_SPAN
    if (tail > scale) scale = tail
    const floor = Math.max(1e-9 * Math.abs(med), minScale)
    if (!(scale > floor)) scale = floor > 0 ? floor : Number.MIN_VALUE
    const raw = (x - med) / scale
    this.rawZ = raw
    let z = raw * this.tail.factor()
    const cap = GUARD_CAP_U * ROBUST_REF_Z
    if (z > cap) {
      if (w.countAtLeast(x) >= GUARD_COUNT) z = cap
    } else if (z < -cap) {
      if (w.countAtMost(x) >= GUARD_COUNT) z = -cap
    }
    this.ready = true
    this.z = z
    this.expected = med
    this.scale = scale
  }

  /** Half-width of the expected range for a threshold factor (1 = the default sensitivity). */
  halfWidth(factor: number): number {
    return (factor * ROBUST_REF_Z * this.scale) / this.tail.factor()
  }

  update(x: number): void {
    if (this.ready) this.tail.observe(Math.abs(this.rawZ))
    this.window.push(x)
  }
}
