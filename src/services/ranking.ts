import type { Db } from '../infra/db.js'
import { computeKpis, type KpiFigures, type KpiFilter } from '../repositories/kpis.repository.js'

export const RANK_BY = ['onTimeRate', 'satisfactionRate', 'backlog', 'timeToResolveP50Sec', 'overdue'] as const
export type RankBy = (typeof RANK_BY)[number]

/** Higher is better for rates; lower is better for backlog, overdue and time to resolve. */
const HIGHER_IS_BETTER: Record<RankBy, boolean> = {
  onTimeRate: true,
  satisfactionRate: true,
  backlog: false,
  timeToResolveP50Sec: false,
  overdue: false,
}

export interface RankedAgency {
  rank: number
  agency: string | null
  value: number | null
  kpis: KpiFigures
}

/** Agencies ordered best first by one KPI; agencies without a value for it come last. */
export async function rankAgencies(
  db: Db,
  filter: KpiFilter,
  by: RankBy,
  asOfMs: number,
  fromMs: number | null,
  limit: number,
): Promise<{ agencies: RankedAgency[]; version: number }> {
  const { rows, version } = await computeKpis(db, { filter, groupBy: ['agency'], asOfMs, fromMs })
  const better = HIGHER_IS_BETTER[by] ? 1 : -1
  const agencies = rows
    .filter((r) => r.key.agency !== null)
    .sort((a, b) => {
      const va = a.kpis[by]
      const vb = b.kpis[by]
      if (va === null || vb === null) return va === null ? (vb === null ? 0 : 1) : -1
      return better * (vb - va)
    })
    .slice(0, limit)
    .map((r, i) => ({ rank: i + 1, agency: r.key.agency ?? null, value: r.kpis[by], kpis: r.kpis }))
  return { agencies, version }
}
