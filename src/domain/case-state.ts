import type { ReportStatus } from '../schemas/report-event.js'

/** One event of a case as the case row keeps it. */
export interface CaseEventRecord {
  id: string
  status: ReportStatus
  ts: number
  due?: number
  rating?: number
  dims: Record<string, string>
}

export type CaseStateName = 'pending' | 'in_progress' | 'resolved' | 'rejected'

export type FindingKind = 'duplicate_received' | 'after_closed' | 'closed_twice' | 'rated_before_resolved' | 'rated_unresolved'

export interface Finding {
  eventId: string
  eventTs: number
  kind: FindingKind
  detail: string
}

export interface CaseState {
  state: CaseStateName
  receivedTs: number | null
  /** First assignment or start of work. */
  startedTs: number | null
  resolvedTs: number | null
  rejectedTs: number | null
  dueTs: number | null
  /** Latest valid rating: given on a resolved case, after its resolution. */
  rating: number | null
  ratedTs: number | null
  lastTs: number
  dims: Record<string, string>
  findings: Finding[]
}

const RANK: Record<ReportStatus, number> = { received: 0, assigned: 1, in_progress: 2, resolved: 3, rejected: 3, rated: 4 }

/** Event time decides; at equal times the lifecycle order does, then the id, so the order is total. */
export function sortCaseEvents(events: CaseEventRecord[]): CaseEventRecord[] {
  return events.sort((a, b) => a.ts - b.ts || RANK[a.status] - RANK[b.status] || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}

const iso = (ms: number): string => new Date(ms).toISOString()

/**
 * Replays a case's events in event-time order and derives its state. Pure and total: an
 * impossible transition never throws; it is ignored for the state and reported as a finding with
 * the event id, so a bad source cannot block its partition or bend a KPI.
 */
export function deriveCase(sorted: readonly CaseEventRecord[]): CaseState {
  const s: CaseState = {
    state: 'pending',
    receivedTs: null,
    startedTs: null,
    resolvedTs: null,
    rejectedTs: null,
    dueTs: null,
    rating: null,
    ratedTs: null,
    lastTs: 0,
    dims: {},
    findings: [],
  }
  const find = (e: CaseEventRecord, kind: FindingKind, detail: string): void => void s.findings.push({ eventId: e.id, eventTs: e.ts, kind, detail })
  let started = false
  for (const e of sorted) {
    s.lastTs = Math.max(s.lastTs, e.ts)
    Object.assign(s.dims, e.dims)
    if (e.due !== undefined) s.dueTs = e.due
    const closedTs = s.resolvedTs ?? s.rejectedTs
    switch (e.status) {
      case 'received':
        if (s.receivedTs !== null) find(e, 'duplicate_received', `case already received at ${iso(s.receivedTs)}`)
        else s.receivedTs = e.ts
        break
      case 'assigned':
      case 'in_progress':
        if (closedTs !== null) find(e, 'after_closed', `${e.status} after the case was closed at ${iso(closedTs)}`)
        else if (!started) {
          started = true
          s.startedTs = e.ts
        }
        break
      case 'resolved':
      case 'rejected':
        if (closedTs !== null) find(e, 'closed_twice', `${e.status} but the case was already ${s.resolvedTs !== null ? 'resolved' : 'rejected'} at ${iso(closedTs)}`)
        else if (e.status === 'resolved') s.resolvedTs = e.ts
        else s.rejectedTs = e.ts
        break
      case 'rated':
        if (s.resolvedTs === null) {
          find(e, s.rejectedTs !== null ? 'rated_unresolved' : 'rated_before_resolved', s.rejectedTs !== null ? 'rating on a rejected case' : 'rating before the case was resolved')
        } else {
          s.rating = e.rating ?? null
          s.ratedTs = e.ts
        }
        break
    }
  }
  s.state = s.resolvedTs !== null ? 'resolved' : s.rejectedTs !== null ? 'rejected' : s.startedTs !== null ? 'in_progress' : 'pending'
  return s
}
