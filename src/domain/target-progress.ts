import { linearRegression, linearRegressionLine } from 'simple-statistics'

export type TargetAggregate = 'last' | 'sum' | 'mean' | 'max' | 'min' | 'count'
export type TargetOperator = '>=' | '<='

export interface DailyPoint {
  /** End of the day the value describes (epoch ms). */
  atMs: number
  /** The indicator as of that day's end: cumulative for sums and counts. */
  value: number
}

export interface TargetProgress {
  value: number | null
  completionPct: number | null
  met: boolean
  projected: number | null
  onTrack: boolean | null
}

/**
 * Progress of an indicator against its target: completion now, and a least-squares trend of the
 * daily values projected to the end of the period. With fewer than two days of data there is no
 * trend, and the projection is the current value.
 */
export function targetProgress(points: readonly DailyPoint[], operator: TargetOperator, target: number, periodEndMs: number): TargetProgress {
  const latest = points[points.length - 1]
  if (!latest) return { value: null, completionPct: null, met: false, projected: null, onTrack: null }
  const value = latest.value
  const meets = (v: number): boolean => (operator === '>=' ? v >= target : v <= target)
  let completionPct: number
  if (operator === '>=') completionPct = target === 0 ? 100 : (value / target) * 100
  else completionPct = value <= target ? 100 : value === 0 ? 100 : (target / value) * 100
  let projected = value
  if (points.length >= 2) {
    // Days since the first point: epoch milliseconds squared would cost the fit its precision.
    const origin = (points[0] as DailyPoint).atMs
    const day = (ms: number): number => (ms - origin) / 86_400_000
    const line = linearRegressionLine(linearRegression(points.map((p) => [day(p.atMs), p.value])))
    projected = line(day(periodEndMs))
  }
  return { value, completionPct, met: meets(value), projected, onTrack: meets(projected) }
}
