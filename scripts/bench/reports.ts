import type pg from 'pg'
import { CommitPoller, drainCommits, openDb } from './commits.js'
import { CpuMeter, type CpuUsage } from './cpu.js'
import { AGENCIES, EVENTS_PER_CASE, PROVINCE, SERVICE, expectedKpis, generateDossiers, serializeBodies, type Bodies, type ExpectedKpis } from './dossiers.js'
import { commitRates, SAMPLE_EVERY_MS, type CommitRates, type Sample } from './e2e-throughput.js'
import { acknowledgement, failureKind, Poster } from './http.js'
import { drainTimeoutOf, type Options } from './options.js'
import type { Stack } from './stack.js'
import { Tally } from './stats.js'
import { errorMessage, round, say, sleep, waitUntil } from './util.js'

/** A request is tried this often at most; ids make the repeats safe. */
const ATTEMPTS = 5
const BACKOFF_MS = 500
const KPI_TIMEOUT_MS = 120_000
/** Quantiles come back through float arithmetic on both sides; counts must match exactly. */
const SECONDS_TOLERANCE = 1e-3

export type KpiFigures = Record<keyof ExpectedKpis, number | null>

export interface ReportsResult extends CommitRates {
  settings: {
    cases: number
    events: number
    lateCases: number
    agencies: number
    concurrency: number
    batch: number
    requests: number
    bodyMiB: number
    workers: number
    partitions: number
    sampleEveryMs: number
  }
  postedS: number
  acceptedEvents: number
  duplicates: number
  postErrors: Record<string, number>
  /** Events of requests that never got a 202, all attempts spent: they cannot be in the figures. */
  lostEvents: number
  ingestEventsPerSec: number
  ingestCasesPerSec: number
  complete: boolean
  committedEvents: number
  /** cases / allCommittedS: first post to the sample that saw every event committed. */
  casesPerSecEndToEnd: number | null
  /** steadyCommittedPerSec (events, 10-90%) over the events each case has. */
  steadyCommittedCasesPerSec: number | null
  drainCommitsPerSec: number
  eventsPerDrainCommit: number | null
  cpuWhilePosting: CpuUsage
  cpuAfterPosting: CpuUsage
  kpiQueryMs: number | null
  expected: ExpectedKpis
  /** GET /v1/kpis?service=dvc&province=48 as answered; null when the query failed. */
  kpis: KpiFigures | null
  /** Straight from the database: case rows and findings (a shuffled order must leave none). */
  database: DatabaseCounts | null
  reproduced: boolean
  mismatches: string[]
}

interface DatabaseCounts {
  cases: number
  findings: number
}

interface Posted {
  acked: number
  duplicates: number
  lost: number
  errors: Tally
}

interface Measured {
  posted: Posted
  samples: Sample[]
  postedS: number
  complete: boolean
  committedEvents: number
  drainCommitsPerSec: number
  eventsPerDrainCommit: number | null
  cpuWhilePosting: CpuUsage
  cpuAfterPosting: CpuUsage
}

interface Verified {
  kpis: KpiFigures | null
  kpiQueryMs: number | null
  database: DatabaseCounts | null
  mismatches: string[]
}

/**
 * Posts a province's year of dossiers as fast as K clients can, watches the drain commit every
 * event, then checks that the KPI endpoint gives exactly the figures the data set implies.
 */
export async function runReports(stack: Stack, opts: Options, workers: number): Promise<ReportsResult> {
  const drainTimeoutS = drainTimeoutOf(opts, 'reports')
  say(`reports: generating ${opts.cases} dossiers of ${SERVICE}/${PROVINCE} and serializing them shuffled`)
  const dossiers = generateDossiers(opts.cases, Date.now())
  const expected = expectedKpis(dossiers)
  const bodies = serializeBodies(dossiers, opts.batch)
  const bodyMiB = round(bodies.bytes / 2 ** 20, 1)
  say(`reports: ${bodies.events.reduce((a, b) => a + b, 0)} events in ${bodies.bodies.length} requests (${bodyMiB} MiB), ${opts.concurrency} clients, ${workers} worker(s), then until all is committed (at most ${drainTimeoutS} s)`)

  const db = await openDb(stack.databaseUrl)
  try {
    const m = await measure(stack, db, bodies, opts.concurrency, drainTimeoutS)
    const v = await verify(stack, db, expected, opts.cases, m)
    say(`reports: KPIs ${v.mismatches.length === 0 ? 'reproduced exactly' : `NOT reproduced: ${v.mismatches.join('; ')}`}`)
    const rates = commitRates(m.samples, m.posted.acked, m.postedS)
    return {
      settings: {
        cases: opts.cases,
        events: opts.cases * EVENTS_PER_CASE,
        lateCases: dossiers.late,
        agencies: AGENCIES,
        concurrency: opts.concurrency,
        batch: opts.batch,
        requests: bodies.bodies.length,
        bodyMiB,
        workers,
        partitions: stack.partitions,
        sampleEveryMs: SAMPLE_EVERY_MS,
      },
      postedS: round(m.postedS, 2),
      acceptedEvents: m.posted.acked,
      duplicates: m.posted.duplicates,
      postErrors: m.posted.errors.counts,
      lostEvents: m.posted.lost,
      ingestEventsPerSec: round(m.posted.acked / m.postedS),
      ingestCasesPerSec: round(m.posted.acked / EVENTS_PER_CASE / m.postedS),
      complete: m.complete,
      committedEvents: m.committedEvents,
      ...rates,
      casesPerSecEndToEnd: m.complete && rates.allCommittedS ? round(opts.cases / rates.allCommittedS) : null,
      steadyCommittedCasesPerSec: rates.steadyCommittedPerSec === null ? null : round(rates.steadyCommittedPerSec / EVENTS_PER_CASE),
      drainCommitsPerSec: m.drainCommitsPerSec,
      eventsPerDrainCommit: m.eventsPerDrainCommit,
      cpuWhilePosting: m.cpuWhilePosting,
      cpuAfterPosting: m.cpuAfterPosting,
      expected,
      ...v,
      reproduced: v.mismatches.length === 0,
    }
  } finally {
    await db.end().catch(() => undefined)
  }
}

/** Posts every body, then waits (at most drainTimeoutS) until the drain has committed all that was accepted. */
async function measure(stack: Stack, db: pg.Client, bodies: Bodies, clients: number, drainTimeoutS: number): Promise<Measured> {
  const poster = new Poster(stack.port, clients)
  const posted: Posted = { acked: 0, duplicates: 0, lost: 0, errors: new Tally() }
  const samples: Sample[] = []
  const commitsBefore = await drainCommits(db)
  const meter = new CpuMeter(stack.cpuTargets())
  const t0 = performance.now()
  const poller = new CommitPoller(db, SAMPLE_EVERY_MS, (c, atMs) => samples.push({ atMs: atMs - t0, committed: c.events, acked: posted.acked }))
  const progress = progressLine(samples)
  try {
    await Promise.race([postAll(poster, bodies, clients, posted, t0 + drainTimeoutS * 1000), stack.crashed()])
    const postedS = (performance.now() - t0) / 1000
    const cpuWhilePosting = meter.lap()
    const total = posted.acked
    say(`reports: posted in ${round(postedS, 1)} s, ${total} events accepted; waiting for the drain`)
    const complete = await Promise.race([waitUntil(() => (poller.latest?.events ?? 0) >= total, drainTimeoutS * 1000, SAMPLE_EVERY_MS / 2), stack.crashed()])
    const cpuAfterPosting = meter.lap()
    await poller.stop()
    const elapsedS = (performance.now() - t0) / 1000
    const drainTxs = (await drainCommits(db)) - commitsBefore
    const committedEvents = poller.latest?.events ?? 0
    return {
      posted,
      samples,
      postedS,
      complete,
      committedEvents,
      drainCommitsPerSec: round(drainTxs / elapsedS, 1),
      eventsPerDrainCommit: drainTxs > 0 ? round(committedEvents / drainTxs, 1) : null,
      cpuWhilePosting,
      cpuAfterPosting,
    }
  } finally {
    clearInterval(progress)
    await poller.stop().catch(() => undefined)
    poster.close()
  }
}

/** The KPI answer and the database against what the data set implies; a shortfall is listed, never thrown. */
async function verify(stack: Stack, db: pg.Client, expected: ExpectedKpis, cases: number, m: Measured): Promise<Verified> {
  const query = await queryKpis(stack)
  const database = await databaseCounts(db).catch((err: unknown) => {
    say(`reports: database counts failed: ${errorMessage(err)}`)
    return null
  })
  const mismatches = compare(expected, query.kpis, database, cases)
  if (query.error) mismatches.unshift(query.error)
  if (!m.complete) mismatches.unshift(`only ${m.committedEvents} of ${m.posted.acked} accepted events committed when the wait ended`)
  if (m.posted.lost > 0) mismatches.unshift(`${m.posted.lost} events never accepted`)
  return { kpis: query.kpis, kpiQueryMs: query.ms, database, mismatches }
}

/**
 * K clients take the next body until none is left; a failed request is tried again after a
 * pause, a server refusal (4xx) is not. No request starts after stopAtMs.
 */
async function postAll(poster: Poster, bodies: Bodies, clients: number, posted: Posted, stopAtMs: number): Promise<void> {
  let next = 0
  const client = async (): Promise<void> => {
    for (let i = next++; i < bodies.bodies.length; i = next++) {
      const events = bodies.events[i] as number
      if (performance.now() >= stopAtMs || !(await postOne(poster, bodies.bodies[i] as Buffer, posted, stopAtMs))) posted.lost += events
    }
  }
  await Promise.all(Array.from({ length: clients }, client))
}

/** true once the body got its 202. */
async function postOne(poster: Poster, body: Buffer, posted: Posted, stopAtMs: number): Promise<boolean> {
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const outcome = await poster.post('/v1/reports', body).then(
      (reply) => ({ ack: acknowledgement(reply), failure: failureKind(reply), retry: reply.status >= 500 || reply.status === 429 }),
      (err: unknown) => ({ ack: undefined, failure: failureKind(err instanceof Error ? err : new Error(errorMessage(err))), retry: true }),
    )
    if (outcome.ack) {
      posted.acked += outcome.ack.accepted
      posted.duplicates += outcome.ack.duplicates
      return true
    }
    posted.errors.add(outcome.failure)
    if (!outcome.retry || performance.now() >= stopAtMs) return false
    await sleep(BACKOFF_MS * attempt)
  }
  return false
}

function progressLine(samples: readonly Sample[]): NodeJS.Timeout {
  return setInterval(() => {
    const s = samples[samples.length - 1]
    if (s) say(`reports: ${s.acked} accepted, ${s.committed} committed, backlog ${s.acked - s.committed}`)
  }, 2000)
}

async function queryKpis(stack: Stack): Promise<{ kpis: KpiFigures | null; ms: number | null; error?: string }> {
  const url = `${stack.baseUrl}/v1/kpis?service=${SERVICE}&province=${PROVINCE}`
  const started = performance.now()
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(KPI_TIMEOUT_MS) })
    const text = await res.text()
    const ms = round(performance.now() - started, 1)
    if (res.status !== 200) return { kpis: null, ms, error: `GET /v1/kpis answered ${res.status}: ${text.slice(0, 200)}` }
    const body = JSON.parse(text) as { groups?: { kpis?: Record<string, unknown> }[] }
    const figures = body.groups?.[0]?.kpis
    if (!figures || body.groups?.length !== 1) return { kpis: null, ms, error: `GET /v1/kpis gave ${body.groups?.length ?? 'no'} groups, expected 1` }
    return { kpis: pick(figures), ms }
  } catch (err) {
    return { kpis: null, ms: null, error: `GET /v1/kpis failed: ${errorMessage(err)}` }
  }
}

const KPI_NAMES: readonly (keyof ExpectedKpis)[] = [
  'received',
  'resolved',
  'rejected',
  'processed',
  'pending',
  'inProgress',
  'backlog',
  'overdue',
  'resolvedOnTime',
  'onTimeRate',
  'timeToResolveP50Sec',
  'timeToResolveP90Sec',
  'rated',
]

function pick(figures: Record<string, unknown>): KpiFigures {
  const out = {} as KpiFigures
  for (const k of KPI_NAMES) out[k] = typeof figures[k] === 'number' ? figures[k] : null
  return out
}

async function databaseCounts(db: pg.Client): Promise<DatabaseCounts> {
  const { rows } = await db.query<{ cases: string; findings: string }>(
    'SELECT (SELECT count(*) FROM cases)::text AS cases, (SELECT count(*) FROM case_findings)::text AS findings',
  )
  return { cases: Number(rows[0]?.cases ?? 0), findings: Number(rows[0]?.findings ?? 0) }
}

function compare(expected: ExpectedKpis, kpis: KpiFigures | null, database: DatabaseCounts | null, cases: number): string[] {
  const out: string[] = []
  if (kpis) {
    for (const k of KPI_NAMES) {
      const want = expected[k]
      const got = kpis[k]
      const seconds = k === 'timeToResolveP50Sec' || k === 'timeToResolveP90Sec'
      const equal = got !== null && (seconds ? Math.abs(got - want) <= SECONDS_TOLERANCE : got === want)
      if (!equal) out.push(`${k} ${got ?? 'missing'}, expected ${want}`)
    }
  }
  if (database && database.cases !== cases) out.push(`${database.cases} case rows, expected ${cases}`)
  if (database && database.findings !== 0) out.push(`${database.findings} case findings, expected none`)
  return out
}
