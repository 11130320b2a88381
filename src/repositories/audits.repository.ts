import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { AuditReport } from '../services/audit.js'

export type AuditStatus = 'queued' | 'running' | 'done' | 'failed'

export interface AuditRow {
  id: number
  from: string
  to: string
  status: AuditStatus
  eventsReplayed: number
  mismatchCount: number | null
  error: string | null
  createdAt: string
  finishedAt: string | null
  report?: AuditReport | null
}

interface Raw {
  id: number
  range_from: Date
  range_to: Date
  status: AuditStatus
  events_replayed: number
  mismatch_count: number | null
  error: string | null
  created_at: Date
  finished_at: Date | null
  report?: AuditReport | null
}

const fromRaw = (r: Raw): AuditRow => ({
  id: r.id,
  from: r.range_from.toISOString(),
  to: r.range_to.toISOString(),
  status: r.status,
  eventsReplayed: r.events_replayed,
  mismatchCount: r.mismatch_count,
  error: r.error,
  createdAt: r.created_at.toISOString(),
  finishedAt: r.finished_at?.toISOString() ?? null,
  ...(r.report !== undefined ? { report: r.report } : {}),
})

export async function createAudit(db: Db, fromMs: number, toMs: number): Promise<AuditRow> {
  const { rows } = await sql<Raw>`
    INSERT INTO audits (range_from, range_to, status) VALUES (${new Date(fromMs).toISOString()}::timestamptz, ${new Date(toMs).toISOString()}::timestamptz, 'queued')
    RETURNING id, range_from, range_to, status, events_replayed, mismatch_count, error, created_at, finished_at`.execute(db)
  return fromRaw(rows[0] as Raw)
}

export async function updateAudit(db: Db, id: number, change: { status?: AuditStatus; eventsReplayed?: number; report?: AuditReport; error?: string }): Promise<void> {
  await sql`
    UPDATE audits SET
      status = coalesce(${change.status ?? null}, status),
      events_replayed = coalesce(${change.eventsReplayed ?? null}::bigint, events_replayed),
      report = coalesce(${change.report ? JSON.stringify(change.report) : null}::jsonb, report),
      mismatch_count = coalesce(${change.report ? change.report.mismatches.length : null}::int, mismatch_count),
      error = coalesce(${change.error ?? null}, error),
      finished_at = CASE WHEN ${change.status ?? null} IN ('done', 'failed') THEN now() ELSE finished_at END
    WHERE id = ${id}`.execute(db)
}

export async function getAudit(db: Db, id: number): Promise<AuditRow | null> {
  const { rows } = await sql<Raw>`SELECT * FROM audits WHERE id = ${id}`.execute(db)
  return rows[0] ? fromRaw(rows[0]) : null
}

/** Recent audits without their reports: what the list and the live topic show. */
export async function listAudits(db: Db, limit: number): Promise<AuditRow[]> {
  const { rows } = await sql<Raw>`
    SELECT id, range_from, range_to, status, events_replayed, mismatch_count, error, created_at, finished_at FROM audits ORDER BY id DESC LIMIT ${limit}`.execute(db)
  return rows.map(fromRaw)
}
