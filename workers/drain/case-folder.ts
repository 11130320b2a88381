import type { Db } from '../../src/infra/db.js'
import type { ReportEvent } from '../../src/schemas/report-event.js'
import { caseKey } from '../../src/schemas/report-event.js'
import { deriveCase, sortCaseEvents, type CaseEventRecord } from '../../src/domain/case-state.js'
import { loadCases, type CaseWrite } from '../../src/repositories/cases.repository.js'
import type { CaseGroup } from '../../src/live/change-notice.js'

export interface CaseFold {
  writes: CaseWrite[]
  /** KPI groups whose figures may have changed: a case's old and new dims both count. */
  groups: CaseGroup[]
}

const groupOf = (service: string, dims: Record<string, string>): CaseGroup => ({
  service,
  province: dims.province ?? null,
  agency: dims.agency ?? null,
  category: dims.category ?? null,
})

/**
 * Merges a batch's report events into their cases (one read of the touched cases), re-deriving
 * each case from all its events in event-time order, so late and out-of-order events land where
 * they belong. An event id a case already holds is ignored: it is the same event again.
 */
export async function foldCases(db: Db, partition: number, events: readonly ReportEvent[]): Promise<CaseFold> {
  if (events.length === 0) return { writes: [], groups: [] }
  const byCase = new Map<string, { service: string; caseId: string; events: ReportEvent[] }>()
  for (const e of events) {
    const k = caseKey(e.service, e.case)
    let c = byCase.get(k)
    if (!c) byCase.set(k, (c = { service: e.service, caseId: e.case, events: [] }))
    c.events.push(e)
  }
  const stored = new Map((await loadCases(db, [...byCase.values()])).map((c) => [caseKey(c.service, c.caseId), c]))
  const writes: CaseWrite[] = []
  const groups = new Map<string, CaseGroup>()
  const addGroup = (g: CaseGroup): void => void groups.set(JSON.stringify(g), g)
  for (const [k, c] of byCase) {
    const before = stored.get(k)
    const all: CaseEventRecord[] = before ? [...before.events] : []
    const known = new Set(all.map((e) => e.id))
    for (const e of c.events) {
      if (known.has(e.id)) continue
      known.add(e.id)
      const rec: CaseEventRecord = { id: e.id, status: e.status, ts: e.ts, dims: e.dims }
      if (e.due !== undefined) rec.due = e.due
      if (e.rating !== undefined) rec.rating = e.rating
      all.push(rec)
    }
    if (before && all.length === before.events.length) continue
    const sorted = sortCaseEvents(all)
    const state = deriveCase(sorted)
    writes.push({ service: c.service, caseId: c.caseId, partition, events: sorted, state, previousFindings: before?.findings ?? 0 })
    if (before) addGroup(groupOf(c.service, before.dims))
    addGroup(groupOf(c.service, state.dims))
  }
  return { writes, groups: [...groups.values()] }
}
