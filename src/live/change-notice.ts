/**
 * What a drainer (or the overdue check) announces after each commit: which bucket starts of which
 * metric and window changed, and which case groups. Hubs turn it into topic deltas by reading the committed state.
 */
export interface ChangeNotice {
  partition: number
  metrics: Record<string, Record<number, number[]>>
  /** KPI groups (service x province x agency x category) whose cases changed. */
  cases?: CaseGroup[]
  /** An audit was queued, moved on or finished. */
  audits?: true
  /** A history import was queued, moved on (rows read, events committed) or finished. */
  imports?: true
}

export interface CaseGroup {
  service: string
  province: string | null
  agency: string | null
  category: string | null
}
