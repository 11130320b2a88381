import { CpuMeter, type CpuUsage } from './cpu.js'
import { Poster } from './http.js'
import { buildTemplates, postAtFullSpeed, type Outcome } from './load.js'
import type { Options } from './options.js'
import type { Stack } from './stack.js'
import { LatencyRecorder, Tally, type LatencySummary } from './stats.js'
import { round, say } from './util.js'
import { seriesGrid } from './workload.js'

export const INGEST_METRICS = ['bench.load', 'bench.temp']
export const INGEST_STATIONS_PER_PROVINCE = 10

export interface IngestResult {
  settings: { concurrency: number; batch: number; durationS: number; warmupS: number; workers: number; partitions: number; series: number }
  measuredS: number
  eventsPerSec: number
  requestsPerSec: number
  acceptedEvents: number
  duplicates: number
  requests: number
  requestLatencyMs: LatencySummary
  errors: Record<string, number>
  errorCount: number
  cpu: CpuUsage | null
}

/** Counts what completed inside the measured window; latencies of requests started inside it. */
class Window {
  readonly latency = new LatencyRecorder()
  readonly errors = new Tally()
  /** Every acknowledged event, warm-up included, for the progress line. */
  acceptedInRun = 0
  accepted = 0
  duplicates = 0
  requests = 0

  constructor(
    private readonly fromMs: number,
    private readonly toMs: number,
  ) {}

  add(o: Outcome): void {
    this.acceptedInRun += o.ack?.accepted ?? 0
    if (o.startedMs >= this.fromMs && o.startedMs < this.toMs) this.latency.record(o.endedMs - o.startedMs)
    if (o.endedMs < this.fromMs || o.endedMs > this.toMs) return
    if (o.failure) return this.errors.add(o.failure)
    this.requests++
    this.accepted += o.ack?.accepted ?? 0
    this.duplicates += o.ack?.duplicates ?? 0
  }
}

/** Full-speed POSTs against the ingest path; what counts is the 202s, i.e. events in the Redis log. */
export async function runIngest(stack: Stack, opts: Options, workers: number): Promise<IngestResult> {
  const series = seriesGrid(INGEST_METRICS, INGEST_STATIONS_PER_PROVINCE)
  const templates = buildTemplates(series, opts.batch)
  const poster = new Poster(stack.port, opts.concurrency)
  const t0 = performance.now()
  const window = new Window(t0 + opts.warmupS * 1000, t0 + opts.durationS * 1000)
  say(`ingest: ${opts.concurrency} clients x ${opts.batch} events/request over ${series.length} series for ${opts.durationS} s (first ${opts.warmupS} s warm-up)`)

  let meter: CpuMeter | undefined
  let cpu: CpuUsage | null = null
  const timers = [
    setTimeout(() => (meter = new CpuMeter(stack.cpuTargets())), opts.warmupS * 1000),
    setTimeout(() => (cpu = meter?.lap() ?? null), opts.durationS * 1000),
  ]
  const progress = progressLine(window)
  try {
    await Promise.race([
      postAtFullSpeed({ poster, clients: opts.concurrency, templates, stopAtMs: t0 + opts.durationS * 1000, onOutcome: (o) => window.add(o) }),
      stack.crashed(),
    ])
  } finally {
    timers.forEach(clearTimeout)
    clearInterval(progress)
    poster.close()
  }
  const measuredS = opts.durationS - opts.warmupS
  return {
    settings: { concurrency: opts.concurrency, batch: opts.batch, durationS: opts.durationS, warmupS: opts.warmupS, workers, partitions: stack.partitions, series: series.length },
    measuredS,
    eventsPerSec: round(window.accepted / measuredS),
    requestsPerSec: round(window.requests / measuredS, 1),
    acceptedEvents: window.accepted,
    duplicates: window.duplicates,
    requests: window.requests,
    requestLatencyMs: window.latency.summary(),
    errors: window.errors.counts,
    errorCount: window.errors.total,
    cpu,
  }
}

function progressLine(window: Window): NodeJS.Timeout {
  let last = { accepted: 0, at: performance.now() }
  return setInterval(() => {
    const now = { accepted: window.acceptedInRun, at: performance.now() }
    const rate = ((now.accepted - last.accepted) / (now.at - last.at)) * 1000
    say(`ingest: ${Math.round(rate)} events/s acknowledged, ${window.errors.total} errors`)
    last = now
  }, 2000)
}
