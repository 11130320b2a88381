import type { Db } from '../infra/db.js'
import { sql } from 'kysely'

export interface FindingRow {
  service: string
  caseId: string
  eventId: string
  kind: string
  detail: string
  eventTs: string
  province: string | null
}

export async function listFindings(db: Db, filter: { service?: string; province?: string; case?: string }, limit: number): Promise<FindingRow[]> {
  const { rows } = await sql<{ service: string; case_id: string; event_id: string; kind: string; detail: string; event_ts: Date; province: string | null }>`
    SELECT service, case_id, event_id, kind, detail, event_ts, province FROM case_findings
    WHERE (${filter.service ?? null}::text IS NULL OR service = ${filter.service ?? null})
      AND (${filter.province ?? null}::text IS NULL OR province = ${filter.province ?? null})
      AND (${filter.case ?? null}::text IS NULL OR case_id = ${filter.case ?? null})
    ORDER BY event_ts DESC LIMIT ${limit}`.execute(db)
  return rows.map((r) => ({ service: r.service, caseId: r.case_id, eventId: r.event_id, kind: r.kind, detail: r.detail, eventTs: r.event_ts.toISOString(), province: r.province }))
}
