import { Type, type Static } from '@sinclair/typebox'
import { TopicSpec } from './topic.js'

/**
 * The live socket protocol, version 1. Every message is one JSON object with a `type`. Unknown
 * fields are ignored by both sides, so later versions can add fields without breaking clients.
 */
export const PROTOCOL_VERSION = 1

export const SubscribeMessage = Type.Object({
  type: Type.Literal('subscribe'),
  id: Type.Optional(Type.String({ maxLength: 64, description: 'echoed in the reply' })),
  topic: TopicSpec,
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'last sequence seen; the hub replays what came after, or resets' })),
  buckets: Type.Optional(Type.Integer({ minimum: 1, maximum: 1440, default: 60, description: 'aggregate topics: buckets in the snapshot' })),
})

export const UnsubscribeMessage = Type.Object({ type: Type.Literal('unsubscribe'), id: Type.Optional(Type.String({ maxLength: 64 })), topic: Type.String({ maxLength: 64 }) })
export const PingMessage = Type.Object({ type: Type.Literal('ping'), ts: Type.Optional(Type.Number()) })
export const PongMessage = Type.Object({ type: Type.Literal('pong'), ts: Type.Optional(Type.Number()) })

export const ClientMessage = Type.Union([SubscribeMessage, UnsubscribeMessage, PingMessage, PongMessage])
export type ClientMessage = Static<typeof ClientMessage>
export type SubscribeMessage = Static<typeof SubscribeMessage>

/** Close codes the hub uses (4000-4999 are application codes). */
export const CLOSE = {
  GOING_AWAY: 1001,
  HEARTBEAT_TIMEOUT: 4001,
  TOO_SLOW: 4008,
} as const
