import {
  DeltaMessage,
  ErrorMessage,
  HelloMessage,
  PingMessage,
  PongMessage,
  ResetMessage,
  SnapshotMessage,
  SubscribedMessage,
  SubscribeMessage,
  UnsubscribedMessage,
  UnsubscribeMessage,
  CLOSE,
  PROTOCOL_VERSION,
} from './protocol.js'

const message = (name: string, summary: string, payload: unknown) => ({ name, summary, contentType: 'application/json', payload })

/**
 * The AsyncAPI 3.0 description of the live socket, built from the same TypeBox schemas the hub
 * validates client messages with, so the document cannot drift from the protocol.
 */
export function asyncApiDocument(version: string) {
  const fromClient = {
    subscribe: message('subscribe', 'Watch a topic; `since` resumes after a reconnect', SubscribeMessage),
    unsubscribe: message('unsubscribe', 'Stop watching a topic', UnsubscribeMessage),
    clientPing: message('ping', 'Heartbeat; answered with pong', PingMessage),
    clientPong: message('pong', 'Answer to the hub heartbeat', PongMessage),
  }
  const fromServer = {
    hello: message('hello', 'Sent when the socket opens', HelloMessage),
    subscribed: message('subscribed', 'The topic id of a subscription', SubscribedMessage),
    unsubscribed: message('unsubscribed', 'Confirms an unsubscribe', UnsubscribedMessage),
    snapshot: message('snapshot', 'The current state of a topic', SnapshotMessage),
    delta: message('delta', 'A change, with the topic sequence number', DeltaMessage),
    reset: message('reset', 'The gap cannot be replayed; a snapshot follows', ResetMessage),
    error: message('error', 'A message was refused', ErrorMessage),
    serverPing: message('ping', 'Hub heartbeat; answer with pong', PingMessage),
    serverPong: message('pong', 'Answer to a client ping', PongMessage),
  }
  const refs = (names: string[]) => names.map((n) => ({ $ref: `#/channels/live/messages/${n}` }))
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Lantern live socket',
      version,
      description: [
        `Protocol ${PROTOCOL_VERSION}. One WebSocket, many topics: subscribe, get a snapshot, then every delta with a per-topic sequence.`,
        'Reconnect with `since` = the last sequence seen to get exactly the missed deltas, or a reset and a fresh snapshot.',
        `Close codes: ${CLOSE.GOING_AWAY} server shutting down, ${CLOSE.POLICY_VIOLATION} too many messages waiting, ${CLOSE.HEARTBEAT_TIMEOUT} no heartbeat, ${CLOSE.TOO_SLOW} client not reading fast enough.`,
      ].join(' '),
    },
    channels: { live: { address: '/v1/live', messages: { ...fromClient, ...fromServer } } },
    operations: {
      send: { action: 'send', channel: { $ref: '#/channels/live' }, messages: refs(Object.keys(fromClient)) },
      receive: { action: 'receive', channel: { $ref: '#/channels/live' }, messages: refs(Object.keys(fromServer)) },
    },
  }
}
