import t from 'tap'
import type { WebSocket } from 'ws'
import { Outbox } from '../../src/live/outbox.js'

/** A socket whose unsent byte count the test controls, recording what was written. */
function fakeSocket() {
  const sent: string[] = []
  const closes: number[] = []
  const ws = {
    OPEN: 1,
    readyState: 1,
    bufferedAmount: 0,
    send: (m: string) => void sent.push(m),
    close: (code: number) => void closes.push(code),
    terminate: () => undefined,
  }
  return { ws, sent, closes }
}

const limits = { coalesceBytes: 1000, maxBufferedBytes: 10_000, maxCoalesced: 3 }

t.test('a lagging client gets the newest value of each bucket, in sequence order, once it drains', async (t) => {
  const { ws, sent } = fakeSocket()
  const out = new Outbox(ws as unknown as WebSocket, limits, () => t.fail('not too slow'), () => undefined)
  out.delta(1, 'a1', () => 'a')
  t.same(sent, ['a1'])
  ws.bufferedAmount = 5000
  out.delta(2, 'a2', () => 'a')
  out.delta(3, 'b3', () => 'b')
  out.delta(4, 'a4', () => 'a')
  t.same(sent, ['a1'], 'nothing more is queued while the client lags')
  t.equal(out.coalescing, 2)
  ws.bufferedAmount = 100
  await new Promise((r) => setTimeout(r, 120))
  t.same(sent, ['a1', 'b3', 'a4'], 'superseded a2 is dropped; the rest follow in order')
  out.delta(5, 'b5', () => 'b')
  t.same(sent.at(-1), 'b5', 'back to direct sends')
  out.dispose()
})

t.test('too many waiting values or too many unsent bytes close the client with 4008', async (t) => {
  const a = fakeSocket()
  let slow = 0
  const out = new Outbox(a.ws as unknown as WebSocket, limits, () => slow++, () => undefined)
  a.ws.bufferedAmount = 5000
  for (let i = 0; i < 5; i++) out.delta(i, `m${i}`, () => `k${i}`)
  t.same(a.closes, [4008])
  t.equal(slow, 1, 'reported once')
  t.equal(out.coalescing, 0, 'memory released')

  const b = fakeSocket()
  const out2 = new Outbox(b.ws as unknown as WebSocket, limits, () => slow++, () => undefined)
  b.ws.bufferedAmount = 20_000
  out2.send('snapshot')
  t.same(b.sent, [])
  t.same(b.closes, [4008])
})
