/**
 * What a drainer announces after each commit: which bucket starts of which metric and window
 * changed. Hubs turn it into topic deltas by reading the committed state.
 */
export interface ChangeNotice {
  partition: number
  metrics: Record<string, Record<number, number[]>>
}
