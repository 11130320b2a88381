import { CommitPoller, committedSoFar, drainCommits, openDb, type Committed } from './commits.js'
import { CpuMeter, type CpuUsage } from './cpu.js'
import { acknowledgement, failureKind, Poster } from './http.js'
import { PostedCounts, Subscriber, type Delta } from './live.js'
import type { Options } from './options.js'
import type { Stack } from './stack.js'
import { LatencyRecorder, Tally, type LatencySummary } from './stats.js'
import { errorMessage, round, say, sleep, waitUntil } from './util.js'
import { PROVINCES, provinceCode, readingOf, seriesGrid, type Series } from './workload.js'

/** A metric of its own, so topic counts hold only this phase's events. */
const LIVE_METRIC = 'bench.live'
const LIVE_SOURCE = 'bench-live'
const LIVE_STATIONS_PER_PROVINCE = 20
/** Connections the paced poster may use when an answer takes longer than a tick. */
const PACED_CONNECTIONS = 4
/** How long the last deltas may take to arrive after the last post. */
const SETTLE_TIMEOUT_MS = 10_000
const COMMIT_POLL_MS = 25
const SPIKES_KEPT = 5
/** PostedCounts topic holding every posted event, matched against the committed count. */
const ALL = 'all'

export interface LatencyResult {
  settings: { subscribers: number; rate: number; tickMs: number; durationS: number; warmupS: number; series: number; metric: string; window: string; commitPollMs: number }
  postedEvents: number
  acceptedEvents: number
  postedPerSec: number
  postErrors: Record<string, number>
  /** Paced batches sent more than one tick late (the bench or the machine fell behind). */
  lateTicks: number
  deltas: number
  deltasMeasured: number
  deltasInWarmup: number
  deltasUnmatched: number
  latencyMs: LatencySummary
  /** Post to the poll that saw the batch committed: the drain's share of the latency, up to one poll high. */
  commitLatencyMs: LatencySummary
  /** Drain transactions per second and events in each, over the phase (from Postgres statistics, so approximate). */
  drainCommitsPerSec: number
  eventsPerDrainCommit: number | null
  /** Highest latency among the deltas received in each second of the run. */
  maxLatencyMsBySecond: number[]
  spikes: { atS: number; ms: number; province: string }[]
  subscribersComplete: number
  problems: string[]
  cpu: CpuUsage
}

/** Matches deltas to posts and keeps the latency figures. */
class DeltaLatencies {
  readonly recorder = new LatencyRecorder()
  readonly bySecond: number[] = []
  readonly spikes: LatencyResult['spikes'] = []
  deltas = 0
  warmup = 0
  unmatched = 0

  constructor(
    private readonly posted: PostedCounts,
    private readonly t0: number,
    private readonly warmupMs: number,
  ) {}

  onDelta(d: Delta): void {
    this.deltas++
    const postedAt = this.posted.postedAt(d.province, d.startMs, d.count)
    if (postedAt === undefined) {
      this.unmatched++
      return
    }
    if (postedAt < this.t0 + this.warmupMs) {
      this.warmup++
      return
    }
    const ms = d.receivedMs - postedAt
    this.recorder.record(ms)
    const second = Math.floor((d.receivedMs - this.t0) / 1000)
    this.bySecond[second] = Math.max(this.bySecond[second] ?? 0, round(ms))
    this.keepSpike({ atS: round((d.receivedMs - this.t0) / 1000, 2), ms: round(ms, 1), province: d.province })
  }

  private keepSpike(s: LatencyResult['spikes'][number]): void {
    const least = this.spikes[SPIKES_KEPT - 1]
    if (least && s.ms <= least.ms) return
    this.spikes.push(s)
    this.spikes.sort((a, b) => b.ms - a.ms)
    this.spikes.length = Math.min(this.spikes.length, SPIKES_KEPT)
  }
}

/** Matches rises of the committed count to posts. */
class CommitLatencies {
  readonly recorder = new LatencyRecorder()
  private seen = 0

  constructor(
    private readonly posted: PostedCounts,
    private readonly baseline: number,
    private readonly fromMs: number,
  ) {}

  onSample(c: Committed, atMs: number): void {
    const committed = c.events - this.baseline
    if (committed <= this.seen) return
    this.seen = committed
    const postedAt = this.posted.postedAt(ALL, 0, committed)
    if (postedAt !== undefined && postedAt >= this.fromMs) this.recorder.record(atMs - postedAt)
  }
}

interface PacedBatch {
  body: string
  events: number
  startMs: number
  perProvince: Map<string, number>
}

/** The next `n` series round-robin, all stamped `ts` (so the batch lands in one bucket). */
function pacedBatch(series: readonly Series[], cursor: number, n: number, tag: number, ts: number): PacedBatch {
  const events: object[] = []
  const perProvince = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const index = (cursor + i) % series.length
    const s = series[index] as Series
    events.push({ id: `${tag}-${i}`, source: LIVE_SOURCE, metric: s.metric, ts, value: readingOf(index, tag), dims: { province: s.province, station: s.station } })
    perProvince.set(s.province, (perProvince.get(s.province) ?? 0) + 1)
  }
  return { body: JSON.stringify(events), events: n, startMs: Math.floor(ts / 60_000) * 60_000, perProvince }
}

async function connectSubscribers(stack: Stack, count: number, onDelta: (d: Delta) => void): Promise<Subscriber[]> {
  const url = `ws://127.0.0.1:${stack.port}/v1/live`
  const subscribers = Array.from({ length: count }, (_, i) => new Subscriber(url, provinceCode(i % PROVINCES), LIVE_METRIC, onDelta))
  try {
    await Promise.all(subscribers.map((s) => s.ready(15_000)))
  } catch (err) {
    subscribers.forEach((s) => s.close())
    throw new Error(`live subscribers could not subscribe: ${errorMessage(err)}`)
  }
  return subscribers
}

/** The subscriber has seen, for every bucket of its province, the count that was posted into it. */
function subscriberComplete(s: Subscriber, posted: PostedCounts): boolean {
  for (const [start, count] of posted.finals(s.province)) if ((s.seen.get(start) ?? 0) !== count) return false
  return true
}

/** Paced posting with WebSocket subscribers: time from a post to the delta that shows it. */
export async function runLatency(stack: Stack, opts: Options): Promise<LatencyResult> {
  const series = seriesGrid([LIVE_METRIC], LIVE_STATIONS_PER_PROVINCE)
  const posted = new PostedCounts()
  let deltas: DeltaLatencies | undefined
  const subscribers = await connectSubscribers(stack, opts.subscribers, (d) => deltas?.onDelta(d))
  const poster = new Poster(stack.port, PACED_CONNECTIONS)
  const db = await openDb(stack.databaseUrl)
  const errors = new Tally()
  say(`e2e latency: ${subscribers.length} subscribers, ${opts.rate} events/s in batches every ${opts.tickMs} ms for ${opts.latencyDurationS} s over ${series.length} series`)

  const baseline = (await committedSoFar(db)).events
  const commitsBefore = await drainCommits(db)
  const meter = new CpuMeter(stack.cpuTargets())
  const t0 = performance.now()
  const warmupMs = opts.latencyWarmupS * 1000
  deltas = new DeltaLatencies(posted, t0, warmupMs)
  const commits = new CommitLatencies(posted, baseline, t0 + warmupMs)
  const poller = new CommitPoller(db, COMMIT_POLL_MS, (c, atMs) => commits.onSample(c, atMs))
  const progress = setInterval(() => say(`e2e latency: ${deltas?.deltas ?? 0} deltas, p99 so far ${deltas?.recorder.summary().p99 ?? '-'} ms`), 3000)
  try {
    const record = (b: PacedBatch, postedAt: number): void => {
      for (const [province, n] of b.perProvince) posted.add(province, b.startMs, n, postedAt)
      posted.add(ALL, 0, b.events, postedAt)
    }
    const sent = await Promise.race([postPaced(poster, series, opts, t0, errors, record), stack.crashed()])
    await waitUntil(() => subscribers.every((s) => subscriberComplete(s, posted)), SETTLE_TIMEOUT_MS, 50)
    const cpu = meter.lap()
    const elapsedS = (performance.now() - t0) / 1000
    const drainTxs = (await drainCommits(db)) - commitsBefore
    const drained = (await committedSoFar(db)).events - baseline
    return {
      settings: {
        subscribers: subscribers.length,
        rate: opts.rate,
        tickMs: opts.tickMs,
        durationS: opts.latencyDurationS,
        warmupS: opts.latencyWarmupS,
        series: series.length,
        metric: LIVE_METRIC,
        window: '1m',
        commitPollMs: COMMIT_POLL_MS,
      },
      ...sent,
      postedPerSec: round(sent.postedEvents / opts.latencyDurationS),
      postErrors: errors.counts,
      deltas: deltas.deltas,
      deltasMeasured: deltas.recorder.count,
      deltasInWarmup: deltas.warmup,
      deltasUnmatched: deltas.unmatched,
      latencyMs: deltas.recorder.summary(),
      commitLatencyMs: commits.recorder.summary(),
      drainCommitsPerSec: round(drainTxs / elapsedS, 1),
      eventsPerDrainCommit: drainTxs > 0 ? round(drained / drainTxs, 1) : null,
      maxLatencyMsBySecond: Array.from(deltas.bySecond, (v) => v ?? 0),
      spikes: deltas.spikes,
      subscribersComplete: subscribers.filter((s) => subscriberComplete(s, posted)).length,
      problems: subscribers.flatMap((s) => s.problems.map((p) => `subscriber ${s.province}: ${p}`)),
      cpu,
    }
  } finally {
    clearInterval(progress)
    await poller.stop().catch(() => undefined)
    subscribers.forEach((s) => s.close())
    poster.close()
    await db.end().catch(() => undefined)
  }
}

/**
 * Posts `rate` events per second in a batch every tick, on an absolute schedule so a slow answer
 * does not slow the rate (the batch waits for a free connection, and that wait counts as latency).
 */
async function postPaced(
  poster: Poster,
  series: readonly Series[],
  opts: Options,
  t0: number,
  errors: Tally,
  record: (b: PacedBatch, postedAt: number) => void,
): Promise<{ postedEvents: number; acceptedEvents: number; lateTicks: number }> {
  const inFlight: Promise<void>[] = []
  let postedEvents = 0
  let acceptedEvents = 0
  let lateTicks = 0
  const endMs = t0 + opts.latencyDurationS * 1000
  for (let tick = 0; ; tick++) {
    const due = t0 + tick * opts.tickMs
    if (due >= endMs) break
    const wait = due - performance.now()
    if (wait > 0) await sleep(wait)
    else if (-wait > opts.tickMs) lateTicks++
    const n = Math.round((opts.rate * Math.min(due + opts.tickMs - t0, endMs - t0)) / 1000) - postedEvents
    if (n <= 0) continue
    const batch = pacedBatch(series, postedEvents, n, tick, Date.now())
    record(batch, performance.now())
    postedEvents += n
    inFlight.push(
      poster.post('/v1/metrics', batch.body).then(
        (reply) => {
          const ack = acknowledgement(reply)
          if (ack) acceptedEvents += ack.accepted
          else errors.add(failureKind(reply))
        },
        (err: unknown) => errors.add(failureKind(err instanceof Error ? err : new Error(errorMessage(err)))),
      ),
    )
  }
  await Promise.all(inFlight)
  return { postedEvents, acceptedEvents, lateTicks }
}
