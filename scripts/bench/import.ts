import { spawn } from 'node:child_process'
import { createWriteStream, promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type pg from 'pg'
import { openDb } from './commits.js'
import { CpuMeter, type CpuUsage } from './cpu.js'
import { acknowledgement, failureKind, Poster } from './http.js'
import { PostedCounts } from './live.js'
import { drainTimeoutOf, type Options } from './options.js'
import type { Stack } from './stack.js'
import { LatencyRecorder, Tally, type LatencySummary } from './stats.js'
import { errorMessage, round, say, sleep } from './util.js'
import { readingOf, seriesGrid, type Series } from './workload.js'

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))
const IMPORT_METRICS = ['hist.water_level', 'hist.pm25', 'hist.power_load', 'hist.traffic']
const IMPORT_STATIONS_PER_PROVINCE = 5
/** The history ends this long before now: far past any live lateness. */
const HISTORY_AGE_MS = 90 * 86_400_000
const LIVE_METRIC = 'bench.live'
const LIVE_SOURCE = 'bench-live'
const LIVE_TICK_MS = 50
const COMMIT_POLL_MS = 20
/** Live traffic alone before the import starts: the baseline latency. */
const BASELINE_MS = 8000
const ALL = 'all'

export interface ImportResult {
  settings: { rows: number; series: number; stepS: number; historyFrom: string; historyTo: string; fileMiB: number; workers: number; partitions: number; liveRate: number; liveTickMs: number }
  /** Writing the file (not timed in the figures). */
  generatedS: number
  /** The CLI from spawn (tsx start-up included) to its exit, which comes once every event is committed. */
  wallS: number
  eventsPerSec: number
  /** From spawn to every row in the log (the job's status turned committing). */
  appendedS: number | null
  /** By the job row's clock: the run's start (file already hashed, connections open) to its last event committed. */
  committedS: number | null
  eventsPerSecByJob: number | null
  job: { status: string; rowsRead: number; eventsAppended: number; duplicates: number; eventsCommitted: number; badRows: number } | null
  /** Sum of the daily bucket counts of the imported metrics, and late events counted anywhere. */
  bucketEvents: number
  lateEvents: number
  exitCode: number | null
  live: {
    baseline: LatencySummary
    duringImport: LatencySummary
    postedEvents: number
    acceptedEvents: number
    errors: Record<string, number>
    committedAtEnd: number
  }
  cpu: CpuUsage | null
  /** The import CLI's CPU, % of one core over its run (counted under "other" in cpu). */
  cliCpuPct: number
  problems: string[]
}

const CLOCK_TICKS = 100

async function procTicks(pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

/**
 * A history file of `rows` metric samples (NDJSON, sorted by time, as exports are), imported with
 * `npm run import` against the stack while live traffic flows: events per second from the CLI's
 * start to every event committed, and the live ingest -> commit latency before and during the
 * import (live entries are drained first, the import fills the rest of each batch).
 */
export async function runImport(stack: Stack, opts: Options, workers: number): Promise<ImportResult> {
  const problems: string[] = []
  const series = seriesGrid(IMPORT_METRICS, IMPORT_STATIONS_PER_PROVINCE)
  const stepMs = opts.importStepS * 1000
  const historyTo = Date.now() - HISTORY_AGE_MS
  const samplesPerSeries = Math.ceil(opts.rows / series.length)
  const historyFrom = Math.floor((historyTo - samplesPerSeries * stepMs) / 60_000) * 60_000
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lantern-bench-import-'))
  const file = path.join(dir, 'history.ndjson')
  try {
    say(`import: writing ${opts.rows} rows over ${series.length} series, one every ${opts.importStepS} s per series, from ${new Date(historyFrom).toISOString()}`)
    const g0 = performance.now()
    const bytes = await writeHistory(file, series, opts.rows, historyFrom, stepMs)
    const generatedS = round((performance.now() - g0) / 1000, 1)
    say(`import: ${round(bytes / 2 ** 20, 1)} MiB written in ${generatedS} s`)

    const db = await openDb(stack.databaseUrl)
    const live = new LiveProbe(stack, db, opts.liveRate)
    try {
      say(`import: live traffic alone for ${BASELINE_MS / 1000} s (${opts.liveRate} events/s, batches every ${LIVE_TICK_MS} ms)`)
      live.start()
      await Promise.race([sleep(BASELINE_MS), stack.crashed()])
      const baseline = live.lap()

      say('import: npm run import, live traffic going on')
      const t0 = performance.now()
      const cli = spawn(process.execPath, ['--import', 'tsx', 'scripts/import.ts', file, '--kind', 'metric'], {
        cwd: REPO_ROOT,
        env: { ...process.env, DATABASE_URL: stack.databaseUrl, REDIS_URL: stack.redisUrl, LANTERN_KEY_PREFIX: stack.prefix, LANTERN_PARTITIONS: String(stack.partitions), LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      const meter = new CpuMeter(stack.cpuTargets())
      let appendedAt: number | null = null
      // The CLI's own CPU time, read while it runs (its /proc entry goes with it).
      let cliTicks = 0
      const watching = (async () => {
        while (cli.exitCode === null && cli.signalCode === null) {
          cliTicks = await procTicks(cli.pid).catch(() => cliTicks)
          const { rows } = await db.query<{ status: string }>('SELECT status FROM imports ORDER BY id DESC LIMIT 1').catch(() => ({ rows: [] as { status: string }[] }))
          if (appendedAt === null && (rows[0]?.status === 'committing' || rows[0]?.status === 'done')) appendedAt = performance.now()
          await sleep(100)
        }
      })()
      let lastLine = ''
      cli.stderr?.on('data', (d: Buffer) => {
        const text = d.toString().trim()
        if (text) {
          lastLine = text.split('\n').pop() ?? lastLine
          process.stderr.write(`[import-cli] ${text.split('\n').join('\n[import-cli] ')}\n`)
        }
      })
      const exit = new Promise<number | null>((resolve) => cli.on('exit', (code) => resolve(code)))
      const timeout = sleep(drainTimeoutOf(opts, 'import') * 1000).then(() => 'timeout' as const)
      const outcome = await Promise.race([exit, timeout, stack.crashed()])
      if (outcome === 'timeout') {
        cli.kill('SIGKILL')
        problems.push(`the import did not finish within ${drainTimeoutOf(opts, 'import')} s (last: ${lastLine})`)
      }
      const wallS = (performance.now() - t0) / 1000
      await watching
      const cpu = meter.lap()
      const duringImport = live.lap()
      const exitCode = outcome === 'timeout' ? null : outcome
      if (exitCode !== 0) problems.push(`the import CLI exited with ${exitCode}: ${lastLine}`)
      const figures = await live.stop()

      const { rows: jobs } = await db.query<{ status: string; rows_read: string; events_appended: string; duplicates: string; events_committed: string; bad_rows: string; finished_s: number | null }>(
        `SELECT status, rows_read::text, events_appended::text, duplicates::text, events_committed::text, bad_rows::text,
                extract(epoch FROM (finished_at - started_at))::float8 AS finished_s
         FROM imports ORDER BY id DESC LIMIT 1`,
      )
      const j = jobs[0]
      const job = j ? { status: j.status, rowsRead: Number(j.rows_read), eventsAppended: Number(j.events_appended), duplicates: Number(j.duplicates), eventsCommitted: Number(j.events_committed), badRows: Number(j.bad_rows) } : null
      if (!job || job.status !== 'done' || job.eventsCommitted !== opts.rows) problems.push(`the job is ${JSON.stringify(job)}, expected done with ${opts.rows} events committed`)
      const { rows: b } = await db.query<{ n: string }>(
        `SELECT coalesce(sum(b.count), 0)::text AS n FROM aggregate_buckets b JOIN series s ON s.id = b.series_id WHERE b.width_s = 86400 AND s.metric = ANY($1::text[])`,
        [IMPORT_METRICS],
      )
      const bucketEvents = Number(b[0]?.n ?? 0)
      if (bucketEvents !== opts.rows) problems.push(`the daily buckets of the imported metrics count ${bucketEvents} events, expected ${opts.rows}`)
      const { rows: late } = await db.query<{ n: string }>('SELECT coalesce(sum(late_events), 0)::text AS n FROM drain_checkpoints')
      const lateEvents = Number(late[0]?.n ?? 0)
      if (lateEvents !== 0) problems.push(`${lateEvents} events were counted late`)
      if (figures.committed !== figures.accepted) problems.push(`live: ${figures.accepted} accepted, ${figures.committed} committed`)
      const committedS = j?.finished_s ?? null
      say(`import: ${opts.rows} rows in ${round(wallS, 1)} s (${round(opts.rows / wallS)}/s); live p99 ${baseline.p99} ms before, ${duringImport.p99} ms during`)
      return {
        settings: {
          rows: opts.rows,
          series: series.length,
          stepS: opts.importStepS,
          historyFrom: new Date(historyFrom).toISOString(),
          historyTo: new Date(historyFrom + samplesPerSeries * stepMs).toISOString(),
          fileMiB: round(bytes / 2 ** 20, 1),
          workers,
          partitions: stack.partitions,
          liveRate: opts.liveRate,
          liveTickMs: LIVE_TICK_MS,
        },
        generatedS,
        wallS: round(wallS, 2),
        eventsPerSec: round(opts.rows / wallS),
        appendedS: appendedAt === null ? null : round((appendedAt - t0) / 1000, 2),
        committedS: committedS === null ? null : round(committedS, 2),
        eventsPerSecByJob: committedS ? round(opts.rows / committedS) : null,
        job,
        bucketEvents,
        lateEvents,
        exitCode,
        live: { baseline, duringImport, postedEvents: figures.posted, acceptedEvents: figures.accepted, errors: figures.errors, committedAtEnd: figures.committed },
        cpu,
        cliCpuPct: round((cliTicks / CLOCK_TICKS / wallS) * 100),
        problems,
      }
    } finally {
      await live.stop().catch(() => undefined)
      await db.end().catch(() => undefined)
    }
  } catch (err) {
    problems.push(errorMessage(err))
    throw err
  } finally {
    await fs.rm(dir, { recursive: true, force: true })
  }
}

/** The file, row by row, through a write stream: rows sorted by time, each series every `stepMs`. */
async function writeHistory(file: string, series: readonly Series[], rows: number, fromMs: number, stepMs: number): Promise<number> {
  const out = createWriteStream(file)
  let bytes = 0
  let buf = ''
  for (let i = 0; i < rows; i++) {
    const index = i % series.length
    const s = series[index] as Series
    const ts = fromMs + Math.floor(i / series.length) * stepMs + index * 10
    buf += `{"id":"hist-${i}","source":"archive-2025","metric":"${s.metric}","ts":${ts},"value":${readingOf(index, i)},"dims":{"province":"${s.province}","station":"${s.station}"}}\n`
    if (buf.length > 1 << 20) {
      bytes += buf.length
      if (!out.write(buf)) await new Promise<void>((r) => out.once('drain', () => r()))
      buf = ''
    }
  }
  bytes += buf.length
  out.write(buf)
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())))
  return bytes
}

/**
 * Live traffic at a steady rate (a batch every LIVE_TICK_MS, timestamped now) and its ingest ->
 * commit latency: the committed count of the live metric (its series' event counters, written in
 * the drain transaction) is polled, and each rise is matched to the post that completed it.
 */
class LiveProbe {
  private readonly poster: Poster
  private readonly posted = new PostedCounts()
  private readonly errors = new Tally()
  private recorder = new LatencyRecorder()
  private postedEvents = 0
  private acceptedEvents = 0
  private committed = 0
  private running = false
  private loops: Promise<void>[] = []
  private readonly inFlight = new Set<Promise<void>>()
  private readonly series = seriesGrid([LIVE_METRIC], 4)

  constructor(
    stack: Stack,
    private readonly db: pg.Client,
    private readonly rate: number,
  ) {
    this.poster = new Poster(stack.port, 4)
  }

  start(): void {
    this.running = true
    this.loops = [this.postLoop(), this.pollLoop()]
  }

  lap(): LatencySummary {
    const s = this.recorder.summary()
    this.recorder = new LatencyRecorder()
    return s
  }

  async stop(): Promise<{ posted: number; accepted: number; committed: number; errors: Record<string, number> }> {
    if (this.running) {
      this.running = false
      await Promise.all(this.loops)
      await Promise.all(this.inFlight)
      // Every accepted live event committed, within a few seconds.
      for (let i = 0; i < 250 && this.committed < this.acceptedEvents; i++) {
        await sleep(COMMIT_POLL_MS)
        await this.poll()
      }
      this.poster.close()
    }
    return { posted: this.postedEvents, accepted: this.acceptedEvents, committed: this.committed, errors: this.errors.counts }
  }

  private async postLoop(): Promise<void> {
    const t0 = performance.now()
    for (let tick = 0; this.running; tick++) {
      const wait = t0 + tick * LIVE_TICK_MS - performance.now()
      if (wait > 0) await sleep(wait)
      const n = Math.round((this.rate * (tick + 1) * LIVE_TICK_MS) / 1000) - this.postedEvents
      if (n <= 0) continue
      const ts = Date.now()
      const events = Array.from({ length: n }, (_, i) => {
        const index = (this.postedEvents + i) % this.series.length
        const s = this.series[index] as Series
        return { id: `live-${tick}-${i}`, source: LIVE_SOURCE, metric: s.metric, ts, value: readingOf(index, tick), dims: { province: s.province, station: s.station } }
      })
      this.posted.add(ALL, 0, n, performance.now())
      this.postedEvents += n
      const p = this.poster.post('/v1/metrics', JSON.stringify(events)).then(
        (reply) => {
          const ack = acknowledgement(reply)
          if (ack) this.acceptedEvents += ack.accepted
          else this.errors.add(failureKind(reply))
        },
        (err: unknown) => this.errors.add(failureKind(err instanceof Error ? err : new Error(errorMessage(err)))),
      )
      this.inFlight.add(p)
      void p.finally(() => this.inFlight.delete(p))
    }
  }

  private async pollLoop(): Promise<void> {
    while (this.running) {
      await this.poll()
      await sleep(COMMIT_POLL_MS)
    }
  }

  private async poll(): Promise<void> {
    const { rows } = await this.db.query<{ n: string }>('SELECT coalesce(sum(events), 0)::text AS n FROM series WHERE metric = $1', [LIVE_METRIC])
    const committed = Number(rows[0]?.n ?? 0)
    const at = performance.now()
    if (committed <= this.committed) return
    this.committed = committed
    const postedAt = this.posted.postedAt(ALL, 0, committed)
    if (postedAt !== undefined) this.recorder.record(at - postedAt)
  }
}
