import t from 'tap'
import { WebSocket } from 'ws'
import { startTestApp } from '../helpers/context.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'
import { LiveClient, type SocketLike, type Status, type TopicState } from '../../src/client/live-client.js'

t.test('the typed client shows what a screen that never disconnected would show, across a network drop', async (t) => {
  const { app, worker, wsUrl } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_LIVE_TICK_MS: '20' }, { listen: true })
  const drainers = makeDrainers(worker)
  const now = Date.now()
  let n = 0
  const post = async (count: number, province = '46') => {
    const events = Array.from({ length: count }, () => ({ id: `e${n++}`, source: 'gw', metric: 'air.pm25', ts: now, value: 10, dims: { province, station: 'S1' } }))
    await app.inject({ method: 'POST', url: '/v1/metrics', payload: events })
    await drainAll(drainers)
  }
  await post(3)

  const sockets: WebSocket[] = []
  const statuses: Status[] = []
  const client = new LiveClient({
    url: wsUrl,
    WebSocket: class extends WebSocket {
      constructor(url: string) {
        super(url)
        sockets.push(this)
      }
    } as unknown as new (url: string) => SocketLike,
    minReconnectMs: 50,
    onStatus: (s) => statuses.push(s),
  })
  t.teardown(() => client.close())
  let state: TopicState | null = null
  const changed: (() => void)[] = []
  client.subscribe({ kind: 'aggregate', metric: 'air.pm25', window: '1h', dims: { province: '46' } }, (s) => {
    state = s
    changed.splice(0).forEach((f) => f())
  })
  const count = (): number => (state as TopicState | null)?.buckets.at(-1)?.count ?? 0
  const waitFor = async (want: number): Promise<void> => {
    const until = Date.now() + 10_000
    while (count() !== want && Date.now() < until) await new Promise<void>((r) => changed.push(r) && setTimeout(r, 200))
    t.equal(count(), want)
  }
  await waitFor(3)
  await post(2)
  await waitFor(5)

  // The network drops; changes commit meanwhile; the client comes back on its own.
  sockets[0]?.terminate()
  await post(4)
  await post(1, '01')
  await post(6)
  await waitFor(15)
  t.ok(statuses.includes('reconnecting') && statuses.at(-1) === 'open', `reconnected (${statuses.join(' > ')})`)
  t.equal(sockets.length, 2, 'one new connection')
})

t.test('the protocol is published: AsyncAPI under /docs, and the client as a browser module', async (t) => {
  const { app } = await startTestApp(t, { LANTERN_PARTITIONS: '1' })
  const doc = await app.inject({ url: '/docs/asyncapi.json' })
  t.equal(doc.statusCode, 200)
  const body = doc.json()
  t.equal(body.asyncapi, '3.0.0')
  t.ok(body.channels.live.messages.subscribe.payload.properties.since, 'subscribe documents resume')
  t.ok(body.channels.live.messages.delta.payload.properties.seq)
  const js = await app.inject({ url: '/client/live-client.js' })
  t.match(js.headers['content-type'], /javascript/)
  t.match(js.body, /export \{[^}]*LiveClient/)
  t.notMatch(js.body, /import /, 'no imports left for a browser to resolve')
  t.equal((await app.inject({ url: '/docs/json' })).statusCode, 200, 'the OpenAPI document is still served')
})
