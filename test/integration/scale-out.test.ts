import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { sql } from 'kysely'
import { createTestEnv, openTestRuntime } from '../helpers/context.js'
import { Client } from '../helpers/ws-client.js'

/** Starts a role as its own process; resolves with the process and, for an API, its base URL. */
function startRole(script: string, env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...env, LOG_LEVEL: 'info', PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    const timer = setTimeout(() => reject(new Error(`${script} did not start`)), 30_000)
    lines.on('line', (line) => {
      const m = /"msg":"(?:Server listening at (http:\/\/[^"]+)|worker started)"/.exec(line)
      if (!m) return
      clearTimeout(timer)
      resolve({ child, url: m[1] ?? '' })
    })
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)))
  })
}

t.test('two hub processes and two worker processes: exact aggregates, every socket on either hub gets every delta', async (t) => {
  const te = await createTestEnv({ LANTERN_PARTITIONS: '4', LANTERN_LIVE_TICK_MS: '20', LANTERN_DRAIN_LEASE_MS: '2000' })
  const db = await openTestRuntime(te, 'worker')
  const children: ChildProcess[] = []
  const clients: Client[] = []
  t.teardown(async () => {
    clients.forEach((c) => c.ws.terminate())
    children.forEach((c) => c.kill('SIGKILL'))
    await db.close()
    await te.destroy()
  })
  const hubs = await Promise.all([startRole('src/server.ts', te.env), startRole('src/server.ts', te.env)])
  const workers = await Promise.all([startRole('workers/main.ts', te.env), startRole('workers/main.ts', te.env)])
  children.push(...hubs.map((h) => h.child), ...workers.map((w) => w.child))

  const topic = { kind: 'aggregate', metric: 'traffic.count', window: '1h', dims: { province: '01' } }
  for (const h of hubs) {
    for (let i = 0; i < 3; i++) {
      const c = new Client(`${h.url.replace('http', 'ws')}/v1/live`)
      clients.push(c)
      await c.opened()
      c.send({ type: 'subscribe', topic })
      await c.next((m) => m.type === 'snapshot')
    }
  }

  const total = 12_000
  const now = Date.now()
  for (let i = 0; i < total; i += 1000) {
    const batch = Array.from({ length: 1000 }, (_, j) => ({
      id: `t${i + j}`,
      source: 'cam',
      metric: 'traffic.count',
      ts: now,
      value: 1,
      dims: { province: (i + j) % 2 === 0 ? '01' : '79', camera: `C${(i + j) % 50}` },
    }))
    const hub = hubs[(i / 1000) % 2] as { url: string }
    const res = await fetch(`${hub.url}/v1/metrics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) })
    t.equal(res.status, 202)
  }

  const until = Date.now() + 60_000
  let committed = 0
  while (Date.now() < until) {
    const { rows } = await sql<{ n: string }>`SELECT coalesce(sum(events), 0)::text AS n FROM drain_checkpoints`.execute(db.db)
    committed = Number(rows[0]?.n)
    if (committed >= total) break
    await new Promise((r) => setTimeout(r, 200))
  }
  t.equal(committed, total, 'every event committed once across both workers')

  const res = await fetch(`${hubs[1]?.url}/v1/aggregates?metric=traffic.count&window=1d&group_by=province&from=${now - 86_400_000}&to=${now + 86_400_000}`)
  const groups = ((await res.json()) as { groups: { key: { province: string }; buckets: { count: number; sum: number }[] }[] }).groups
  t.same(
    groups.map((g) => [g.key.province, g.buckets.reduce((a, b) => a + b.count, 0)]).sort(),
    [
      ['01', total / 2],
      ['79', total / 2],
    ],
  )
  const metrics = await (await fetch(`${hubs[0]?.url}/metrics`)).text()
  t.match(metrics, /lantern_drain_commit_seconds_count\{[^}]*role="worker"/, 'one scrape of the API shows the workers too')
  t.match(metrics, /lantern_events_accepted_total\{[^}]*role="api"/)
  for (const [i, c] of clients.entries()) {
    const last = await c.next((m) => m.type === 'delta' && m.bucket?.count === total / 2, 15_000)
    t.ok(last, `socket ${i} on hub ${i < 3 ? 1 : 2} saw the final count`)
  }
})
