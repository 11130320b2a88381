import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { AnomalySettings } from '../schemas/anomaly-settings.js'

export async function allAnomalySettings(db: Db): Promise<Map<string, AnomalySettings>> {
  const { rows } = await sql<{ metric: string; config: AnomalySettings }>`SELECT metric, config FROM anomaly_settings`.execute(db)
  return new Map(rows.map((r) => [r.metric, r.config]))
}

export async function getAnomalySettings(db: Db, metric: string): Promise<AnomalySettings | null> {
  const { rows } = await sql<{ config: AnomalySettings }>`SELECT config FROM anomaly_settings WHERE metric = ${metric}`.execute(db)
  return rows[0]?.config ?? null
}

export async function putAnomalySettings(db: Db, metric: string, config: AnomalySettings): Promise<void> {
  await sql`
    INSERT INTO anomaly_settings (metric, config) VALUES (${metric}, ${JSON.stringify(config)}::jsonb)
    ON CONFLICT (metric) DO UPDATE SET config = excluded.config, updated_at = now()`.execute(db)
}

export async function deleteAnomalySettings(db: Db, metric: string): Promise<boolean> {
  const r = await sql`DELETE FROM anomaly_settings WHERE metric = ${metric}`.execute(db)
  return Number(r.numAffectedRows ?? 0) > 0
}
