import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { sql } from 'kysely'
import { startTestApp, type TestApp } from '../helpers/context.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'
import { waitFor } from '../helpers/processes.js'
import { caseEvents, shuffle, type CasePlan, type FieldPlan, type ReportIn } from '../helpers/cases.js'
import { Client } from '../helpers/ws-client.js'
import type { Runtime } from '../../src/infra/runtime.js'
import type { Db } from '../../src/infra/db.js'
import { findOrCreateImport, getImport, type ImportFormat, type ImportKind, type OnError } from '../../src/repositories/imports.repository.js'
import { runImport, type ImportInput } from '../../src/import/run-import.js'
import { appendImportChunk } from '../../src/import/append-import.js'
import { ImportFileError } from '../../src/import/rows.js'
import { auditRange } from '../../src/services/audit.js'
import { rebuildFromArchive } from '../../workers/rebuild.js'
import { startImportWorker } from '../../workers/import.worker.js'
import { seriesKey } from '../../src/domain/series-key.js'
import { EVENT_KINDS } from '../../src/schemas/log-entry.js'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'

const MIN = 60_000
const DAY = 86_400_000
/** History from about four months ago, far past a live lateness of one minute. */
const H0 = Math.floor((Date.now() - 120 * DAY) / DAY) * DAY
const LATENESS = { LANTERN_ALLOWED_LATENESS_SEC: '60' }

interface Sample {
  id: string
  source: string
  metric: string
  ts: number
  value: number
  dims: Record<string, string>
}

/** History of a few series: one reading every `stepMin` minutes from H0, values with fractions. */
function history(n: number, opts: { prefix?: string; stepMin?: number; series?: number } = {}): Sample[] {
  const series = opts.series ?? 6
  const step = (opts.stepMin ?? 7) * MIN
  return Array.from({ length: n }, (_, i) => ({
    id: `${opts.prefix ?? 'h'}-${i}`,
    source: 'scada-export',
    metric: i % 3 === 0 ? 'river.level' : 'air.pm25',
    ts: H0 + Math.floor(i / series) * step + (i % series) * 1000,
    value: Math.round(((i * 37) % 1000) * 0.173 * 1000) / 1000,
    dims: { province: String(40 + (i % series)), station: `S${i % series}` },
  }))
}

const ndjson = (rows: readonly object[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n'

async function tempFile(t: { teardown(fn: () => unknown): void }, name: string, text: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lantern-import-test-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  const file = path.join(dir, name)
  await fs.writeFile(file, text)
  return file
}

const sha256Of = async (file: string): Promise<string> => {
  const h = createHash('sha256')
  for await (const c of createReadStream(file)) h.update(c as Buffer)
  return h.digest('hex')
}

function fileInput(file: string, bytesTotal: number): ImportInput {
  let s: ReturnType<typeof createReadStream> | null = null
  return { bytesTotal, bytesRead: () => s?.bytesRead ?? 0, open: () => (s = createReadStream(file)) }
}

/** What `npm run import` does, in process: the job for the file, then the run. */
async function importFile(rt: Runtime, file: string, kind: ImportKind, format: ImportFormat, onError: OnError = 'stop') {
  const stat = await fs.stat(file)
  const { job, created } = await findOrCreateImport(rt.db, { sha256: await sha256Of(file), name: path.basename(file), format, kind, onError, origin: 'cli', status: 'queued', bytesTotal: stat.size })
  if (job.status === 'done') return { job, alreadyImported: true }
  return { job: await runImport(rt, job.id, fileInput(file, stat.size), { onError }), alreadyImported: false, created }
}

/** The drain as a worker runs it, in this process, until stopped. */
function drainInBackground(t: { teardown(fn: () => unknown): void }, rt: Runtime): () => Promise<void> {
  const drainers = makeDrainers(rt)
  let stopped = false
  const loop = (async () => {
    while (!stopped) if ((await drainAll(drainers)) === 0) await new Promise((r) => setTimeout(r, 20))
  })()
  const stop = async (): Promise<void> => {
    stopped = true
    await loop
  }
  t.teardown(stop)
  return stop
}

/** count and sum of each daily bucket, per metric, as the API serves them. */
async function dailyFigures(app: TestApp['app'], metric: string, fromMs: number, toMs: number): Promise<Map<number, { count: number; sum: number }>> {
  const res = await app.inject({ url: `/v1/aggregates?metric=${metric}&window=1d&from=${fromMs}&to=${toMs}` })
  if (res.statusCode !== 200) throw new Error(res.body)
  const out = new Map<number, { count: number; sum: number }>()
  for (const b of res.json().groups[0]?.buckets ?? []) out.set(Date.parse(b.start), { count: b.count, sum: b.sum })
  return out
}

function expectedDaily(rows: readonly Sample[], metric: string): Map<number, { count: number; sum: number }> {
  const out = new Map<number, { count: number; sum: number }>()
  for (const r of rows) {
    if (r.metric !== metric) continue
    const start = Math.floor(r.ts / DAY) * DAY
    const b = out.get(start) ?? { count: 0, sum: 0 }
    b.count++
    b.sum += r.value
    out.set(start, b)
  }
  return out
}

function sameFigures(t: Test, got: Map<number, { count: number; sum: number }>, want: Map<number, { count: number; sum: number }>, what: string): void {
  t.equal(got.size, want.size, `${what}: one bucket per day`)
  let exact = 0
  for (const [start, w] of want) {
    const g = got.get(start)
    if (g && g.count === w.count && Math.abs(g.sum - w.sum) < 1e-6 * Math.max(1, Math.abs(w.sum))) exact++
    else t.fail(`${what} ${new Date(start).toISOString()}: got ${JSON.stringify(g)}, want ${JSON.stringify(w)}`)
  }
  t.equal(exact, want.size, `${what}: every daily count and sum exact`)
}

async function stateSnapshot(db: Db) {
  return {
    buckets: (await sql`SELECT s.key, b.width_s, b.start, b.count, b.sum, b.min, b.max, b.mean, b.m2, b.last FROM aggregate_buckets b JOIN series s ON s.id = b.series_id ORDER BY 1, 2, 3`.execute(db)).rows,
    series: (await sql`SELECT key, events, late_events, first_ts, last_ts FROM series ORDER BY key`.execute(db)).rows,
    cases: (await sql`SELECT service, case_id, state, received_ts, resolved_ts, rejected_ts, due_ts, rating, findings FROM cases ORDER BY 1, 2`.execute(db)).rows,
    checkpoints: (await sql`SELECT partition, last_id, import_last_id, watermark_ms, events, late_events, archive_seq, archive_hash FROM drain_checkpoints ORDER BY 1`.execute(db)).rows,
  }
}

t.test('history older than the live lateness lands exactly in its buckets and cases; a re-import changes nothing; audit and rebuild agree', async (t) => {
  const sys = await startTestApp(t, { ...LATENESS, LANTERN_PARTITIONS: '4' })
  const { app, api, worker } = sys
  const now = Date.now()
  // Live traffic first: every partition's watermark is now, one minute of lateness.
  const live = Array.from({ length: 40 }, (_, i) => ({ id: `live-${i}`, source: 'gw', metric: i % 2 ? 'air.pm25' : 'river.level', ts: now - i * 1000, value: i, dims: { province: String(40 + (i % 6)), station: `S${i % 6}` } }))
  t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', payload: live })).statusCode, 202)
  await drainAll(makeDrainers(worker))
  // The same history through live ingest would be late: counted, in no bucket.
  t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', payload: [{ ...history(1)[0], id: 'sent-live' }] })).statusCode, 202)
  await drainAll(makeDrainers(worker))
  const series0 = (await app.inject({ url: '/v1/series?metric=river.level' })).json().series as { lateEvents: number }[]
  t.equal(series0.reduce((a, s) => a + s.lateEvents, 0), 1, 'live ingest judges four-month-old history late')

  const stopDrain = drainInBackground(t, worker)
  const rows = history(9000)
  // A repeated row (same id) in the file is one event, as in live ingest.
  const file = await tempFile(t, 'history.ndjson', ndjson([...rows, rows[17] as Sample]))
  const first = await importFile(api, file, 'metric', 'ndjson')
  t.match(first.job, { status: 'done', rowsRead: 9001, eventsAppended: 9000, duplicates: 1, eventsCommitted: 9000, badRows: 0 })

  const span = [H0 - DAY, H0 + 60 * DAY] as const
  for (const metric of ['river.level', 'air.pm25']) {
    const want = expectedDaily(rows, metric)
    if (metric === 'river.level') {
      // The one sent live was late: in no bucket.
      t.ok(want.size > 5, 'several days of history')
    }
    sameFigures(t, await dailyFigures(app, metric, ...span), want, metric)
  }
  const m1 = await sql<{ n: string }>`SELECT sum(b.count)::text AS n FROM aggregate_buckets b JOIN series s ON s.id = b.series_id WHERE b.width_s = 60 AND s.metric = 'air.pm25' AND b.start < ${new Date(now - DAY).toISOString()}::timestamptz`.execute(api.db)
  t.equal(Number(m1.rows[0]?.n), rows.filter((r) => r.metric === 'air.pm25').length, 'every minute bucket too')
  const series = (await app.inject({ url: '/v1/series?metric=air.pm25' })).json().series as { lateEvents: number; events: number }[]
  t.equal(series.reduce((a, s) => a + s.lateEvents, 0), 0, 'no imported event counted late')

  // Live traffic after the import is judged as before: the import did not move the watermark.
  t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', payload: [{ ...(live[0] as object), id: 'live-after', ts: Date.now() - 30_000 }] })).statusCode, 202)
  await waitFor('the live event', async () => Number((await sql<{ n: string }>`SELECT sum(events)::text AS n FROM drain_checkpoints`.execute(api.db)).rows[0]?.n) === 40 + 1 + 9000 + 1, 10_000)
  const lateAfter = (await sql<{ n: string }>`SELECT sum(late_events)::text AS n FROM drain_checkpoints`.execute(api.db)).rows[0]?.n
  t.equal(Number(lateAfter), 1, 'still only the one history event sent live is late')

  // The same file again, even after the idempotency keys have expired: nothing changes.
  const before = await stateSnapshot(api.db)
  const seen = await api.redis.keys(`${sys.te.prefix}:*:seen:*`)
  t.ok(seen.length >= 9000)
  await api.redis.del(...seen)
  const again = await importFile(api, file, 'metric', 'ndjson')
  t.equal(again.alreadyImported, true, 'the second import of the file is a no-op')
  const upload = await app.inject({ method: 'POST', url: '/v1/imports?kind=metric', headers: { 'content-type': 'application/x-ndjson' }, payload: await fs.readFile(file) })
  t.equal(upload.statusCode, 200, upload.body)
  t.match(upload.json(), { alreadyImported: true, import: { id: first.job.id, status: 'done' } })
  await new Promise((r) => setTimeout(r, 200))
  t.same(await stateSnapshot(api.db), before, 'not one figure moved')

  // Report history: cases months old, states and KPIs as if they had arrived live.
  const plan: FieldPlan = { service: 'dvc', province: '48', cases: [] }
  const ends: CasePlan['end'][] = ['resolved', 'resolved', 'rejected', 'in_progress', 'pending']
  for (let i = 0; i < 600; i++) plan.cases.push({ caseId: `D-${i}`, agency: `agency-${i % 3}`, category: 'land', receivedTs: H0 + i * 37 * MIN, end: ends[i % 5] as CasePlan['end'], late: i % 10 === 1, rating: i % 5 === 0 ? 3 + (i % 3) : undefined })
  const events = shuffle(plan.cases.flatMap((c) => caseEvents(plan, c)), 5) as ReportIn[]
  const header = 'id,source,service,case,status,ts,due,rating,dims.province,dims.agency,dims.category'
  const csv = [header, ...events.map((e) => [e.id, e.source, e.service, e.case, e.status, new Date(e.ts).toISOString(), e.due ?? '', e.rating ?? '', e.dims?.province ?? '', e.dims?.agency ?? '', e.dims?.category ?? ''].join(','))].join('\n')
  const reports = await importFile(api, await tempFile(t, 'dossiers.csv', csv), 'report', 'csv')
  t.match(reports.job, { status: 'done', eventsAppended: events.length, eventsCommitted: events.length, badRows: 0 })
  const kpis = (await app.inject({ url: '/v1/kpis?service=dvc&province=48' })).json().groups[0].kpis
  t.match(kpis, { received: 600, resolved: 240, rejected: 120, inProgress: 120, pending: 120 }, 'case KPIs exact')
  const onTime = plan.cases.filter((c) => c.end === 'resolved' && !c.late).length
  t.equal(Math.round(kpis.onTimeRate * 240), onTime, 'on-time rate from the history')

  // The archive replays the same way: the audit finds nothing, the chains verify, a rebuild matches.
  const settings = { latenessMs: 60_000, dayOffsetMs: 0 }
  const audit = await auditRange(api.db, span[0], now + DAY, settings)
  t.equal(audit.eventsReplayed, 40 + 1 + 9000 + 1 + events.length)
  t.ok(audit.bucketsCompared > 1000)
  t.equal(audit.casesCompared, 600)
  t.same(audit.mismatches, [], 'the audit finds no difference')
  t.equal((await app.inject({ url: '/v1/archive/verify' })).json().ok, true, 'hash chains verify')
  // Flipping an entry's lane in the archive is caught by the chain.
  await stopDrain()
  const dst = await startTestApp(t, { ...LATENESS, LANTERN_PARTITIONS: '4' })
  const rebuilt = await rebuildFromArchive(dst.worker, api.db)
  t.equal(rebuilt, 40 + 1 + 9000 + 1 + events.length)
  const [a, b] = [await stateSnapshot(api.db), await stateSnapshot(dst.api.db)]
  t.same(b, a, 'a rebuild from the archive gives the same state, lanes and chain heads included')
  await sql`UPDATE log_archive SET import_id = NULL WHERE import_id IS NOT NULL AND partition = 0 AND first_seq = (SELECT min(first_seq) FROM log_archive WHERE partition = 0 AND import_id IS NOT NULL)`.execute(api.db)
  t.match((await app.inject({ url: '/v1/archive/verify?partition=0' })).json(), { ok: false, partitions: [{ firstBreak: { kind: 'changed' } }] }, 'an entry moved out of the import lane breaks the chain')
})

t.test('an import killed mid-file (SIGKILL) and started again finishes with exact figures', async (t) => {
  const { app, api, worker, te } = await startTestApp(t, { ...LATENESS, LANTERN_PARTITIONS: '4' })
  drainInBackground(t, worker)
  const rows = history(150_000, { prefix: 'k', stepMin: 1, series: 20 })
  const file = await tempFile(t, 'big.ndjson', ndjson(rows))
  const cli = (): ReturnType<typeof spawn> => spawn(process.execPath, ['--import', 'tsx', 'scripts/import.ts', file], { env: { ...te.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] })
  const exitOf = (p: ReturnType<typeof spawn>): Promise<{ code: number | null; stderr: string }> =>
    new Promise((resolve) => {
      let stderr = ''
      p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
      p.on('exit', (code) => resolve({ code, stderr }))
    })

  const first = cli()
  t.teardown(() => void first.kill('SIGKILL'))
  const firstExit = exitOf(first)
  const jobRow = async () => (await sql<{ id: number; rows_sent: number; status: string }>`SELECT id, rows_sent, status FROM imports`.execute(api.db)).rows[0]
  await waitFor('the import to get going', async () => ((await jobRow())?.rows_sent ?? 0) >= 20_000, 60_000)
  first.kill('SIGKILL')
  await firstExit
  const atKill = (await jobRow()) as { id: number; rows_sent: number; status: string }
  t.ok(atKill.rows_sent < rows.length, `killed mid-file: ${atKill.rows_sent} of ${rows.length} rows recorded as sent`)
  t.equal(atKill.status, 'running', 'left running by the kill')

  const second = await exitOf(cli())
  t.equal(second.code, 0, second.stderr)
  t.match(second.stderr, new RegExp(`resuming import ${atKill.id}`))
  const job = (await getImport(api.db, atKill.id)) as NonNullable<Awaited<ReturnType<typeof getImport>>>
  t.match(job, { status: 'done', runs: 2, eventsAppended: rows.length, duplicates: 0, eventsCommitted: rows.length })
  const span = [H0 - DAY, H0 + 400 * DAY] as const
  for (const metric of ['river.level', 'air.pm25']) sameFigures(t, await dailyFigures(app, metric, ...span), expectedDaily(rows, metric), `${metric} after the kill`)
  const total = Number((await sql<{ n: string }>`SELECT sum(count)::text AS n FROM aggregate_buckets WHERE width_s = 60`.execute(api.db)).rows[0]?.n)
  t.equal(total, rows.length, 'every row once in the minute buckets')

  // And once more: already imported.
  const third = await exitOf(cli())
  t.equal(third.code, 0)
  t.match(third.stderr, /already imported/)
})

t.test('a chunk sent again is appended once, even after its idempotency keys expired', async (t) => {
  const { api, te } = await startTestApp(t, { LANTERN_PARTITIONS: '4' })
  const rows = history(500)
  const send = () => appendImportChunk(api.redis, api.keys, 4, 60, EVENT_KINDS.metric, 7, 0, rows, (e) => seriesKey(e.metric, e.dims), Date.now())
  t.match(await send(), { accepted: 500, duplicates: 0, alreadyIn: 0 })
  const lengths = async () => Promise.all([0, 1, 2, 3].map((p) => api.redis.xlen(api.keys.importStream(p))))
  const entries = await lengths()
  const partitions = entries.filter((n) => n > 0).length
  t.ok(partitions > 1, `the chunk spans ${partitions} partitions, one entry each`)
  await api.redis.del(...(await api.redis.keys(`${te.prefix}:*:seen:*`)))
  t.match(await send(), { accepted: 0, duplicates: 0, alreadyIn: partitions }, 'every partition knows the chunk')
  t.same(await lengths(), entries, 'nothing appended again')
})

t.test('bad rows: stop reports and stops before the chunk holding one; skip leaves them out and reports them all', async (t) => {
  const { app, api, worker } = await startTestApp(t, { ...LATENESS, LANTERN_PARTITIONS: '2' })
  drainInBackground(t, worker)
  const rows = history(12_000, { prefix: 'b' })
  const lines = ['id,source,metric,ts,value,dims.province,dims.station', ...rows.map((r) => `${r.id},${r.source},${r.metric},${new Date(r.ts).toISOString()},${r.value},${r.dims.province},${r.dims.station}`)]
  // Line numbers: the header is line 1, rows[i] is line i + 2.
  lines[7001] = lines[7001]!.replace(/,[^,]*,(\d+),(S\d+)$/, ',high,$1,$2')
  lines[9001] = lines[9001]!.replace(/,(\d{4}-[^,]*),/, ',yesterday,')
  lines[11001] = `${lines[11001]},extra`
  const badIds = new Set([rows[7000]!.id, rows[9000]!.id, rows[11000]!.id])
  const file = await tempFile(t, 'with-bad-rows.csv', lines.join('\n'))

  const stopped = await importFile(api, file, 'metric', 'csv', 'stop')
  // The chunk holding the first bad row (records 5,000 to 9,999: lines 5,002 to 10,001) is refused whole, with every bad row in it.
  t.match(stopped.job, { status: 'stopped', rowsSent: 5000, eventsAppended: 5000, eventsCommitted: 5000, badRows: 2 })
  t.match(stopped.job.error, /^row 7002 \/value: must be number; stopped \(on_error=stop\): the rows before row 5002 are imported, nothing from row 5002 on/)
  t.match(stopped.job.badRowList, [
    { row: 7002, path: '/value', reason: 'must be number' },
    { row: 9002, path: '/ts' },
  ])
  const afterStop = (await app.inject({ url: `/v1/imports/${stopped.job.id}` })).json()
  t.match(afterStop, { status: 'stopped', badRows: 2, badRowList: [{ row: 7002 }, { row: 9002 }] }, 'the API shows the report')

  // The same file with skip: resumes after the chunks already in, leaves the bad rows out.
  const skipped = await importFile(api, file, 'metric', 'csv', 'skip')
  t.match(skipped.job, { id: stopped.job.id, status: 'done', runs: 2, onError: 'skip', eventsAppended: 11_997, eventsCommitted: 11_997, badRows: 3 })
  t.match(skipped.job.badRowList, [
    { row: 7002, path: '/value', reason: 'must be number' },
    { row: 9002, path: '/ts', reason: /characters/ },
    { row: 11002, path: '', reason: 'has 8 fields, the header has 7' },
  ])
  t.equal(skipped.job.badRowList?.length, 3, 'each bad row reported once over both runs')
  const good = rows.filter((r) => !badIds.has(r.id))
  for (const metric of ['river.level', 'air.pm25']) sameFigures(t, await dailyFigures(app, metric, H0 - DAY, H0 + 60 * DAY), expectedDaily(good, metric), metric)

  // A header the import cannot map refuses the file before anything is appended.
  const unknown = await tempFile(t, 'bad-header.csv', 'id,source,metric,when,value\nx,s,m,1,2\n')
  await t.rejects(importFile(api, unknown, 'metric', 'csv'), ImportFileError)
  const failed = (await sql<{ status: string; error: string }>`SELECT status, error FROM imports ORDER BY id DESC LIMIT 1`.execute(api.db)).rows[0]
  t.match(failed, { status: 'failed', error: /unknown column "when".*missing column "ts"/ })
})

t.test('live entries go first: an import fills only what live traffic leaves of a batch', async (t) => {
  const { app, api, worker } = await startTestApp(t, { LANTERN_PARTITIONS: '1', LANTERN_DRAIN_BATCH_EVENTS: '4000' })
  const rows = history(20_000, { prefix: 'q' })
  for (let k = 0; k < 4; k++) await appendImportChunk(api.redis, api.keys, 1, 60, EVENT_KINDS.metric, 1, k, rows.slice(k * 5000, (k + 1) * 5000), (e) => seriesKey(e.metric, e.dims), Date.now())
  // Import entries of 5,000 events each exceed the share beside live entries; alone they go one per batch.
  const liveRows = Array.from({ length: 300 }, (_, i) => ({ id: `l${i}`, source: 'gw', metric: 'm', ts: Date.now(), value: i }))
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: liveRows })
  const [drainer] = makeDrainers(worker)
  const cp = async () => (await sql<{ last_id: string; import_last_id: string; events: number }>`SELECT last_id, import_last_id, events FROM drain_checkpoints`.execute(api.db)).rows[0]
  t.equal(await drainer!.drainOnce(), 300, 'the first batch holds the live events and no import entry too big for the share')
  t.match(await cp(), { import_last_id: '0-0', events: 300 })
  t.equal(await drainer!.drainOnce(), 5000, 'with no live traffic an import entry goes whole')
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: liveRows.map((r) => ({ ...r, id: `${r.id}-2` })) })
  t.equal(await drainer!.drainOnce(), 300, 'live again first')
  t.equal(await drainAll([drainer!]), 15_000)
})

t.test('through the API: a job run by a worker, progress on the live topic, the same file again is a no-op', async (t) => {
  const { app, worker, wsUrl } = await startTestApp(t, { ...LATENESS, LANTERN_PARTITIONS: '2', LANTERN_LIVE_TICK_MS: '20' }, { listen: true })
  drainInBackground(t, worker)
  const imports = startImportWorker(worker)
  t.teardown(() => imports.close())
  const c = new Client(wsUrl)
  t.teardown(() => c.ws.terminate())
  await c.opened()
  c.send({ type: 'subscribe', topic: { kind: 'imports' } })
  t.same((await c.next((m) => m.type === 'snapshot')).imports, [])

  const rows = history(12_000, { prefix: 'api' })
  const body = ndjson(rows)
  const posted = await app.inject({ method: 'POST', url: '/v1/imports?kind=metric&name=scada.ndjson', headers: { 'content-type': 'application/x-ndjson' }, payload: body })
  t.equal(posted.statusCode, 202, posted.body)
  const id = posted.json().id as number
  t.match(posted.json(), { status: 'queued', name: 'scada.ndjson', origin: 'api', format: 'ndjson', kind: 'metric', bytesTotal: Buffer.byteLength(body) })
  const done = await c.next((m) => m.type === 'delta' && (m.imports as { id: number; status: string }[] | undefined)?.some((i) => i.id === id && i.status === 'done') === true, 60_000)
  t.ok(done, 'the live topic shows it finish')
  const job = (await app.inject({ url: `/v1/imports/${id}` })).json()
  t.match(job, { status: 'done', rowsRead: 12_000, eventsAppended: 12_000, eventsCommitted: 12_000, badRows: 0, badRowList: [] })
  sameFigures(t, await dailyFigures(app, 'air.pm25', H0 - DAY, H0 + 60 * DAY), expectedDaily(rows, 'air.pm25'), 'air.pm25')
  const again = await app.inject({ method: 'POST', url: '/v1/imports?kind=metric', headers: { 'content-type': 'application/x-ndjson' }, payload: body })
  t.match(again.json(), { alreadyImported: true, import: { id } })
  t.equal((await app.inject({ url: '/v1/imports' })).json().imports.length, 1)
  t.equal((await app.inject({ method: 'POST', url: '/v1/imports?kind=metric', headers: { 'content-type': 'application/json' }, payload: '{}' })).statusCode, 415)
  t.equal((await app.inject({ method: 'POST', url: '/v1/imports?kind=event', headers: { 'content-type': 'text/csv' }, payload: 'a' })).statusCode, 400)
  t.equal((await app.inject({ url: '/v1/imports/999' })).statusCode, 404)
})
