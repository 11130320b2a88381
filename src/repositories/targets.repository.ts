import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { TargetAggregate, TargetOperator } from '../domain/target-progress.js'

export interface Indicator {
  metric: string
  dims: Record<string, string>
  aggregate: TargetAggregate
}

export interface TargetDef {
  name: string
  indicator: Indicator
  /** When set, the indicator is a percentage: indicator / denominator x 100. */
  denominator: Indicator | null
  operator: TargetOperator
  target: number
  unit: string | null
  periodStartMs: number
  periodEndMs: number
}

export interface TargetRow extends TargetDef {
  id: number
  createdAt: string
}

interface Raw {
  id: number
  name: string
  indicator: Indicator
  denominator: Indicator | null
  operator: TargetOperator
  target: number
  unit: string | null
  period_start: Date
  period_end: Date
  created_at: Date
}

const fromRaw = (r: Raw): TargetRow => ({
  id: r.id,
  name: r.name,
  indicator: r.indicator,
  denominator: r.denominator,
  operator: r.operator,
  target: r.target,
  unit: r.unit,
  periodStartMs: r.period_start.getTime(),
  periodEndMs: r.period_end.getTime(),
  createdAt: r.created_at.toISOString(),
})

export async function createTarget(db: Db, t: TargetDef): Promise<TargetRow> {
  const { rows } = await sql<Raw>`
    INSERT INTO targets (name, indicator, denominator, operator, target, unit, period_start, period_end)
    VALUES (${t.name}, ${JSON.stringify(t.indicator)}::jsonb, ${t.denominator ? JSON.stringify(t.denominator) : null}::jsonb, ${t.operator},
            ${t.target}, ${t.unit}, ${new Date(t.periodStartMs).toISOString()}::timestamptz, ${new Date(t.periodEndMs).toISOString()}::timestamptz)
    RETURNING *`.execute(db)
  return fromRaw(rows[0] as Raw)
}

export async function listTargets(db: Db): Promise<TargetRow[]> {
  const { rows } = await sql<Raw>`SELECT * FROM targets ORDER BY id`.execute(db)
  return rows.map(fromRaw)
}

export async function getTarget(db: Db, id: number): Promise<TargetRow | null> {
  const { rows } = await sql<Raw>`SELECT * FROM targets WHERE id = ${id}`.execute(db)
  return rows[0] ? fromRaw(rows[0]) : null
}

export async function deleteTarget(db: Db, id: number): Promise<boolean> {
  const { numAffectedRows } = await sql`DELETE FROM targets WHERE id = ${id}`.execute(db)
  return numAffectedRows === 1n
}
