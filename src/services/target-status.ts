import type { Db } from '../infra/db.js'
import { bucketsInRange } from '../repositories/aggregates.repository.js'
import { listTargets, type Indicator, type TargetRow } from '../repositories/targets.repository.js'
import { rollUp } from '../domain/rollup.js'
import { emptyBucket, mergeInto, type BucketState } from '../domain/bucket.js'
import { bucketStart } from '../domain/windows.js'
import { targetProgress, type DailyPoint, type TargetProgress } from '../domain/target-progress.js'

const DAY = 86_400_000

const read = (s: BucketState, aggregate: Indicator['aggregate']): number | null => {
  if (s.count === 0) return null
  switch (aggregate) {
    case 'last':
      return s.last
    case 'sum':
      return s.sum
    case 'count':
      return s.count
    case 'mean':
      return s.mean
    case 'max':
      return s.max
    case 'min':
      return s.min
  }
}

/** The indicator over the period so far, as of the end of each day with data (cumulative). */
export async function dailyIndicator(db: Db, ind: Indicator, fromMs: number, toMs: number, dayOffsetMs: number): Promise<DailyPoint[]> {
  const rows = await bucketsInRange(db, { metric: ind.metric, dims: ind.dims, widthS: DAY / 1000, fromMs: bucketStart(fromMs, '1d', dayOffsetMs), toMs })
  const days = [...(rollUp(rows).get('')?.values() ?? [])].sort((a, b) => a.startMs - b.startMs)
  const running = emptyBucket()
  const points: DailyPoint[] = []
  for (const d of days) {
    mergeInto(running, d.state)
    const value = read(running, ind.aggregate)
    if (value !== null) points.push({ atMs: Math.min(d.startMs + DAY, toMs), value })
  }
  return points
}

/** Indicator / denominator x 100 at every day either changed, each carried forward. */
function ratioPoints(num: DailyPoint[], den: DailyPoint[]): DailyPoint[] {
  const times = [...new Set([...num, ...den].map((p) => p.atMs))].sort((a, b) => a - b)
  const out: DailyPoint[] = []
  let n: number | null = null
  let d: number | null = null
  let i = 0
  let j = 0
  for (const t of times) {
    while (i < num.length && (num[i] as DailyPoint).atMs <= t) n = (num[i++] as DailyPoint).value
    while (j < den.length && (den[j] as DailyPoint).atMs <= t) d = (den[j++] as DailyPoint).value
    if (n !== null && d !== null && d !== 0) out.push({ atMs: t, value: (n / d) * 100 })
  }
  return out
}

export interface TargetStatus extends TargetProgress {
  asOf: string
  points: { at: string; value: number }[]
}

export async function targetStatus(db: Db, t: TargetRow, nowMs: number, dayOffsetMs: number): Promise<TargetStatus> {
  const toMs = Math.min(nowMs, t.periodEndMs)
  const num = await dailyIndicator(db, t.indicator, t.periodStartMs, toMs, dayOffsetMs)
  const points = t.denominator ? ratioPoints(num, await dailyIndicator(db, t.denominator, t.periodStartMs, toMs, dayOffsetMs)) : num
  return {
    asOf: new Date(toMs).toISOString(),
    ...targetProgress(points, t.operator, t.target, t.periodEndMs),
    points: points.map((p) => ({ at: new Date(p.atMs).toISOString(), value: p.value })),
  }
}

/** A target as the API and the live topic show it: its definition and its status now. */
export async function presentTarget(db: Db, t: TargetRow, nowMs: number, dayOffsetMs: number) {
  return {
    id: t.id,
    name: t.name,
    indicator: t.indicator,
    denominator: t.denominator,
    operator: t.operator,
    target: t.target,
    unit: t.unit,
    period: { from: new Date(t.periodStartMs).toISOString(), to: new Date(t.periodEndMs).toISOString() },
    status: await targetStatus(db, t, nowMs, dayOffsetMs),
  }
}

export async function allTargets(db: Db, nowMs: number, dayOffsetMs: number) {
  return Promise.all((await listTargets(db)).map((t) => presentTarget(db, t, nowMs, dayOffsetMs)))
}
