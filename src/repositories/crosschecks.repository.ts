import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { KpiFilter } from './kpis.repository.js'

export interface Discrepancy {
  figure: string
  reported: number
  computed: number
  /** reported - computed: positive when the reported figure is higher than the events give. */
  difference: number
  /** Where to list the cases behind the computed figure. */
  cases: string[]
}

export interface CrosscheckRow {
  id: number
  source: string | null
  filter: KpiFilter
  periodStart: string
  periodEnd: string
  reported: Record<string, number>
  computed: Record<string, number>
  discrepancies: Discrepancy[]
  createdAt: string
}

interface Raw {
  id: number
  source: string | null
  filter: KpiFilter
  period_start: Date
  period_end: Date
  reported: Record<string, number>
  computed: Record<string, number>
  discrepancies: Discrepancy[]
  created_at: Date
}

const fromRaw = (r: Raw): CrosscheckRow => ({
  id: r.id,
  source: r.source,
  filter: r.filter,
  periodStart: r.period_start.toISOString(),
  periodEnd: r.period_end.toISOString(),
  reported: r.reported,
  computed: r.computed,
  discrepancies: r.discrepancies,
  createdAt: r.created_at.toISOString(),
})

export async function recordCrosscheck(db: Db, c: Omit<CrosscheckRow, 'id' | 'createdAt'>): Promise<CrosscheckRow> {
  const { rows } = await sql<Raw>`
    INSERT INTO crosschecks (source, filter, period_start, period_end, reported, computed, discrepancies)
    VALUES (${c.source}, ${JSON.stringify(c.filter)}::jsonb, ${c.periodStart}::timestamptz, ${c.periodEnd}::timestamptz,
            ${JSON.stringify(c.reported)}::jsonb, ${JSON.stringify(c.computed)}::jsonb, ${JSON.stringify(c.discrepancies)}::jsonb)
    RETURNING *`.execute(db)
  return fromRaw(rows[0] as Raw)
}

export async function listCrosschecks(db: Db, onlyDiscrepant: boolean, limit: number): Promise<CrosscheckRow[]> {
  const { rows } = await sql<Raw>`
    SELECT * FROM crosschecks WHERE ${onlyDiscrepant} = false OR jsonb_array_length(discrepancies) > 0
    ORDER BY id DESC LIMIT ${limit}`.execute(db)
  return rows.map(fromRaw)
}

export async function getCrosscheck(db: Db, id: number): Promise<CrosscheckRow | null> {
  const { rows } = await sql<Raw>`SELECT * FROM crosschecks WHERE id = ${id}`.execute(db)
  return rows[0] ? fromRaw(rows[0]) : null
}
