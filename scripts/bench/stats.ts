import { build, type Histogram } from 'hdr-histogram-js'
import { round } from './util.js'

export interface LatencySummary {
  count: number
  p50: number | null
  p90: number | null
  p95: number | null
  p99: number | null
  max: number | null
  mean: number | null
}

/** Latencies in ms, kept in µs so sub-millisecond answers still separate. */
export class LatencyRecorder {
  private readonly h: Histogram = build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 })

  record(ms: number): void {
    this.h.recordValue(Math.max(1, Math.round(ms * 1000)))
  }

  get count(): number {
    return this.h.totalCount
  }

  summary(): LatencySummary {
    if (this.h.totalCount === 0) return { count: 0, p50: null, p90: null, p95: null, p99: null, max: null, mean: null }
    const ms = (us: number): number => round(us / 1000, 2)
    return {
      count: this.h.totalCount,
      p50: ms(this.h.getValueAtPercentile(50)),
      p90: ms(this.h.getValueAtPercentile(90)),
      p95: ms(this.h.getValueAtPercentile(95)),
      p99: ms(this.h.getValueAtPercentile(99)),
      max: ms(this.h.maxValue),
      mean: ms(this.h.mean),
    }
  }
}

/** Counts by key, e.g. errors by kind. */
export class Tally {
  readonly counts: Record<string, number> = {}

  add(key: string, n = 1): void {
    this.counts[key] = (this.counts[key] ?? 0) + n
  }

  get total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0)
  }
}
