import { fileURLToPath } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Child } from './children.js'
import { CpuMeter, type CpuTarget, type CpuUsage } from './cpu.js'
import { Accounting, connectAll, LanternSocket, openFilesLimit, RssSampler, rssMiB, SocketIoSocket, type FanoutSocket, type PeerPayload } from './fanout-clients.js'
import { acknowledgement, failureKind, Poster } from './http.js'
import { PostedCounts } from './live.js'
import type { Options } from './options.js'
import type { Stack } from './stack.js'
import { Tally, type LatencySummary } from './stats.js'
import { errorMessage, round, say, sleep, waitUntil } from './util.js'
import { provinceCode, readingOf } from './workload.js'

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))
const METRIC = 'bench.fan'
const SOURCE = 'bench-fanout'
const TOPICS = 10
/** Events in each posted batch, one per station of the topic's province. */
const EVENTS_PER_BATCH = 5
const CONNECT_CONCURRENCY = 200
const CONNECT_TIMEOUT_MS = 60_000
/** How long the last messages may take to arrive once sending stops (a saturated run can be many seconds behind). */
const SETTLE_TIMEOUT_MS = 30_000
/** Past these the bench (the clients and the schedule) is not keeping up: the figures are the machine's limit, not the server's. */
const SATURATED_LATE_SHARE = 0.05
const SATURATED_LOOP_P99_MS = 100
const CLOSE_TIMEOUT_MS = 20_000
const PACED_CONNECTIONS = 4
/** File descriptors kept free besides the client sockets (Redis, Postgres, HTTP, tsx). */
const SPARE_FILES = 500
/** Used for the Socket.IO payload when no Lantern delta was seen to size it by. */
const DEFAULT_PAYLOAD_BYTES = 400
const LOOP_RESOLUTION_MS = 1

export const FANOUT_NOTE =
  'The Socket.IO peer does no computation: it re-broadcasts a payload the bench emits to it. Each Lantern delta is computed from committed ' +
  'PostgreSQL state: the bench posts events over HTTP, they are appended to the Redis log, drained and committed by the worker, re-read and rolled up ' +
  'by the hub (50 ms coalescing tick), sequenced and published through Redis, then written to every subscriber. Latency is measured from the ' +
  "bench's post (Lantern) or emit (Socket.IO) to receipt, so Lantern's includes ingest, drain, commit and the tick."

export interface FanoutSettings {
  sockets: number[]
  topics: number
  /** Batches (Lantern) or broadcasts (Socket.IO) per topic per second. */
  perTopicRate: number
  intervalMs: number
  eventsPerBatch: number
  durationS: number
  warmupS: number
  metric: string
  window: string
  connectConcurrency: number
  openFilesLimit: number | null
}

export interface FanoutSide {
  system: 'lantern' | 'socket.io'
  sockets: number
  connected: number
  connectFailures: Record<string, number>
  connectS: number
  /** Distinct deltas (topic, seq) first received inside the measured window, per second. */
  publishedPerSec: number
  /** Messages received by all subscribers inside the measured window, per second. */
  deliveredPerSec: number
  /** What every subscriber of each topic should have received of those deltas, per second. */
  expectedPerSec: number
  /** Over the whole round (settling included): messages received / distinct deltas of each topic x its subscribers. Below 1: lost or coalesced. */
  deliveredRatio: number | null
  meanMessageBytes: number | null
  latencyMs: LatencySummary
  unmatched: number
  /** Sockets that ended with the last value of their topic. */
  socketsComplete: number
  /** Seconds from the end of sending until every socket had the last value; null if not within the settle timeout. */
  settleS: number | null
  /** The bench fell behind its schedule or its event loop stalled: the figures show the machine's limit. */
  benchSaturated: boolean
  closes: Record<string, number>
  problems: string[]
  problemCount: number
  /** Server process RSS: before the sockets connected, once connected, peak while measuring, at the end of posting. */
  serverRssMiB: { start: number | null; connected: number | null; peak: number | null; end: number | null }
  serverCpuPct: number | null
  cpu: CpuUsage
  /** Sends the bench's schedule made more than one interval late. */
  lateSends: number
  sent: number
  sendErrors: Record<string, number>
  /** Event-loop delay of the bench process (all the clients) while measuring. */
  benchLoopDelayMs: { p50: number; p99: number; max: number }
  /** Lantern only: the hub's own counters over the measured window. */
  hub?: { deltasPublishedPerSec: number; messagesSentPerSec: number; slowClosed: number; socketsAtEnd: number | null }
}

export interface FanoutRound {
  sockets: number
  lantern?: FanoutSide
  socketio?: FanoutSide
  /** Lantern / Socket.IO. */
  ratios?: Record<string, number | null>
  error?: string
}

export interface FanoutResult {
  settings: FanoutSettings
  rounds: FanoutRound[]
  note: string
}

/** A round's schedule: slot j goes to topic j % topics at t0 + j * interval / topics. */
interface Schedule {
  t0: number
  endMs: number
  slotMs: number
  window: { fromMs: number; toMs: number }
}

function scheduleOf(opts: Options, t0: number): Schedule {
  const intervalMs = 1000 / opts.fanoutRate
  return { t0, endMs: t0 + opts.durationS * 1000, slotMs: intervalMs / TOPICS, window: { fromMs: t0 + opts.warmupS * 1000, toMs: t0 + opts.durationS * 1000 } }
}

/** Calls fire(slot, topic) on the schedule; onMeasure once when the measured window opens. */
async function runSchedule(s: Schedule, fire: (slot: number, topic: number) => void, onMeasure: () => void): Promise<{ sent: number; late: number }> {
  let late = 0
  let measuring = false
  let slot = 0
  for (; ; slot++) {
    const due = s.t0 + slot * s.slotMs
    if (due >= s.endMs) break
    if (!measuring && due >= s.window.fromMs) {
      measuring = true
      onMeasure()
    }
    const wait = due - performance.now()
    if (wait > 0) await sleep(wait)
    else if (-wait > s.slotMs * TOPICS) late++
    fire(slot, slot % TOPICS)
  }
  return { sent: slot, late }
}

/** Hub counters from /metrics (Prometheus text; the process's default labels such as role are ignored). */
async function hubCounters(baseUrl: string): Promise<Record<string, number>> {
  const res = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(5000) })
  const text = await res.text()
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const m = /^(lantern_live_\w+)(?:\{[^}]*\})? ([\d.e+-]+)$/.exec(line)
    if (m) out[m[1] as string] = Number(m[2])
  }
  return out
}

const topicSpec = (t: number): object => ({ kind: 'aggregate', metric: METRIC, window: '1m', dims: { province: provinceCode(t) } })

function saturated(sent: { sent: number; late: number }, loop: ReturnType<typeof monitorEventLoopDelay>): boolean {
  return sent.late > sent.sent * SATURATED_LATE_SHARE || loopDelay(loop).p99 > SATURATED_LOOP_P99_MS
}

function loopDelay(h: ReturnType<typeof monitorEventLoopDelay>): FanoutSide['benchLoopDelayMs'] {
  // The histogram holds whole timer intervals: the delay is what exceeds the resolution.
  const ms = (ns: number): number => Math.max(0, round(ns / 1e6 - LOOP_RESOLUTION_MS, 1))
  return { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) }
}

/** Figures common to both systems, once posting and settling are over. */
function sideFigures(acct: Accounting, perTopic: number[], opts: Options): Pick<FanoutSide, 'publishedPerSec' | 'deliveredPerSec' | 'expectedPerSec' | 'deliveredRatio' | 'meanMessageBytes' | 'latencyMs' | 'unmatched' | 'closes' | 'problems' | 'problemCount'> {
  const seconds = opts.durationS - opts.warmupS
  const published = acct.publishedInWindow()
  const expected = published.reduce((sum, n, t) => sum + n * (perTopic[t] ?? 0), 0)
  const expectedTotal = acct.distinctPerTopic().reduce((sum, n, t) => sum + n * (perTopic[t] ?? 0), 0)
  return {
    publishedPerSec: round(published.reduce((a, b) => a + b, 0) / seconds, 1),
    deliveredPerSec: round(acct.delivered / seconds),
    expectedPerSec: round(expected / seconds),
    deliveredRatio: expectedTotal > 0 ? round(acct.deliveredTotal / expectedTotal, 4) : null,
    meanMessageBytes: acct.deliveredTotal > 0 ? round(acct.bytes / acct.deliveredTotal) : null,
    latencyMs: acct.latency.summary(),
    unmatched: acct.unmatched,
    closes: acct.closes.counts,
    problems: acct.problems,
    problemCount: acct.problemCount,
  }
}

function socketsPerTopic(sockets: readonly FanoutSocket[]): number[] {
  const per = new Array<number>(TOPICS).fill(0)
  for (const s of sockets) per[s.topic] = (per[s.topic] ?? 0) + 1
  return per
}

/** Lantern: N live sockets over TOPICS aggregate topics while the bench posts a batch per topic every interval. */
async function lanternRound(stack: Stack, opts: Options, n: number, posted: PostedCounts, roundIndex: number): Promise<FanoutSide> {
  const apiPid = stack.api?.pid
  const rssStart = rssMiB(apiPid)
  const before = await hubCounters(stack.baseUrl)
  const sink: { acct: Accounting | undefined; sentAt: (topic: number, startMs: number, count: number) => number | undefined } = {
    acct: undefined,
    sentAt: (topic, startMs, count) => posted.postedAt(provinceCode(topic), startMs, count),
  }
  const url = `ws://127.0.0.1:${stack.port}/v1/live`
  say(`fanout lantern ${n}: connecting ${n} sockets`)
  const connectStart = performance.now()
  const { sockets, failures } = await Promise.race([
    connectAll(n, CONNECT_CONCURRENCY, CONNECT_TIMEOUT_MS, (i) => new LanternSocket(url, i % TOPICS, topicSpec(i % TOPICS), sink)),
    stack.crashed(),
  ])
  const connectS = round((performance.now() - connectStart) / 1000, 2)
  const rssConnected = rssMiB(apiPid)
  say(`fanout lantern ${n}: ${sockets.length} subscribed in ${connectS} s${failures.total > 0 ? `, ${failures.total} failed` : ''}; posting for ${opts.durationS} s`)
  const perTopic = socketsPerTopic(sockets)
  const poster = new Poster(stack.port, PACED_CONNECTIONS)
  const errors = new Tally()
  const inFlight: Promise<void>[] = []
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS })
  try {
    const s = scheduleOf(opts, performance.now())
    const acct = new Accounting(TOPICS, s.window)
    sink.acct = acct
    const rss = new RssSampler(apiPid)
    let meter: CpuMeter | undefined
    let atMeasure: Promise<Record<string, number>> | undefined
    const fire = (slot: number, topic: number): void => {
      const province = provinceCode(topic)
      const ts = Date.now()
      const events = Array.from({ length: EVENTS_PER_BATCH }, (_, e) => ({
        id: `r${roundIndex}-${slot}-${e}`,
        source: SOURCE,
        metric: METRIC,
        ts,
        value: readingOf(topic * EVENTS_PER_BATCH + e, slot),
        dims: { province, station: `f${province}-${e}` },
      }))
      posted.add(province, Math.floor(ts / 60_000) * 60_000, EVENTS_PER_BATCH, performance.now())
      inFlight.push(
        poster.post('/v1/metrics', JSON.stringify(events)).then(
          (reply) => {
            if (!acknowledgement(reply)) errors.add(failureKind(reply))
          },
          (err: unknown) => errors.add(failureKind(err instanceof Error ? err : new Error(errorMessage(err)))),
        ),
      )
    }
    const onMeasure = (): void => {
      meter = new CpuMeter(stack.cpuTargets())
      atMeasure = hubCounters(stack.baseUrl).catch(() => ({}))
      rss.peak = rssMiB(apiPid)
      loop.enable()
    }
    const progress = setInterval(() => say(`fanout lantern ${n}: ${acct.deliveredTotal} messages, p99 so far ${acct.latency.summary().p99 ?? '-'} ms`), 5000)
    let sent: { sent: number; late: number }
    try {
      sent = await Promise.race([runSchedule(s, fire, onMeasure), stack.crashed()])
    } finally {
      clearInterval(progress)
    }
    const cpu = (meter as CpuMeter).lap()
    loop.disable()
    const rssEnd = rss.stop()
    const after = await hubCounters(stack.baseUrl)
    const start = (await atMeasure) ?? before
    await Promise.all(inFlight)
    // Every socket should end with the final count of the newest bucket of its topic.
    const finals = new Map<number, { start: number; count: number }>()
    for (let t = 0; t < TOPICS; t++) {
      const f = [...posted.finals(provinceCode(t))].sort((a, b) => b[0] - a[0])[0]
      if (f) finals.set(t, { start: f[0], count: f[1] })
    }
    const complete = (x: LanternSocket): boolean => {
      const f = finals.get(x.topic)
      return !f || (x.newestStart === f.start && x.newestCount === f.count)
    }
    const settled = await waitUntil(() => sockets.every(complete), SETTLE_TIMEOUT_MS, 100)
    const settleS = settled ? round((performance.now() - s.endMs) / 1000, 2) : null
    const seconds = opts.durationS - opts.warmupS
    const counter = (name: string): number => (after[name] ?? 0) - (start[name] ?? 0)
    return {
      system: 'lantern',
      sockets: n,
      connected: sockets.length,
      connectFailures: failures.counts,
      connectS,
      ...sideFigures(acct, perTopic, opts),
      socketsComplete: sockets.filter(complete).length,
      settleS,
      serverRssMiB: { start: rssStart, connected: rssConnected, peak: rss.peak, end: rssEnd },
      serverCpuPct: cpu.processes.api ?? null,
      cpu,
      lateSends: sent.late,
      sent: sent.sent,
      sendErrors: errors.counts,
      benchLoopDelayMs: loopDelay(loop),
      benchSaturated: saturated(sent, loop),
      hub: {
        deltasPublishedPerSec: round(counter('lantern_live_deltas_published_total') / seconds, 1),
        messagesSentPerSec: round(counter('lantern_live_messages_sent_total') / seconds),
        slowClosed: (after.lantern_live_slow_closed_total ?? 0) - (before.lantern_live_slow_closed_total ?? 0),
        socketsAtEnd: after.lantern_live_sockets ?? null,
      },
    }
  } finally {
    loop.disable()
    sockets.forEach((x) => x.close())
    poster.close()
    // The next round's "start" figures should not include these sockets.
    const closed = await waitUntil(async () => ((await hubCounters(stack.baseUrl).catch(() => ({}) as Record<string, number>)).lantern_live_sockets ?? -1) === 0, CLOSE_TIMEOUT_MS, 250)
    if (!closed) say(`fanout lantern ${n}: the hub still counts open sockets ${CLOSE_TIMEOUT_MS / 1000} s after the clients closed`)
  }
}

/** Starts the Socket.IO peer and resolves with its port. */
async function startPeer(): Promise<{ child: Child; port: number }> {
  const child = new Child('socketio', 'scripts/bench/socketio-server.ts', { ...process.env }, REPO_ROOT)
  try {
    const port = await Promise.race([
      new Promise<number>((resolve) => child.proc.once('message', (m: { port?: number }) => resolve(Number(m.port)))),
      child.exited.then((e) => Promise.reject(new Error(`the Socket.IO server exited while starting (${e.signal ?? `code ${e.code}`})`))),
      sleep(30_000).then(() => Promise.reject(new Error('the Socket.IO server did not report its port within 30 s'))),
    ])
    return { child, port }
  } catch (err) {
    await child.stop(5000)
    throw err
  }
}

/** Socket.IO: the same sockets, rooms and per-room rate, each broadcast a same-size payload emitted by the bench. */
async function socketIoRound(stack: Stack, opts: Options, n: number, payloadBytes: number): Promise<FanoutSide> {
  const { child, port } = await startPeer()
  const pid = child.pid
  const crashed = child.unexpectedExit().then((e) => Promise.reject(new Error(`the Socket.IO server exited during the run (${e.signal ?? `code ${e.code}`})`)))
  crashed.catch(() => undefined)
  const url = `http://127.0.0.1:${port}`
  const sockets: SocketIoSocket[] = []
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS })
  try {
    const rssStart = rssMiB(pid)
    const publisher = new SocketIoSocket(url, -1, { acct: undefined, bytesOf: () => 0 })
    await publisher.ready(CONNECT_TIMEOUT_MS)
    sockets.push(publisher)
    // Size the padding so a payload serializes to the mean Lantern delta size.
    const base = JSON.stringify({ seq: 1_000_000, room: 9, t: 123_456.789, pad: '' } satisfies PeerPayload).length
    const pad = 'x'.repeat(Math.max(0, payloadBytes - base))
    const sink: { acct: Accounting | undefined; bytesOf: (p: PeerPayload) => number } = { acct: undefined, bytesOf: () => base + pad.length }
    say(`fanout socket.io ${n}: connecting ${n} sockets`)
    const connectStart = performance.now()
    const { sockets: clients, failures } = await Promise.race([connectAll(n, CONNECT_CONCURRENCY, CONNECT_TIMEOUT_MS, (i) => new SocketIoSocket(url, i % TOPICS, sink)), crashed])
    sockets.push(...clients)
    const connectS = round((performance.now() - connectStart) / 1000, 2)
    const rssConnected = rssMiB(pid)
    say(`fanout socket.io ${n}: ${clients.length} joined in ${connectS} s${failures.total > 0 ? `, ${failures.total} failed` : ''}; broadcasting for ${opts.durationS} s`)
    const perTopic = socketsPerTopic(clients)
    const s = scheduleOf(opts, performance.now())
    const acct = new Accounting(TOPICS, s.window)
    sink.acct = acct
    const rss = new RssSampler(pid)
    const seqs = new Array<number>(TOPICS).fill(0)
    let meter: CpuMeter | undefined
    const targets: CpuTarget[] = [{ name: 'socketio', pids: pid === undefined ? [] : [pid] }, ...stack.cpuTargets()]
    const fire = (_slot: number, topic: number): void => {
      const seq = ++seqs[topic]!
      publisher.emit('publish', `r${topic}`, { seq, room: topic, t: performance.now(), pad } satisfies PeerPayload)
    }
    const onMeasure = (): void => {
      meter = new CpuMeter(targets)
      rss.peak = rssMiB(pid)
      loop.enable()
    }
    const progress = setInterval(() => say(`fanout socket.io ${n}: ${acct.deliveredTotal} messages, p99 so far ${acct.latency.summary().p99 ?? '-'} ms`), 5000)
    let sent: { sent: number; late: number }
    try {
      sent = await Promise.race([runSchedule(s, fire, onMeasure), crashed])
    } finally {
      clearInterval(progress)
    }
    const cpu = (meter as CpuMeter).lap()
    loop.disable()
    const rssEnd = rss.stop()
    const complete = (x: SocketIoSocket): boolean => x.lastSeq === seqs[x.topic]
    const settled = await Promise.race([waitUntil(() => clients.every(complete), SETTLE_TIMEOUT_MS, 100), crashed])
    const settleS = settled ? round((performance.now() - s.endMs) / 1000, 2) : null
    return {
      system: 'socket.io',
      sockets: n,
      connected: clients.length,
      connectFailures: failures.counts,
      connectS,
      ...sideFigures(acct, perTopic, opts),
      socketsComplete: clients.filter(complete).length,
      settleS,
      serverRssMiB: { start: rssStart, connected: rssConnected, peak: rss.peak, end: rssEnd },
      serverCpuPct: cpu.processes.socketio ?? null,
      cpu,
      lateSends: sent.late,
      sent: sent.sent,
      sendErrors: {},
      benchLoopDelayMs: loopDelay(loop),
      benchSaturated: saturated(sent, loop),
    }
  } finally {
    loop.disable()
    sockets.forEach((x) => x.close())
    await sleep(500)
    await child.stop(5000)
  }
}

const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || a === undefined || b === null || b === undefined || b === 0 ? null : round(a / b, 2)

function ratiosOf(l: FanoutSide, s: FanoutSide): Record<string, number | null> {
  const growth = (x: FanoutSide): number | null => (x.serverRssMiB.peak !== null && x.serverRssMiB.start !== null ? x.serverRssMiB.peak - x.serverRssMiB.start : null)
  return {
    publishedPerSec: ratio(l.publishedPerSec, s.publishedPerSec),
    deliveredPerSec: ratio(l.deliveredPerSec, s.deliveredPerSec),
    latencyP50: ratio(l.latencyMs.p50, s.latencyMs.p50),
    latencyP99: ratio(l.latencyMs.p99, s.latencyMs.p99),
    serverRssPeak: ratio(l.serverRssMiB.peak, s.serverRssMiB.peak),
    serverRssGrowth: ratio(growth(l), growth(s)),
    serverCpu: ratio(l.serverCpuPct, s.serverCpuPct),
  }
}

/** For each socket count: Lantern, then the Socket.IO peer doing the same fan-out. */
export async function runFanout(stack: Stack, opts: Options): Promise<FanoutResult> {
  const limit = openFilesLimit()
  const settings: FanoutSettings = {
    sockets: opts.sockets,
    topics: TOPICS,
    perTopicRate: opts.fanoutRate,
    intervalMs: round(1000 / opts.fanoutRate, 1),
    eventsPerBatch: EVENTS_PER_BATCH,
    durationS: opts.durationS,
    warmupS: opts.warmupS,
    metric: METRIC,
    window: '1m',
    connectConcurrency: CONNECT_CONCURRENCY,
    openFilesLimit: limit,
  }
  const rounds: FanoutRound[] = []
  const posted = new PostedCounts()
  for (const [i, n] of opts.sockets.entries()) {
    const r: FanoutRound = { sockets: n }
    rounds.push(r)
    if (limit !== null && n + SPARE_FILES > limit) {
      r.error = `${n} sockets need about ${n + SPARE_FILES} open files; the soft limit is ${limit} (run under a shell with a higher \`ulimit -n\`)`
      say(`fanout: ${r.error}`)
      continue
    }
    try {
      r.lantern = await lanternRound(stack, opts, n, posted, i)
      r.socketio = await socketIoRound(stack, opts, n, r.lantern.meanMessageBytes ?? DEFAULT_PAYLOAD_BYTES)
      r.ratios = ratiosOf(r.lantern, r.socketio)
    } catch (err) {
      r.error = errorMessage(err)
      say(`fanout ${n}: ${r.error}`)
      // A server crash ends the scenario; anything else only this round.
      if (stack.children.some((c) => !c.running)) throw err
    }
  }
  return { settings, rounds, note: FANOUT_NOTE }
}
