import t from 'tap'
import { Client } from '../helpers/ws-client.js'
import { startTestApp } from '../helpers/context.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'

t.test('a subscriber gets a snapshot, then a delta after each commit, and resumes without a gap', async (t) => {
  const { app, worker, hub, wsUrl: url } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_LIVE_TICK_MS: '20' }, { listen: true })
  const clients: Client[] = []
  t.teardown(() => clients.forEach((c) => c.ws.terminate()))

  const drainers = makeDrainers(worker)
  const now = Date.now()
  const post = async (ids: string[], province: string, value: number) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/metrics',
      payload: ids.map((id) => ({ id, source: 'hue-env', metric: 'air.pm25', ts: now, value, dims: { province, station: `S-${id}` } })),
    })
    t.equal(res.statusCode, 202)
    await drainAll(drainers)
  }
  await post(['a1', 'a2'], '46', 10)

  const c = new Client(url)
  clients.push(c)
  await c.opened()
  t.match(await c.next((m) => m.type === 'hello'), { protocol: 1 })
  c.send({ type: 'subscribe', id: 's1', topic: { kind: 'aggregate', metric: 'air.pm25', window: '1m', dims: { province: '46' } } })
  const subscribed = await c.next((m) => m.type === 'subscribed')
  t.equal(subscribed.id, 's1')
  const snapshot = await c.next((m) => m.type === 'snapshot')
  t.equal(snapshot.buckets?.length, 1)
  t.equal(snapshot.buckets?.[0]?.count, 2, 'snapshot holds what was committed before subscribing')

  await post(['a3'], '46', 20)
  const d1 = await c.next((m) => m.type === 'delta')
  t.equal(d1.topic, subscribed.topic)
  t.equal(d1.bucket?.count, 3)
  t.equal(d1.bucket?.sum, 40)
  t.ok((d1.seq ?? 0) > (snapshot.seq as number), 'sequence grows')

  await post(['b1'], '01', 99)
  await new Promise((r) => setTimeout(r, 200))
  t.notOk(c.messages.some((m) => m.type === 'delta'), 'a change outside the filter sends nothing')

  // The screen drops off; two commits happen; it comes back with the last sequence it saw.
  c.ws.terminate()
  const watcher = new Client(url)
  clients.push(watcher)
  await watcher.opened()
  watcher.send({ type: 'subscribe', topic: { kind: 'aggregate', metric: 'air.pm25', window: '1m', dims: { province: '46' } } })
  await watcher.next((m) => m.type === 'snapshot')
  await post(['a4'], '46', 30)
  await watcher.next((m) => m.type === 'delta' && m.bucket?.count === 4)
  await post(['a5'], '46', 40)
  await watcher.next((m) => m.type === 'delta' && m.bucket?.count === 5)

  const back = new Client(url)
  clients.push(back)
  await back.opened()
  back.send({ type: 'subscribe', topic: { kind: 'aggregate', metric: 'air.pm25', window: '1m', dims: { province: '46' } }, since: d1.seq })
  const missed = [await back.next((m) => m.type === 'delta'), await back.next((m) => m.type === 'delta')]
  t.same(missed.map((m) => m.bucket?.count), [4, 5], 'the missed deltas, in order')
  t.same(missed.map((m) => m.seq), [(d1.seq as number) + 1, (d1.seq as number) + 2])
  t.notOk(back.messages.some((m) => m.type === 'snapshot'), 'no snapshot when the history reaches back')

  // The hub's own Redis subscription drops while a change commits: the screen still gets it.
  const hubSub = (hub as unknown as { sub: { disconnect(reconnect: boolean): void } }).sub
  hubSub.disconnect(true)
  await post(['a6'], '46', 50)
  t.equal((await watcher.next((m) => m.type === 'delta' && m.bucket?.count === 6, 10_000)).bucket?.sum, 160, 'no gap after the hub reconnects')

  const lost = new Client(url)
  clients.push(lost)
  await lost.opened()
  lost.send({ type: 'subscribe', topic: { kind: 'aggregate', metric: 'air.pm25', window: '1m', dims: { province: '46' } }, since: 10_000 })
  await lost.next((m) => m.type === 'reset')
  t.equal((await lost.next((m) => m.type === 'snapshot')).buckets?.[0]?.count, 6, 'a sequence the hub cannot serve gets a reset and a fresh snapshot')

  lost.send({ type: 'subscribe', topic: { kind: 'aggregate', metric: 'air.pm25', window: '2m' } })
  t.equal((await lost.next((m) => m.type === 'error')).code, 'BAD_REQUEST')
  lost.ws.send('not json')
  t.equal((await lost.next((m) => m.type === 'error')).code, 'BAD_REQUEST')
  lost.send({ type: 'ping', ts: 5 })
  t.equal((await lost.next((m) => m.type === 'pong')).ts, 5)
})

t.test('a client that stops reading is coalesced, then closed with 4008; the others carry on', async (t) => {
  const { app, worker, hub, api, wsUrl } = await startTestApp(
    t,
    {
      LANTERN_PARTITIONS: '2',
      LANTERN_LIVE_TICK_MS: '20',
      LANTERN_ALLOWED_LATENESS_SEC: String(2 * 86400),
      LANTERN_LIVE_COALESCE_BYTES: String(64 * 1024),
      LANTERN_LIVE_MAX_BUFFERED_BYTES: String(1024 * 1024),
    },
    { listen: true },
  )
  const start = Math.floor(Date.now() / 60_000) * 60_000 - 1439 * 60_000
  const events = Array.from({ length: 1440 * 4 }, (_, i) => ({
    id: `h${i}`,
    source: 'gw',
    metric: 'hist.load',
    ts: start + Math.floor(i / 4) * 60_000,
    value: i % 100,
    dims: { station: `S${i % 4}` },
  }))
  t.equal((await app.inject({ method: 'POST', url: '/v1/metrics', payload: events })).statusCode, 202)
  await drainAll(makeDrainers(worker))

  const healthy = new Client(wsUrl)
  const stalled = new Client(wsUrl)
  t.teardown(() => [healthy, stalled].forEach((c) => c.ws.terminate()))
  await Promise.all([healthy.opened(), stalled.opened()])
  healthy.send({ type: 'subscribe', topic: { kind: 'aggregate', metric: 'hist.load', window: '1m', dims: { station: 'S0' } } })
  await healthy.next((m) => m.type === 'snapshot')

  // Stop reading, then keep asking for full-day snapshots (about 400 KB each).
  ;(stalled.ws as unknown as { _socket: { pause(): void } })._socket.pause()
  for (let i = 0; i < 120; i++) {
    stalled.send({ type: 'subscribe', topic: { kind: 'aggregate', metric: 'hist.load', window: '1m', dims: { station: `S${i % 4}` } }, buckets: 1440 })
  }
  const until = Date.now() + 30_000
  while (hub.socketCount > 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 100))
  t.equal(hub.socketCount, 1, 'the stalled socket was dropped by the hub')
  const closed = (await api.metrics.slowClosed.get()).values[0]?.value
  t.equal(closed, 1, 'counted as closed for being too slow')

  await app.inject({ method: 'POST', url: '/v1/metrics', payload: [{ id: 'late-1', source: 'gw', metric: 'hist.load', ts: start + 1439 * 60_000, value: 1000, dims: { station: 'S0' } }] })
  await drainAll(makeDrainers(worker))
  const d = await healthy.next((m) => m.type === 'delta')
  t.equal(d.bucket?.count, 2, 'the healthy screen still gets its deltas')
})

t.test('a wildcard topic gives one roll-up per value: every province of one metric on one socket', async (t) => {
  const { app, worker, wsUrl } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_LIVE_TICK_MS: '20' }, { listen: true })
  const now = Date.now()
  const post = async (province: string, station: string, value: number, id: string) => {
    await app.inject({ method: 'POST', url: '/v1/metrics', payload: [{ id, source: 'gw', metric: 'river.level', ts: now, value, dims: { province, station } }] })
  }
  await post('46', 'R1', 2, 'w1')
  await post('46', 'R2', 4, 'w2')
  await post('48', 'R9', 7, 'w3')
  await drainAll(makeDrainers(worker))
  const c = new Client(wsUrl)
  t.teardown(() => c.ws.terminate())
  await c.opened()
  c.send({ type: 'subscribe', topic: { kind: 'aggregate', metric: 'river.level', window: '5m', dims: { province: '*' } } })
  const snap = await c.next((m) => m.type === 'snapshot')
  const groups = (snap.buckets as unknown as { group: { province: string }; count: number; max: number }[]).map((b) => [b.group.province, b.count, b.max]).sort()
  t.same(groups, [
    ['46', 2, 4],
    ['48', 1, 7],
  ])
  await post('79', 'R5', 1, 'w4')
  await drainAll(makeDrainers(worker))
  const d = await c.next((m) => m.type === 'delta' && (m.group as { province: string } | undefined)?.province === '79')
  t.equal(d.bucket?.count, 1, 'a new province appears as its own group')
})
