import { CommitPoller, drainCommits, openDb } from './commits.js'
import { CpuMeter, type CpuUsage } from './cpu.js'
import { Poster } from './http.js'
import { INGEST_METRICS, INGEST_STATIONS_PER_PROVINCE } from './ingest.js'
import { buildTemplates, postAtFullSpeed } from './load.js'
import { drainTimeoutOf, type Options } from './options.js'
import type { Stack } from './stack.js'
import { Tally } from './stats.js'
import { round, say, waitUntil } from './util.js'
import { seriesGrid } from './workload.js'

export const SAMPLE_EVERY_MS = 250

export interface Sample {
  /** ms since the first post */
  atMs: number
  committed: number
  acked: number
}

export interface ThroughputResult {
  settings: { concurrency: number; batch: number; postS: number; workers: number; partitions: number; series: number; sampleEveryMs: number }
  postedS: number
  acceptedEvents: number
  ingestEventsPerSec: number
  postErrors: Record<string, number>
  complete: boolean
  committedEvents: number
  lateEvents: number
  /** First post to the sample that saw every accepted event committed. */
  allCommittedS: number | null
  overallCommittedPerSec: number | null
  committedPerSecWhilePosting: number
  committedPerSecAfterPosting: number | null
  /** Slope between 10% and 90% of the events committed. */
  steadyCommittedPerSec: number | null
  peak1sCommittedPerSec: number
  maxBacklogEvents: number
  /** Drain transactions per second and events in each, first post to all committed (from Postgres statistics, so approximate). */
  drainCommitsPerSec: number
  eventsPerDrainCommit: number | null
  cpuWhilePosting: CpuUsage
  cpuAfterPosting: CpuUsage
}

/** Posts at full speed for a while with the workers running, then watches the drain commit it all. */
export async function runThroughput(stack: Stack, opts: Options, workers: number): Promise<ThroughputResult> {
  const series = seriesGrid(INGEST_METRICS, INGEST_STATIONS_PER_PROVINCE)
  const templates = buildTemplates(series, opts.batch)
  const poster = new Poster(stack.port, opts.concurrency)
  const db = await openDb(stack.databaseUrl)
  const errors = new Tally()
  const drainTimeoutS = drainTimeoutOf(opts, 'e2e')
  const samples: Sample[] = []
  let acked = 0
  say(`e2e throughput: ${opts.concurrency} clients x ${opts.batch} events/request for ${opts.e2eDurationS} s with ${workers} worker(s), then until all is committed (at most ${drainTimeoutS} s)`)

  const commitsBefore = await drainCommits(db)
  const meter = new CpuMeter(stack.cpuTargets())
  const t0 = performance.now()
  const poller = new CommitPoller(db, SAMPLE_EVERY_MS, (c, atMs) => samples.push({ atMs: atMs - t0, committed: c.events, acked }))
  const progress = setInterval(() => {
    const s = samples[samples.length - 1]
    if (s) say(`e2e throughput: ${s.acked} accepted, ${s.committed} committed, backlog ${s.acked - s.committed}`)
  }, 2000)
  try {
    const posting = postAtFullSpeed({
      poster,
      clients: opts.concurrency,
      templates,
      stopAtMs: t0 + opts.e2eDurationS * 1000,
      onOutcome: (o) => {
        if (o.failure) errors.add(o.failure)
        else acked += o.ack?.accepted ?? 0
      },
    })
    await Promise.race([posting, stack.crashed()])
    const postedS = (performance.now() - t0) / 1000
    const cpuWhilePosting = meter.lap()
    const total = acked
    const complete = await Promise.race([
      waitUntil(() => (poller.latest?.events ?? 0) >= total, drainTimeoutS * 1000, SAMPLE_EVERY_MS / 2),
      stack.crashed(),
    ])
    const cpuAfterPosting = meter.lap()
    await poller.stop()
    const elapsedS = (performance.now() - t0) / 1000
    const drainTxs = (await drainCommits(db)) - commitsBefore
    return {
      settings: { concurrency: opts.concurrency, batch: opts.batch, postS: opts.e2eDurationS, workers, partitions: stack.partitions, series: series.length, sampleEveryMs: SAMPLE_EVERY_MS },
      postedS: round(postedS, 2),
      acceptedEvents: total,
      ingestEventsPerSec: round(total / postedS),
      postErrors: errors.counts,
      complete,
      committedEvents: poller.latest?.events ?? 0,
      lateEvents: poller.latest?.late ?? 0,
      ...commitRates(samples, total, postedS),
      drainCommitsPerSec: round(drainTxs / elapsedS, 1),
      eventsPerDrainCommit: drainTxs > 0 ? round((poller.latest?.events ?? 0) / drainTxs, 1) : null,
      cpuWhilePosting,
      cpuAfterPosting,
    }
  } finally {
    clearInterval(progress)
    await poller.stop().catch(() => undefined)
    poster.close()
    await db.end().catch(() => undefined)
  }
}

export type CommitRates = Pick<
  ThroughputResult,
  'allCommittedS' | 'overallCommittedPerSec' | 'committedPerSecWhilePosting' | 'committedPerSecAfterPosting' | 'steadyCommittedPerSec' | 'peak1sCommittedPerSec' | 'maxBacklogEvents'
>

export function commitRates(samples: readonly Sample[], total: number, postedS: number): CommitRates {
  const firstAt = (count: number): Sample | undefined => samples.find((s) => s.committed >= count)
  const perSec = (events: number, ms: number): number | null => (ms > 0 ? round((events / ms) * 1000) : null)
  const done = total > 0 ? firstAt(total) : undefined
  const atPostEnd = samples.find((s) => s.atMs / 1000 >= postedS) ?? samples[samples.length - 1]
  const p10 = firstAt(total * 0.1)
  const p90 = firstAt(total * 0.9)
  return {
    allCommittedS: done ? round(done.atMs / 1000, 2) : null,
    overallCommittedPerSec: done ? perSec(total, done.atMs) : null,
    committedPerSecWhilePosting: round((atPostEnd?.committed ?? 0) / postedS),
    committedPerSecAfterPosting: done && atPostEnd ? perSec(total - atPostEnd.committed, done.atMs - atPostEnd.atMs) : null,
    steadyCommittedPerSec: p10 && p90 && p90 !== p10 ? perSec(p90.committed - p10.committed, p90.atMs - p10.atMs) : null,
    peak1sCommittedPerSec: peakRate(samples, 1000, perSec),
    maxBacklogEvents: Math.max(0, ...samples.map((s) => s.acked - s.committed)),
  }
}

function peakRate(samples: readonly Sample[], spanMs: number, perSec: (events: number, ms: number) => number | null): number {
  const span = Math.max(1, Math.round(spanMs / SAMPLE_EVERY_MS))
  let peak = 0
  for (let i = span; i < samples.length; i++) {
    const a = samples[i - span] as Sample
    const b = samples[i] as Sample
    peak = Math.max(peak, perSec(b.committed - a.committed, b.atMs - a.atMs) ?? 0)
  }
  return peak
}
