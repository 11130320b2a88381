import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { Rule } from '../domain/alerting/rule.js'
import { closeOpenAlerts } from './alerts.repository.js'

export type RuleDef = Omit<Rule, 'id'>

export interface RuleRow extends Rule {
  createdAt: string
  updatedAt: string
}

interface Raw {
  id: number
  name: string
  kind: Rule['kind']
  metric: string
  dims: Record<string, string>
  aggregate: Rule['aggregate']
  window_s: number
  op: Rule['op']
  value: number
  for_s: number
  severity: string
  labels: Record<string, string>
  enabled: boolean
  created_at: Date
  updated_at: Date
}

const toRow = (r: Raw): RuleRow => ({
  id: r.id,
  name: r.name,
  kind: r.kind,
  metric: r.metric,
  dims: r.dims,
  aggregate: r.aggregate,
  windowS: r.window_s,
  op: r.op,
  value: r.value,
  forS: r.for_s,
  severity: r.severity,
  labels: r.labels,
  enabled: r.enabled,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
})

export async function createRule(db: Db, d: RuleDef): Promise<RuleRow> {
  const { rows } = await sql<Raw>`
    INSERT INTO alert_rules (name, kind, metric, dims, aggregate, window_s, op, value, for_s, severity, labels, enabled)
    VALUES (${d.name}, ${d.kind}, ${d.metric}, ${JSON.stringify(d.dims)}::jsonb, ${d.aggregate}, ${d.windowS}, ${d.op}, ${d.value}, ${d.forS},
            ${d.severity}, ${JSON.stringify(d.labels)}::jsonb, ${d.enabled})
    RETURNING *`.execute(db)
  return toRow(rows[0] as Raw)
}

/**
 * Replaces a rule's definition. A changed condition starts every series of the rule afresh: its
 * evaluation state is dropped (open alerts stay open until the new condition stops holding).
 */
export async function updateRule(db: Db, id: number, d: RuleDef): Promise<RuleRow | null> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<Raw>`
      UPDATE alert_rules SET name = ${d.name}, kind = ${d.kind}, metric = ${d.metric}, dims = ${JSON.stringify(d.dims)}::jsonb, aggregate = ${d.aggregate},
        window_s = ${d.windowS}, op = ${d.op}, value = ${d.value}, for_s = ${d.forS}, severity = ${d.severity}, labels = ${JSON.stringify(d.labels)}::jsonb,
        enabled = ${d.enabled}, updated_at = now()
      WHERE id = ${id} AND deleted_at IS NULL RETURNING *`.execute(trx)
    if (!rows[0]) return null
    if (d.enabled) {
      await sql`UPDATE rule_state SET state = jsonb_set(jsonb_set(state, '{window}', '[]'::jsonb), '{lastTs}', 'null'::jsonb) WHERE rule_id = ${id}`.execute(trx)
    } else {
      await sql`DELETE FROM rule_state WHERE rule_id = ${id}`.execute(trx)
      await closeOpenAlerts(trx, id, 'rule disabled')
    }
    return toRow(rows[0])
  })
}

export async function getRule(db: Db, id: number): Promise<RuleRow | null> {
  const { rows } = await sql<Raw>`SELECT * FROM alert_rules WHERE id = ${id} AND deleted_at IS NULL`.execute(db)
  return rows[0] ? toRow(rows[0]) : null
}

export async function listRules(db: Db): Promise<RuleRow[]> {
  const { rows } = await sql<Raw>`SELECT * FROM alert_rules WHERE deleted_at IS NULL ORDER BY id`.execute(db)
  return rows.map(toRow)
}

/** Retires a rule: it stops being evaluated, its open alerts resolve, its history stays. */
export async function deleteRule(db: Db, id: number): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const r = await sql`UPDATE alert_rules SET deleted_at = now(), enabled = false, updated_at = now() WHERE id = ${id} AND deleted_at IS NULL`.execute(trx)
    if (Number(r.numAffectedRows ?? 0) === 0) return false
    await sql`DELETE FROM rule_state WHERE rule_id = ${id}`.execute(trx)
    await closeOpenAlerts(trx, id, 'rule deleted')
    return true
  })
}
