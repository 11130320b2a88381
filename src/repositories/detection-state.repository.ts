import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { RuleSeriesState } from '../domain/alerting/rule-eval.js'

/** Detector states of these series (absent: never scored). */
export async function loadDetectorStates(db: Db, seriesIds: readonly number[]): Promise<Map<number, Buffer>> {
  if (seriesIds.length === 0) return new Map()
  const { rows } = await sql<{ series_id: number; state: Buffer }>`SELECT series_id, state FROM detector_state WHERE series_id = ANY(${seriesIds}::bigint[])`.execute(db)
  return new Map(rows.map((r) => [r.series_id, r.state]))
}

export async function saveDetectorStates(trx: Db, states: readonly { seriesId: number; state: Buffer }[]): Promise<void> {
  if (states.length === 0) return
  await sql`
    INSERT INTO detector_state (series_id, state)
    SELECT * FROM unnest(${states.map((s) => s.seriesId)}::bigint[], ${states.map((s) => s.state)}::bytea[])
    ON CONFLICT (series_id) DO UPDATE SET state = excluded.state, updated_at = now()`.execute(trx)
}

/** JSON has no -Infinity: "nothing seen yet" is stored as null. */
type StoredRuleState = Omit<RuleSeriesState, 'lastTs'> & { lastTs: number | null }

export async function loadRuleStates(db: Db, ruleIds: readonly number[], seriesIds: readonly number[]): Promise<Map<string, RuleSeriesState>> {
  if (ruleIds.length === 0 || seriesIds.length === 0) return new Map()
  const { rows } = await sql<{ rule_id: number; series_id: number; state: StoredRuleState }>`
    SELECT rule_id, series_id, state FROM rule_state WHERE rule_id = ANY(${ruleIds}::bigint[]) AND series_id = ANY(${seriesIds}::bigint[])`.execute(db)
  return new Map(rows.map((r) => [ruleStateKey(r.rule_id, r.series_id), { ...r.state, lastTs: r.state.lastTs ?? -Infinity }]))
}

export const ruleStateKey = (ruleId: number, seriesId: number | string): string => `${ruleId}|${seriesId}`

export async function saveRuleStates(trx: Db, states: readonly { ruleId: number; seriesId: number; state: RuleSeriesState }[]): Promise<void> {
  if (states.length === 0) return
  await sql`
    INSERT INTO rule_state (rule_id, series_id, state)
    SELECT r, s, st::jsonb FROM unnest(${states.map((s) => s.ruleId)}::bigint[], ${states.map((s) => s.seriesId)}::bigint[],
      ${states.map((s) => JSON.stringify({ ...s.state, lastTs: Number.isFinite(s.state.lastTs) ? s.state.lastTs : null }))}::text[]) AS t(r, s, st)
    ON CONFLICT (rule_id, series_id) DO UPDATE SET state = excluded.state`.execute(trx)
}
