import t from 'tap'
import type { ChildProcess } from 'node:child_process'
import { sql } from 'kysely'
import { startWorker, waitFor } from '../helpers/processes.js'
import { openTestRuntime, startTestApp } from '../helpers/context.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'
import type { Db } from '../../src/infra/db.js'

const batch = (from: number, n: number, ts: number) =>
  Array.from({ length: n }, (_, i) => ({
    id: `e${from + i}`,
    source: 'gw',
    metric: 'power.load',
    ts: ts + (i % 1000),
    value: (from + i) % 97,
    dims: { province: String((from + i) % 5), feeder: `F${(from + i) % 40}` },
  }))

async function committedTotals(db: Db): Promise<{ events: number; bucketCount: number }> {
  const cp = await sql<{ events: string }>`SELECT coalesce(sum(events), 0)::text AS events FROM drain_checkpoints`.execute(db)
  const b = await sql<{ n: string }>`SELECT coalesce(sum(count), 0)::text AS n FROM aggregate_buckets WHERE width_s = 60`.execute(db)
  return { events: Number(cp.rows[0]?.events), bucketCount: Number(b.rows[0]?.n) }
}

t.test('two drainers racing on the same partitions never double count', async (t) => {
  const { app, api, worker: w1, te } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_DRAIN_BATCH_EVENTS: '700' })
  const w2 = await openTestRuntime(te, 'worker')
  t.teardown(() => w2.close())

  const now = Date.now()
  for (let i = 0; i < 20_000; i += 2000) {
    t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', payload: batch(i, 2000, now) })).statusCode, 202)
  }
  const [a, b] = [makeDrainers(w1), makeDrainers(w2)]
  await Promise.all([drainAll(a), drainAll(b)])
  const totals = await committedTotals(api.db)
  t.same(totals, { events: 20_000, bucketCount: 20_000 })
})

t.test('a worker process killed with SIGKILL mid-drain loses and repeats nothing', async (t) => {
  const { app, api, te } = await startTestApp(t, { LANTERN_PARTITIONS: '4', LANTERN_DRAIN_BATCH_EVENTS: '2000', LOG_LEVEL: 'warn' })
  const workers: ChildProcess[] = []
  t.teardown(() => workers.forEach((w) => w.kill('SIGKILL')))

  const total = 60_000
  const now = Date.now()
  for (let i = 0; i < total; i += 5000) {
    t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', payload: batch(i, 5000, now) })).statusCode, 202)
  }
  const first = startWorker(te.env)
  workers.push(first)
  await waitFor('the first batches to commit', async () => (await committedTotals(api.db)).events > 0, 30_000)
  first.kill('SIGKILL')
  const atKill = (await committedTotals(api.db)).events
  t.ok(atKill < total, `killed while draining (${atKill} of ${total} committed)`)

  workers.push(startWorker(te.env))
  await waitFor('every event to commit', async () => (await committedTotals(api.db)).events >= total, 60_000)
  t.same(await committedTotals(api.db), { events: total, bucketCount: total }, 'exact counts after the kill')
  const res = await app.inject({ url: `/v1/aggregates?metric=power.load&window=1d&from=${now - 86_400_000 * 2}&to=${now + 86_400_000}` })
  const sum = (res.json().groups[0].buckets as { sum: number }[]).reduce((a, b) => a + b.sum, 0)
  const want = Array.from({ length: total }, (_, i) => i % 97).reduce((a, b) => a + b, 0)
  t.equal(sum, want, 'sums exact too')
})

t.test('drain restarts from the checkpoint after a failure mid-batch', async (t) => {
  const { app, api, worker } = await startTestApp(t, { LANTERN_PARTITIONS: '1', LANTERN_DRAIN_BATCH_EVENTS: '500' })

  for (let i = 0; i < 3000; i += 500) await app.inject({ method: 'POST', url: '/v1/metrics', payload: batch(i, 500, Date.now()) })
  const [drainer] = makeDrainers(worker)
  if (!drainer) throw new Error('no drainer')
  await drainer.drainOnce()
  // The database goes away in the middle of the next transaction: nothing of it may stay.
  await sql`ALTER TABLE aggregate_buckets ADD CONSTRAINT fail_next CHECK (count < 0) NOT VALID`.execute(api.db)
  await t.rejects(drainer.drainOnce())
  await sql`ALTER TABLE aggregate_buckets DROP CONSTRAINT fail_next`.execute(api.db)
  await drainAll([drainer])
  t.same(await committedTotals(api.db), { events: 3000, bucketCount: 3000 })
})
