import t from 'tap'
import { sql } from 'kysely'
import { startTestApp } from '../helpers/context.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'
import { rebuildFromArchive } from '../../workers/rebuild.js'
import { startAuditWorker } from '../../workers/audit.worker.js'
import { Client } from '../helpers/ws-client.js'

const T0 = Date.parse('2026-11-20T00:00:00Z')

t.test('the archive: exported whole, tampering found by verify, Redis trimmed only after archiving', async (t) => {
  const { app, api, worker } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_LOG_RETENTION_SEC: '0', LANTERN_ALLOWED_LATENESS_SEC: String(30 * 86400) })
  const metrics = Array.from({ length: 300 }, (_, i) => ({ id: `m${i}`, source: 'gw', metric: i % 2 ? 'air.pm25' : 'river.level', ts: T0 + i * 60_000, value: i, dims: { station: `S${i % 3}` } }))
  for (let i = 0; i < metrics.length; i += 50) await app.inject({ method: 'POST', url: '/v1/metrics', payload: metrics.slice(i, i + 50) })
  await app.inject({ method: 'POST', url: '/v1/reports', payload: [{ id: 'r1', source: 'app', service: 'paht', case: 'C1', status: 'received', ts: T0, dims: { province: '46' } }] })
  const lengthsBefore = await Promise.all([0, 1].map((p) => api.redis.xlen(api.keys.stream(p))))
  t.ok(lengthsBefore[0]! + lengthsBefore[1]! > 0)
  await drainAll(makeDrainers(worker))

  const lengthsAfter = await Promise.all([0, 1].map((p) => api.redis.xlen(api.keys.stream(p))))
  t.ok(lengthsAfter.every((n) => n <= 1), `archived entries trimmed from Redis (${lengthsAfter})`)

  const all = await app.inject({ url: '/v1/export' })
  t.match(all.headers['content-type'], /^application\/x-ndjson/)
  const lines = all.body.trim().split('\n').map((l) => JSON.parse(l) as { id: string; seq: number; partition: number; value?: number })
  t.equal(lines.length, 301, 'every event, metric and report')
  t.same(new Set(lines.map((l) => l.id)).size, 301)
  const river = (await app.inject({ url: `/v1/export?kind=metric&metric=river.level&dims.station=S0&from=${T0}&to=${T0 + 100 * 60_000}` })).body.trim().split('\n')
  t.equal(river.length, metrics.filter((m, i) => i < 100 && m.metric === 'river.level' && m.dims.station === 'S0').length, 'filters by kind, metric, dims and time')

  const clean = (await app.inject({ url: '/v1/archive/verify' })).json()
  t.equal(clean.ok, true)
  t.equal(clean.partitions.reduce((a: number, p: { checked: number }) => a + p.checked, 0), 301)

  // By hand, in Postgres: change one value.
  const victim = lines.find((l) => l.id === 'm120') as { partition: number; seq: number }
  await sql`UPDATE log_archive SET events = replace(events, '"id":"m120","source":"gw","metric":"river.level","ts":${sql.raw(String(T0 + 120 * 60_000))},"value":120', '"id":"m120","source":"gw","metric":"river.level","ts":${sql.raw(String(T0 + 120 * 60_000))},"value":12')
            WHERE partition = ${victim.partition} AND first_seq <= ${victim.seq} AND first_seq + count > ${victim.seq}`.execute(api.db)
  const changed = (await app.inject({ url: `/v1/archive/verify?partition=${victim.partition}` })).json()
  t.equal(changed.ok, false)
  t.match(changed.partitions[0].firstBreak, { kind: 'changed', eventId: 'm120', seq: victim.seq })
  t.equal((await app.inject({ url: `/v1/archive/verify?partition=${1 - victim.partition}` })).json().ok, true, 'the other partition is intact')

  // Remove a whole entry from the middle of a partition.
  const other = 1 - victim.partition
  const { rows } = await sql<{ first_seq: number; count: number }>`SELECT first_seq, count FROM log_archive WHERE partition = ${other} ORDER BY first_seq OFFSET 1 LIMIT 1`.execute(api.db)
  const gone = rows[0] as { first_seq: number; count: number }
  await sql`DELETE FROM log_archive WHERE partition = ${other} AND first_seq = ${gone.first_seq}`.execute(api.db)
  t.match((await app.inject({ url: `/v1/archive/verify?partition=${other}` })).json().partitions[0].firstBreak, { kind: 'removed', seq: gone.first_seq })
  // A whole entry appended by hand, past the end of a partition's chain.
  await sql`INSERT INTO log_archive SELECT partition, first_seq + 1000000, count, entry_id, kind, arrived_at, min_ts, max_ts, events, hash, fingerprints FROM log_archive WHERE partition = ${victim.partition} AND first_seq = 0`.execute(api.db)
  const { rows: lastRows } = await sql<{ first_seq: number }>`SELECT max(first_seq) AS first_seq FROM log_archive WHERE partition = ${victim.partition} AND first_seq < 1000000`.execute(api.db)
  const tail = (await app.inject({ url: `/v1/archive/verify?partition=${victim.partition}&from_seq=${lastRows[0]?.first_seq}` })).json()
  t.match(tail.partitions[0].firstBreak, { kind: 'inserted', seq: 1_000_000 }, 'an entry past the committed head')

  // Insert a made-up event into an entry.
  const { rows: firsts } = await sql<{ events: string }>`SELECT events FROM log_archive WHERE partition = ${victim.partition} AND first_seq = 0`.execute(api.db)
  const forged = `${firsts[0]?.events}\n${JSON.stringify({ id: 'forged', source: 'gw', metric: 'air.pm25', ts: T0, value: 1, dims: {} })}`
  await sql`UPDATE log_archive SET events = ${forged} WHERE partition = ${victim.partition} AND first_seq = 0`.execute(api.db)
  t.match((await app.inject({ url: `/v1/archive/verify?partition=${victim.partition}` })).json().partitions[0].firstBreak, { kind: 'inserted', seq: 0 })
})

t.test('an audit re-derives from the raw log: nothing on untouched data, every figure changed by hand', async (t) => {
  const { app, api, worker } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_ALLOWED_LATENESS_SEC: '600' })
  const drainers = makeDrainers(worker)
  const ev = (i: number, ts: number) => ({ id: `a${i}`, source: 'gw', metric: 'power.load', ts, value: (i * 7) % 13, dims: { feeder: `F${i % 4}` } })
  // Late events (beyond the 10-minute lateness) must be judged late by the replay too.
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: Array.from({ length: 200 }, (_, i) => ev(i, T0 + i * 30_000)) })
  await drainAll(drainers)
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: Array.from({ length: 20 }, (_, i) => ev(1000 + i, T0 + i * 60_000)) })
  await app.inject({
    method: 'POST',
    url: '/v1/reports',
    payload: [
      { id: 'c1r', source: 'app', service: 'paht', case: 'C1', status: 'received', ts: T0, dims: { province: '46' } },
      { id: 'c1s', source: 'app', service: 'paht', case: 'C1', status: 'resolved', ts: T0 + 3_600_000 },
    ],
  })
  await drainAll(drainers)
  const range = `from=${T0 - 86_400_000}&to=${T0 + 86_400_000}`

  const clean = (await app.inject({ url: `/v1/audit?${range}` })).json()
  t.equal(clean.eventsReplayed, 222)
  t.ok(clean.bucketsCompared > 0)
  t.equal(clean.casesCompared, 1)
  t.same(clean.mismatches, [], 'untouched data: zero differences')

  await sql`UPDATE aggregate_buckets SET count = count + 1, sum = sum + 5 WHERE width_s = 3600 AND start = (SELECT min(start) FROM aggregate_buckets WHERE width_s = 3600) AND series_id = (SELECT min(id) FROM series)`.execute(api.db)
  await sql`UPDATE cases SET state = 'in_progress', resolved_ts = NULL WHERE case_id = 'C1'`.execute(api.db)
  const dirty = (await app.inject({ url: `/v1/audit?${range}` })).json()
  const fields = dirty.mismatches.map((m: { what: string; field: string }) => `${m.what}.${m.field}`).sort()
  t.same(fields, ['bucket.count', 'bucket.sum', 'case.resolved_ts', 'case.state'], 'exactly the figures changed by hand')
  const bucket = dirty.mismatches.find((m: { field: string }) => m.field === 'count')
  t.equal(bucket.stored, bucket.derived + 1, 'both figures are given')
  t.ok(bucket.eventIds.length > 0 && bucket.eventIds.every((id: string) => id.startsWith('a')), 'with the events behind the bucket')
  t.match(dirty.mismatches.find((m: { field: string }) => m.field === 'state'), { key: 'paht/C1', stored: 'in_progress', derived: 'resolved', eventIds: ['c1r', 'c1s'] })
  t.equal((await app.inject({ url: `/v1/audit?from=${T0}&to=${T0 - 1}` })).statusCode, 400)
})

t.test('provenance: the events that built a bucket', async (t) => {
  const { app, worker } = await startTestApp(t, { LANTERN_PARTITIONS: '4', LANTERN_ALLOWED_LATENESS_SEC: String(30 * 86400) })
  const payload = Array.from({ length: 60 }, (_, i) => ({ id: `p${i}`, source: 'gw', metric: 'air.pm25', ts: T0 + i * 20_000, value: i, dims: { station: i % 2 ? 'A' : 'B', province: '46' } }))
  await app.inject({ method: 'POST', url: '/v1/metrics', payload })
  await drainAll(makeDrainers(worker))
  const res = await app.inject({ url: `/v1/provenance/bucket?metric=air.pm25&window=5m&start=${T0 + 90_000}&dims.station=A&dims.province=46` })
  t.equal(res.statusCode, 200, res.body)
  const body = res.json()
  t.equal(body.start, new Date(T0).toISOString(), 'the bucket holding the given instant')
  const want = payload.filter((e, i) => i % 2 === 1 && e.ts < T0 + 300_000).map((e) => e.id)
  t.same(body.events.map((e: { id: string }) => e.id).sort(), want.sort())
  const agg = (await app.inject({ url: `/v1/aggregates?metric=air.pm25&window=5m&dims.station=A&from=${T0}&to=${T0 + 300_000}` })).json()
  t.equal(agg.groups[0].buckets[0].count, body.events.length, 'as many events as the bucket counts')
  t.ok(body.events.every((e: { partition: number; seq: number }) => Number.isInteger(e.partition) && Number.isInteger(e.seq)), 'each with its place in the log')
})

t.test('a rebuild from the archive into an empty database gives the same figures, cases and chain', async (t) => {
  const overrides = { LANTERN_PARTITIONS: '3', LANTERN_ALLOWED_LATENESS_SEC: '600' }
  const src = await startTestApp(t, overrides)
  const metrics = Array.from({ length: 400 }, (_, i) => ({ id: `r${i}`, source: 'gw', metric: i % 3 ? 'air.pm25' : 'power.load', ts: T0 + i * 15_000, value: (i * 31) % 101, dims: { station: `S${i % 7}` } }))
  await src.app.inject({ method: 'POST', url: '/v1/metrics', payload: metrics })
  const drainers = makeDrainers(src.worker)
  await drainAll(drainers)
  // Late ones, judged late again by the rebuild.
  await src.app.inject({ method: 'POST', url: '/v1/metrics', payload: metrics.slice(0, 30).map((m) => ({ ...m, id: `late-${m.id}` })) })
  await src.app.inject({
    method: 'POST',
    url: '/v1/reports',
    payload: [
      { id: 'k1', source: 'app', service: 'dvc', case: 'D1', status: 'resolved', ts: T0 + 7200_000 },
      { id: 'k0', source: 'app', service: 'dvc', case: 'D1', status: 'received', ts: T0, due: T0 + 3600_000, dims: { province: '48', agency: 'land' } },
      { id: 'k2', source: 'app', service: 'dvc', case: 'D2', status: 'rated', rating: 5, ts: T0 },
    ],
  })
  await drainAll(drainers)

  const dst = await startTestApp(t, overrides)
  const total = await rebuildFromArchive(dst.worker, src.api.db)
  t.equal(total, 433)

  const snapshot = async (db: typeof src.api.db) => ({
    buckets: (await sql`SELECT s.key, b.width_s, b.start, b.count, b.sum, b.min, b.max, b.mean, b.m2, b.last FROM aggregate_buckets b JOIN series s ON s.id = b.series_id ORDER BY 1, 2, 3`.execute(db)).rows,
    series: (await sql`SELECT key, events, late_events FROM series ORDER BY key`.execute(db)).rows,
    cases: (await sql`SELECT service, case_id, state, received_ts, resolved_ts, due_ts, rating, findings FROM cases ORDER BY 1, 2`.execute(db)).rows,
    findings: (await sql`SELECT case_id, event_id, kind FROM case_findings ORDER BY 1, 2`.execute(db)).rows,
    checkpoints: (await sql`SELECT partition, last_id, watermark_ms, events, late_events, archive_seq, archive_hash FROM drain_checkpoints ORDER BY 1`.execute(db)).rows,
  })
  const [a, b] = [await snapshot(src.api.db), await snapshot(dst.api.db)]
  t.ok(a.buckets.length > 0 && (a.series as { late_events: number }[]).some((s) => s.late_events > 0), 'the source has buckets and late events')
  t.same(b, a, 'the same state, to the last bit, down to the chain heads')
  t.equal((await dst.app.inject({ url: '/v1/archive/verify' })).json().ok, true)
  await t.rejects(rebuildFromArchive(dst.worker, src.api.db), /empty database/, 'never over existing state')
})

t.test('an audit runs as a queued job, with its progress and report visible through the API and live', async (t) => {
  const { app, worker, wsUrl } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_LIVE_TICK_MS: '20' }, { listen: true })
  const audits = startAuditWorker(worker)
  t.teardown(() => audits.close())
  await app.inject({ method: 'POST', url: '/v1/metrics', payload: Array.from({ length: 50 }, (_, i) => ({ id: `j${i}`, source: 'gw', metric: 'm', ts: T0 + i * 1000, value: i })) })
  await drainAll(makeDrainers(worker))
  const c = new Client(wsUrl)
  t.teardown(() => c.ws.terminate())
  await c.opened()
  c.send({ type: 'subscribe', topic: { kind: 'audits' } })
  t.same((await c.next((m) => m.type === 'snapshot')).audits, [])

  const queued = await app.inject({ method: 'POST', url: '/v1/audits', payload: { from: new Date(T0).toISOString(), to: new Date(T0 + 86_400_000).toISOString() } })
  t.equal(queued.statusCode, 202, queued.body)
  const id = queued.json().id
  const done = await c.next((m) => m.type === 'delta' && (m.audits as { id: number; status: string }[] | undefined)?.some((a) => a.id === id && a.status === 'done') === true, 15_000)
  t.ok(done, 'the live topic shows it finish')
  const audit = (await app.inject({ url: `/v1/audits/${id}` })).json()
  t.match(audit, { status: 'done', eventsReplayed: 50, mismatchCount: 0, report: { mismatches: [] } })
  t.equal((await app.inject({ url: '/v1/audits' })).json().audits.length, 1)
  t.equal((await app.inject({ method: 'POST', url: '/v1/audits', payload: { from: 'x', to: 'y' } })).statusCode, 400)
  t.equal((await app.inject({ url: '/v1/audits/999' })).statusCode, 404)
})
