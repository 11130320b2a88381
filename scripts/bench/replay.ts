import { spawn } from 'node:child_process'
import http from 'node:http'
import { fileURLToPath } from 'node:url'
import { CommitPoller, openDb } from './commits.js'
import { acknowledgement, failureKind, Poster } from './http.js'
import { INGEST_METRICS, INGEST_STATIONS_PER_PROVINCE } from './ingest.js'
import { drainTimeoutOf, type Options } from './options.js'
import type { Stack } from './stack.js'
import { Tally } from './stats.js'
import { errorMessage, round, say, sleep, waitUntil } from './util.js'
import { readingOf, seriesGrid, SOURCE, type Series } from './workload.js'

/** Event times spread over this much of the past: well inside the allowed lateness. */
const SPREAD_MS = 30 * 60_000
const ATTEMPTS = 5
const BACKOFF_MS = 500
/** Each of export, audit, verify and rebuild gets at most this long. */
const READ_TIMEOUT_MS = 600_000
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))

interface AuditMismatch {
  what: string
  key: string
  field: string
  stored: unknown
  derived: unknown
  eventIds: string[]
}

interface PartitionVerdict {
  partition: number
  ok: boolean
  checked: number
  firstBreak: unknown
}

export interface ReplayResult {
  settings: { events: number; series: number; spreadMin: number; concurrency: number; batch: number; requests: number; bodyMiB: number; workers: number; partitions: number }
  postedS: number
  acceptedEvents: number
  duplicates: number
  lostEvents: number
  postErrors: Record<string, number>
  ingestEventsPerSec: number
  complete: boolean
  committedEvents: number
  /** First post to every accepted event committed. */
  allCommittedS: number | null
  export: { lines: number; bytes: number; s: number; eventsPerSec: number; mbPerSec: number } | null
  audit: { eventsReplayed: number; bucketsCompared: number; casesCompared: number; s: number; eventsPerSec: number; mismatches: AuditMismatch[] } | null
  verify: { ok: boolean; checked: number; s: number; eventsPerSec: number; partitions: PartitionVerdict[] } | null
  /** scripts/rebuild.ts into a second, empty database; s is timed here (spawn to exit), reportedS by the CLI. */
  rebuild: { events: number; s: number; eventsPerSec: number; reportedS: number; reportedPerSec: number; stateMatches: boolean; live: Fingerprint; rebuilt: Fingerprint } | null
  /** Everything that was not as it should be; an empty list means all four checks agree. */
  problems: string[]
}

/**
 * Fills the archive with N metric events, then times reading it back three ways: the NDJSON
 * export, the audit (re-deriving every aggregate from the raw log) and the hash-chain verify.
 */
export async function runReplay(stack: Stack, opts: Options, workers: number): Promise<ReplayResult> {
  const series = seriesGrid(INGEST_METRICS, INGEST_STATIONS_PER_PROVINCE)
  const bodies = serialize(series, opts.events, opts.batch, Date.now())
  const bodyMiB = round(bodies.bytes / 2 ** 20, 1)
  const drainTimeoutS = drainTimeoutOf(opts, 'replay')
  say(`replay: ${opts.events} events over ${series.length} series in ${bodies.bodies.length} requests (${bodyMiB} MiB), ${opts.concurrency} clients, ${workers} worker(s), then until all is committed (at most ${drainTimeoutS} s)`)

  const problems: string[] = []
  const db = await openDb(stack.databaseUrl)
  const poster = new Poster(stack.port, opts.concurrency)
  const posted = { acked: 0, duplicates: 0, lost: 0, errors: new Tally() }
  const t0 = performance.now()
  const poller = new CommitPoller(db, 250)
  const progress = setInterval(() => say(`replay: ${posted.acked} accepted, ${poller.latest?.events ?? 0} committed`), 2000)
  let postedS: number
  let complete: boolean
  let allCommittedS: number | null
  try {
    await Promise.race([postAll(poster, bodies, opts.concurrency, posted), stack.crashed()])
    postedS = (performance.now() - t0) / 1000
    say(`replay: posted in ${round(postedS, 1)} s, ${posted.acked} accepted; waiting for the drain`)
    complete = await Promise.race([waitUntil(() => (poller.latest?.events ?? 0) >= posted.acked, drainTimeoutS * 1000, 125), stack.crashed()])
    allCommittedS = complete ? round((performance.now() - t0) / 1000, 2) : null
  } finally {
    clearInterval(progress)
    await poller.stop().catch(() => undefined)
    poster.close()
    await db.end().catch(() => undefined)
  }
  const committedEvents = poller.latest?.events ?? 0
  if (posted.lost > 0) problems.push(`${posted.lost} events never accepted`)
  if (posted.acked !== opts.events) problems.push(`${posted.acked} events accepted, ${opts.events} posted`)
  if (!complete) problems.push(`only ${committedEvents} of ${posted.acked} accepted events committed when the wait ended`)

  const expected = posted.acked
  const exp = await phase('export', problems, () => exportPhase(stack))
  if (exp && exp.lines !== expected) problems.push(`export gave ${exp.lines} lines, expected ${expected}`)
  const audit = await phase('audit', problems, () => auditPhase(stack))
  if (audit && audit.eventsReplayed !== expected) problems.push(`audit replayed ${audit.eventsReplayed} events, expected ${expected}`)
  if (audit && audit.mismatches.length > 0) problems.push(`audit found ${audit.mismatches.length} mismatches`)
  const verify = await phase('verify', problems, () => verifyPhase(stack))
  if (verify && !verify.ok) problems.push(`archive verify not ok: ${JSON.stringify(verify.partitions.filter((p) => !p.ok))}`)
  if (verify && verify.checked !== expected) problems.push(`archive verify checked ${verify.checked} events, expected ${expected}`)
  const rebuild = await phase('rebuild', problems, () => rebuildPhase(stack))
  if (rebuild && rebuild.events !== committedEvents) problems.push(`rebuild replayed ${rebuild.events} events, ${committedEvents} committed`)
  if (rebuild && !rebuild.stateMatches) problems.push(`rebuilt state differs: live ${JSON.stringify(rebuild.live)}, rebuilt ${JSON.stringify(rebuild.rebuilt)}`)
  say(`replay: ${problems.length === 0 ? 'export, audit, verify and rebuild agree with what was posted' : `PROBLEMS: ${problems.join('; ')}`}`)

  return {
    settings: {
      events: opts.events,
      series: series.length,
      spreadMin: SPREAD_MS / 60_000,
      concurrency: opts.concurrency,
      batch: opts.batch,
      requests: bodies.bodies.length,
      bodyMiB,
      workers,
      partitions: stack.partitions,
    },
    postedS: round(postedS, 2),
    acceptedEvents: posted.acked,
    duplicates: posted.duplicates,
    lostEvents: posted.lost,
    postErrors: posted.errors.counts,
    ingestEventsPerSec: round(posted.acked / postedS),
    complete,
    committedEvents,
    allCommittedS,
    export: exp,
    audit,
    verify,
    rebuild,
    problems,
  }

  async function phase<T>(name: string, out: string[], fn: () => Promise<T>): Promise<T | null> {
    say(`replay: ${name}`)
    try {
      return await Promise.race([fn(), stack.crashed()])
    } catch (err) {
      out.push(`${name} failed: ${errorMessage(err)}`)
      say(`replay: ${name} failed: ${errorMessage(err)}`)
      return null
    }
  }
}

interface Bodies {
  bodies: Buffer[]
  events: number[]
  bytes: number
}

/** All bodies serialized before timing; ts = now minus a deterministic spread of up to 30 minutes. */
function serialize(series: readonly Series[], total: number, batch: number, now: number): Bodies {
  const out: Bodies = { bodies: [], events: [], bytes: 0 }
  for (let first = 0; first < total; first += batch) {
    const count = Math.min(batch, total - first)
    const parts: string[] = []
    for (let i = first; i < first + count; i++) {
      const index = i % series.length
      const s = series[index] as Series
      const ts = now - ((i * 2654435761) % SPREAD_MS)
      parts.push(`{"id":"rp-${i}","source":"${SOURCE}","metric":"${s.metric}","ts":${ts},"value":${readingOf(index, i)},"dims":{"province":"${s.province}","station":"${s.station}"}}`)
    }
    const body = Buffer.from(`[${parts.join(',')}]`, 'latin1')
    out.bodies.push(body)
    out.events.push(count)
    out.bytes += body.length
  }
  return out
}

/** K clients take the next body until none is left; 5xx, 429 and network failures are retried. */
async function postAll(poster: Poster, bodies: Bodies, clients: number, posted: { acked: number; duplicates: number; lost: number; errors: Tally }): Promise<void> {
  let next = 0
  const client = async (): Promise<void> => {
    for (let i = next++; i < bodies.bodies.length; i = next++) {
      let ok = false
      for (let attempt = 1; attempt <= ATTEMPTS && !ok; attempt++) {
        const outcome = await poster.post('/v1/metrics', bodies.bodies[i] as Buffer).then(
          (reply) => ({ ack: acknowledgement(reply), failure: failureKind(reply), retry: reply.status >= 500 || reply.status === 429 }),
          (err: unknown) => ({ ack: undefined, failure: failureKind(err instanceof Error ? err : new Error(errorMessage(err))), retry: true }),
        )
        if (outcome.ack) {
          posted.acked += outcome.ack.accepted
          posted.duplicates += outcome.ack.duplicates
          ok = true
        } else {
          posted.errors.add(outcome.failure)
          if (!outcome.retry) break
          await sleep(BACKOFF_MS * attempt)
        }
      }
      if (!ok) posted.lost += bodies.events[i] as number
    }
  }
  await Promise.all(Array.from({ length: clients }, client))
}

interface Got {
  status: number
  bytes: number
  newlines: number
  /** Only kept when asked for (JSON answers); the export is counted, never held. */
  text: string
  s: number
}

/** A GET over node:http with one overall deadline (fetch would give up on a slow first byte after 300 s). */
function get(stack: Stack, path: string, keep: boolean): Promise<Got> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const req = http.get({ host: '127.0.0.1', port: stack.port, path }, (res) => {
      let bytes = 0
      let newlines = 0
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) newlines++
        if (keep || (res.statusCode ?? 0) !== 200) chunks.push(chunk)
      })
      res.on('end', () => {
        clearTimeout(timer)
        resolve({ status: res.statusCode ?? 0, bytes, newlines, text: Buffer.concat(chunks).toString(), s: (performance.now() - started) / 1000 })
      })
      res.on('error', reject)
    })
    const timer = setTimeout(() => req.destroy(new Error(`GET ${path} not done within ${READ_TIMEOUT_MS / 1000} s`)), READ_TIMEOUT_MS)
    req.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

function ok(got: Got, path: string): void {
  if (got.status !== 200) throw new Error(`GET ${path} answered ${got.status}: ${got.text.slice(0, 300)}`)
}

async function exportPhase(stack: Stack): Promise<NonNullable<ReplayResult['export']>> {
  const path = '/v1/export?kind=metric'
  const got = await get(stack, path, false)
  ok(got, path)
  return { lines: got.newlines, bytes: got.bytes, s: round(got.s, 2), eventsPerSec: round(got.newlines / got.s), mbPerSec: round(got.bytes / 1e6 / got.s, 1) }
}

async function auditPhase(stack: Stack): Promise<NonNullable<ReplayResult['audit']>> {
  const now = Date.now()
  const path = `/v1/audit?from=${new Date(now - 2 * 3600_000).toISOString()}&to=${new Date(now + 3600_000).toISOString()}`
  const got = await get(stack, path, true)
  ok(got, path)
  const body = JSON.parse(got.text) as { eventsReplayed: number; bucketsCompared: number; casesCompared: number; mismatches: AuditMismatch[] }
  return {
    eventsReplayed: body.eventsReplayed,
    bucketsCompared: body.bucketsCompared,
    casesCompared: body.casesCompared,
    s: round(got.s, 2),
    eventsPerSec: round(body.eventsReplayed / got.s),
    mismatches: body.mismatches,
  }
}

async function verifyPhase(stack: Stack): Promise<NonNullable<ReplayResult['verify']>> {
  const path = '/v1/archive/verify'
  const got = await get(stack, path, true)
  ok(got, path)
  const body = JSON.parse(got.text) as { ok: boolean; partitions: PartitionVerdict[] }
  const checked = body.partitions.reduce((a, p) => a + p.checked, 0)
  return { ok: body.ok, checked, s: round(got.s, 2), eventsPerSec: round(checked / got.s), partitions: body.partitions }
}

interface Fingerprint {
  buckets: number
  count: number
  sum: number
  archiveSeq: number
}

async function fingerprint(databaseUrl: string): Promise<Fingerprint> {
  const db = await openDb(databaseUrl)
  try {
    const { rows: b } = await db.query<{ n: string; c: string | null; s: number | null }>('SELECT count(*)::text AS n, sum(count)::text AS c, sum(sum)::float8 AS s FROM aggregate_buckets')
    const { rows: d } = await db.query<{ seq: string | null }>('SELECT sum(archive_seq)::text AS seq FROM drain_checkpoints')
    return { buckets: Number(b[0]?.n ?? 0), count: Number(b[0]?.c ?? 0), sum: b[0]?.s ?? 0, archiveSeq: Number(d[0]?.seq ?? 0) }
  } finally {
    await db.end().catch(() => undefined)
  }
}

/** Float sums depend on the order of addition, so sum(sum) gets a relative tolerance; the rest must be equal. */
function sameState(a: Fingerprint, b: Fingerprint): boolean {
  return a.buckets === b.buckets && a.count === b.count && a.archiveSeq === b.archiveSeq && Math.abs(a.sum - b.sum) <= 1e-9 * Math.max(1, Math.abs(a.sum), Math.abs(b.sum))
}

/** Runs scripts/rebuild.ts from the bench database into a fresh `<db>_rebuild`, under the key prefix `<prefix>-rebuild`. */
async function rebuildPhase(stack: Stack): Promise<NonNullable<ReplayResult['rebuild']>> {
  const side = await stack.createSide('rebuild')
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: side.url, REDIS_URL: stack.redisUrl, LANTERN_KEY_PREFIX: side.prefix, LOG_LEVEL: 'warn' }
    const started = performance.now()
    const stderr = await runCli(['--import', 'tsx', 'scripts/rebuild.ts', '--from-database', stack.databaseUrl], env)
    const s = (performance.now() - started) / 1000
    const lines = stderr.trim().split('\n')
    const m = /^rebuild: (\d+) events in ([\d.]+) s \((\d+)\/s\)$/.exec(lines[lines.length - 1] ?? '')
    if (!m) throw new Error(`rebuild printed no final line: ${lines.slice(-3).join(' | ')}`)
    const events = Number(m[1])
    const [live, rebuilt] = await Promise.all([fingerprint(stack.databaseUrl), fingerprint(side.url)])
    return { events, s: round(s, 2), eventsPerSec: round(events / s), reportedS: Number(m[2]), reportedPerSec: Number(m[3]), stateMatches: sameState(live, rebuilt), live, rebuilt }
  } finally {
    const r = await stack.dropSide('rebuild')
    say(`replay: rebuild database ${r.dropped ? 'dropped' : 'NOT dropped'}, ${r.keysDeleted} keys deleted, ${r.keysLeft} left`)
  }
}

/** Runs a node script to completion and hands back its stderr; non-zero exit or the deadline is an error. */
function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    proc.stderr.setEncoding('utf8')
    proc.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-20_000)
    })
    const timer = setTimeout(() => proc.kill('SIGKILL'), READ_TIMEOUT_MS)
    proc.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    proc.on('close', (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve(stderr)
      else reject(new Error(`rebuild exited ${signal ?? `with code ${code}`}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`))
    })
  })
}
