import type { ReportEvent } from '../../src/schemas/report-event.js'

/** A report event as a source sends it (dims only on the events that carry them). */
export type ReportIn = Omit<ReportEvent, 'dims'> & { dims?: Record<string, string> }

/** What a case ends as; the generator emits the events that lead there. */
export interface CasePlan {
  caseId: string
  agency: string
  category: string
  receivedTs: number
  end: 'pending' | 'in_progress' | 'resolved' | 'rejected'
  /** Resolution after the due time. */
  late?: boolean
  rating?: number
  /** Extra impossible events that must become findings: a rating before resolution, a second resolution. */
  bad?: 'rated_before_resolved' | 'closed_twice'
}

export interface FieldPlan {
  service: string
  province: string
  cases: CasePlan[]
}

const MIN = 60_000
const DUE_AFTER = 2 * 86_400_000

/** Events of one case in its lifecycle order, each a few minutes after the previous one. */
export function caseEvents(plan: FieldPlan, c: CasePlan): ReportIn[] {
  const dims = { province: plan.province, agency: c.agency, category: c.category }
  const base = { source: `${plan.province}-app`, service: plan.service, case: c.caseId }
  const out: ReportIn[] = [{ ...base, id: `${c.caseId}-r`, status: 'received', ts: c.receivedTs, due: c.receivedTs + DUE_AFTER, dims }]
  if (c.end === 'pending') return out
  out.push({ ...base, id: `${c.caseId}-a`, status: 'assigned', ts: c.receivedTs + 10 * MIN })
  if (c.end === 'in_progress') {
    out.push({ ...base, id: `${c.caseId}-p`, status: 'in_progress', ts: c.receivedTs + 40 * MIN })
    if (c.bad === 'rated_before_resolved') out.push({ ...base, id: `${c.caseId}-x`, status: 'rated', rating: 5, ts: c.receivedTs + 50 * MIN })
    return out
  }
  const closeTs = c.receivedTs + (c.late ? DUE_AFTER + 60 * MIN : 90 * MIN)
  out.push({ ...base, id: `${c.caseId}-c`, status: c.end, ts: closeTs })
  if (c.bad === 'closed_twice') out.push({ ...base, id: `${c.caseId}-c2`, status: 'resolved', ts: closeTs + 5 * MIN })
  if (c.rating !== undefined) out.push({ ...base, id: `${c.caseId}-s`, status: 'rated', rating: c.rating, ts: closeTs + 120 * MIN })
  return out
}

/** Deterministic shuffle, so a failing run can be replayed. */
export function shuffle<T>(items: T[], seed: number): T[] {
  let x = seed
  for (let i = items.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) % 2147483648
    const j = x % (i + 1)
    ;[items[i], items[j]] = [items[j] as T, items[i] as T]
  }
  return items
}
