import { sql } from 'kysely'
import type { Db } from '../infra/db.js'
import type { CaseEventRecord, CaseState } from '../domain/case-state.js'

export interface CaseRef {
  service: string
  caseId: string
}

export interface StoredCase extends CaseRef {
  events: CaseEventRecord[]
  dims: Record<string, string>
  findings: number
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString())

export async function loadCases(db: Db, refs: readonly CaseRef[]): Promise<StoredCase[]> {
  if (refs.length === 0) return []
  const { rows } = await sql<{ service: string; case_id: string; events: CaseEventRecord[]; dims: Record<string, string>; findings: number }>`
    SELECT c.service, c.case_id, c.events, c.dims, c.findings FROM cases c
    JOIN unnest(${refs.map((r) => r.service)}::text[], ${refs.map((r) => r.caseId)}::text[]) AS k(service, case_id)
      ON c.service = k.service AND c.case_id = k.case_id`.execute(db)
  return rows.map((r) => ({ service: r.service, caseId: r.case_id, events: r.events, dims: r.dims, findings: r.findings }))
}

export interface CaseWrite extends CaseRef {
  partition: number
  events: CaseEventRecord[]
  state: CaseState
  /** Findings the stored case had: only those need deleting before the new set is written. */
  previousFindings: number
}

/** Writes the derived state of each case and replaces its findings; one statement each. */
export async function writeCases(trx: Db, cases: readonly CaseWrite[]): Promise<void> {
  if (cases.length === 0) return
  const col = <T>(f: (c: CaseWrite) => T): T[] => cases.map(f)
  await sql`
    INSERT INTO cases (service, case_id, partition, dims, state, received_ts, started_ts, resolved_ts, rejected_ts,
                       due_ts, rating, rated_ts, last_ts, events, findings, version, updated_at)
    SELECT service, case_id, partition, dims::jsonb, state, received_ts, started_ts, resolved_ts, rejected_ts,
           due_ts, rating, rated_ts, last_ts, events::jsonb, findings, nextval('case_version_seq'), now()
    FROM unnest(${col((c) => c.service)}::text[], ${col((c) => c.caseId)}::text[], ${col((c) => c.partition)}::int[],
                ${col((c) => JSON.stringify(c.state.dims))}::text[], ${col((c) => c.state.state)}::text[],
                ${col((c) => iso(c.state.receivedTs))}::timestamptz[], ${col((c) => iso(c.state.startedTs))}::timestamptz[],
                ${col((c) => iso(c.state.resolvedTs))}::timestamptz[], ${col((c) => iso(c.state.rejectedTs))}::timestamptz[],
                ${col((c) => iso(c.state.dueTs))}::timestamptz[], ${col((c) => c.state.rating)}::smallint[],
                ${col((c) => iso(c.state.ratedTs))}::timestamptz[], ${col((c) => iso(c.state.lastTs))}::timestamptz[],
                ${col((c) => JSON.stringify(c.events))}::text[], ${col((c) => c.state.findings.length)}::int[])
      AS t(service, case_id, partition, dims, state, received_ts, started_ts, resolved_ts, rejected_ts, due_ts, rating, rated_ts, last_ts, events, findings)
    ON CONFLICT (service, case_id) DO UPDATE SET
      partition = excluded.partition, dims = excluded.dims, state = excluded.state, received_ts = excluded.received_ts,
      started_ts = excluded.started_ts, resolved_ts = excluded.resolved_ts, rejected_ts = excluded.rejected_ts,
      due_ts = excluded.due_ts, rating = excluded.rating, rated_ts = excluded.rated_ts, last_ts = excluded.last_ts,
      events = excluded.events, findings = excluded.findings, version = excluded.version, updated_at = now()`.execute(trx)

  const stale = cases.filter((c) => c.previousFindings > 0)
  if (stale.length > 0) {
    await sql`
      DELETE FROM case_findings f USING unnest(${stale.map((c) => c.service)}::text[], ${stale.map((c) => c.caseId)}::text[]) AS k(service, case_id)
      WHERE f.service = k.service AND f.case_id = k.case_id`.execute(trx)
  }
  const findings = cases.flatMap((c) => c.state.findings.map((f) => ({ ...f, service: c.service, caseId: c.caseId, province: c.state.dims.province ?? null })))
  if (findings.length === 0) return
  await sql`
    INSERT INTO case_findings (service, case_id, event_id, kind, detail, event_ts, province)
    SELECT * FROM unnest(${findings.map((f) => f.service)}::text[], ${findings.map((f) => f.caseId)}::text[],
                         ${findings.map((f) => f.eventId)}::text[], ${findings.map((f) => f.kind)}::text[],
                         ${findings.map((f) => f.detail)}::text[], ${findings.map((f) => iso(f.eventTs))}::timestamptz[],
                         ${findings.map((f) => f.province)}::text[])
    ON CONFLICT DO NOTHING`.execute(trx)
}

/**
 * Marks cases whose due time passed since the last check as changed (a new version), so live KPI
 * topics recompute although no event arrived. Runs in one transaction that row-locks its own
 * progress marker, so concurrent checks on several workers take turns and never skip a case.
 */
export async function markNewlyOverdue(db: Db, nowMs: number): Promise<{ service: string; province: string | null; agency: string | null; category: string | null }[]> {
  return db.transaction().execute(async (trx) => {
    await sql`INSERT INTO lantern_meta (key, value) VALUES ('overdue_checked_until', '-infinity') ON CONFLICT (key) DO NOTHING`.execute(trx)
    const { rows: marker } = await sql<{ value: string }>`SELECT value FROM lantern_meta WHERE key = 'overdue_checked_until' FOR UPDATE`.execute(trx)
    const since = marker[0]?.value ?? '-infinity'
    const now = new Date(nowMs).toISOString()
    const { rows } = await sql<{ service: string; province: string | null; agency: string | null; category: string | null }>`
      UPDATE cases SET version = nextval('case_version_seq'), updated_at = now()
      WHERE resolved_ts IS NULL AND rejected_ts IS NULL AND due_ts > ${since}::timestamptz AND due_ts <= ${now}::timestamptz
      RETURNING service, province, agency, category`.execute(trx)
    await sql`UPDATE lantern_meta SET value = ${now} WHERE key = 'overdue_checked_until'`.execute(trx)
    const groups = new Map(rows.map((r) => [JSON.stringify(r), r]))
    return [...groups.values()]
  })
}
