/**
 * From a detector's standardized deviation to a score in [0, 1] and from `sensitivity` to a flag
 * threshold.
 *
 * Every detector reports |z| in its own units; dividing by the detector's reference threshold (the
 * deviation it flags at sensitivity 0.5) gives u, which means the same for all detectors: u = 1 is
 * "just anomalous at the default sensitivity". The score is 1 - 4^(-u^2): monotone, 0 at u = 0,
 * 0.75 at u = 1, 0.996 at u = 2. Sensitivity scales the threshold on u from 1.39 (s = 0, only
 * very clear anomalies) through 1 (s = 0.5) down to 0.61 (s = 1).
 */

/** The threshold on u (deviation / reference threshold) for a sensitivity in [0, 1]. */
export function thresholdFactor(sensitivity: number): number {
  const s = Number.isFinite(sensitivity) ? Math.min(1, Math.max(0, sensitivity)) : 0.5
  return (8 - 4.5 * s) / 5.75
}

/** Score in [0, 1] for a normalized deviation u >= 0. */
export function scoreOf(u: number): number {
  if (!(u > 0)) return 0
  return 1 - Math.pow(4, -u * u)
}

/** The score a sample needs to be flagged at this sensitivity (flagged iff score >= this). */
export function scoreThreshold(sensitivity: number): number {
  return scoreOf(thresholdFactor(sensitivity))
}

/** Tail exceedance rate tracked by TailCalibration. */
const TAIL_P = 0.01
/** The |z| a well-behaved (near Gaussian) detector exceeds TAIL_P of the time, with some slack for estimation noise. */
const TAIL_REF = 3
/** Relative step of the quantile estimate. */
const TAIL_STEP = 0.05

/**
 * Self-calibration to the series' own tails. Tracks the 99th percentile T of a detector's |z|
 * (stochastic quantile estimation with multiplicative steps: up 5% on an exceedance, down 0.05%
 * otherwise). A near-Gaussian series has T about 2.6, and nothing changes; a heavy-tailed one
 * (a shop's orders, bursty traffic) has a larger T, and its deviations are shrunk by TAIL_REF / T,
 * so routine outliers of that series stop flagging while real anomalies, far beyond its usual
 * tail, still do. It never amplifies.
 */
export class TailCalibration {
  t = TAIL_REF

  /** The factor to multiply |z| by. */
  factor(): number {
    return this.t > TAIL_REF ? TAIL_REF / this.t : 1
  }

  observe(absZ: number): void {
    if (absZ > this.t) this.t *= 1 + TAIL_STEP * (1 - TAIL_P)
    else this.t *= 1 - TAIL_STEP * TAIL_P
  }
}
