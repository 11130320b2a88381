/**
 * The fan-out bench's reference peer: a plain Socket.IO broadcast server and nothing else. A client
 * joins the room named in its handshake query (`?room=r3`); a `publish` event (room, payload) from
 * any client is re-broadcast unchanged to that room as `delta`. No state, no computation, no
 * backpressure policy (Socket.IO buffers for a slow client without bound).
 *
 * Run by scripts/bench/fanout.ts as a child with an IPC channel: it reports its port there, and
 * exits when the channel closes (the bench died) or on SIGTERM.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Server } from 'socket.io'

const server = http.createServer()
const io = new Server(server, { transports: ['websocket'], serveClient: false, perMessageDeflate: false, httpCompression: false })

io.on('connection', (socket) => {
  const room = socket.handshake.query.room
  if (typeof room === 'string' && room !== '') void socket.join(room)
  socket.on('publish', (target: unknown, payload: unknown) => {
    if (typeof target === 'string') io.to(target).emit('delta', payload)
  })
})

function stop(): void {
  io.close()
  process.exit(0)
}

process.on('SIGTERM', stop)
process.on('disconnect', stop)

server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  const { port } = server.address() as AddressInfo
  process.send?.({ port })
})
