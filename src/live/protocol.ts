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

const Bucket = Type.Object(
  {
    v: Type.Optional(Type.Integer({ description: 'version: keep, per bucket start (and group), the value with the highest v' })),
    group: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'wildcard topics: the values of the "*" dims' })),
    start: Type.String(),
    end: Type.String(),
    series: Type.Integer(),
    count: Type.Integer(),
    sum: Type.Number(),
    min: Type.Union([Type.Number(), Type.Null()]),
    max: Type.Union([Type.Number(), Type.Null()]),
    mean: Type.Union([Type.Number(), Type.Null()]),
    stddev: Type.Union([Type.Number(), Type.Null()]),
    p50: Type.Union([Type.Number(), Type.Null()]),
    p95: Type.Union([Type.Number(), Type.Null()]),
    p99: Type.Union([Type.Number(), Type.Null()]),
    last: Type.Union([Type.Number(), Type.Null()]),
    lastTs: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'LiveBucket' },
)
export type LiveBucket = Static<typeof Bucket>

/** The value of a non-aggregate topic, as the matching REST endpoint returns it. */
const TopicValue = {
  kpis: Type.Optional(Type.Unknown({ description: 'kpi topics: the figures of GET /v1/kpis' })),
  agencies: Type.Optional(Type.Unknown({ description: 'ranking topics: as GET /v1/kpis/ranking' })),
  targets: Type.Optional(Type.Unknown({ description: 'the targets topic: as GET /v1/targets' })),
}

export const HelloMessage = Type.Object({ type: Type.Literal('hello'), protocol: Type.Integer(), heartbeatMs: Type.Integer() }, { description: 'sent once the socket opens' })
export const SubscribedMessage = Type.Object({ type: Type.Literal('subscribed'), id: Type.Optional(Type.String()), topic: Type.String({ description: 'the topic id' }), spec: Type.Unknown() })
export const UnsubscribedMessage = Type.Object({ type: Type.Literal('unsubscribed'), id: Type.Optional(Type.String()), topic: Type.String() })
export const SnapshotMessage = Type.Object(
  {
    type: Type.Literal('snapshot'),
    topic: Type.String(),
    seq: Type.Integer({ description: 'the topic sequence the snapshot is current at; deltas follow from seq + 1' }),
    v: Type.Optional(Type.Integer()),
    buckets: Type.Optional(Type.Array(Bucket, { description: 'aggregate topics: the newest buckets' })),
    crosschecks: Type.Optional(Type.Unknown({ description: 'the discrepancies topic: recent cross-checks with discrepancies' })),
    events: Type.Optional(Type.Array(Type.Unknown(), { description: 'anomalies and alerts topics: the newest events, oldest first' })),
    open: Type.Optional(Type.Array(Type.Unknown(), { description: 'the alerts topic: alerts now pending or firing' })),
    ...TopicValue,
  },
  { description: 'the current state of a topic; replaces anything the client held for it' },
)
export const DeltaMessage = Type.Object(
  {
    seq: Type.Integer({ description: 'grows by one per topic change; a lagging client may skip superseded values' }),
    type: Type.Literal('delta'),
    topic: Type.String(),
    v: Type.Integer(),
    group: Type.Optional(Type.Record(Type.String(), Type.String())),
    bucket: Type.Optional(Bucket),
    crosscheck: Type.Optional(Type.Unknown({ description: 'the discrepancies topic: one new cross-check (an event, to append)' })),
    event: Type.Optional(Type.Unknown({ description: 'anomalies topic: one flag; alerts topic: one alert state change (an event, to append)' })),
    ...TopicValue,
  },
  { description: 'a new absolute value: one bucket, or the whole value of a single-valued topic' },
)
export const ResetMessage = Type.Object(
  { type: Type.Literal('reset'), topic: Type.String(), reason: Type.String() },
  { description: 'the missed deltas cannot be replayed; drop the topic state, a snapshot follows' },
)
export const ErrorMessage = Type.Object({ type: Type.Literal('error'), id: Type.Optional(Type.String()), code: Type.String(), message: Type.String() })

export const ServerMessage = Type.Union([HelloMessage, SubscribedMessage, UnsubscribedMessage, SnapshotMessage, DeltaMessage, ResetMessage, ErrorMessage, PingMessage, PongMessage])
export type ServerMessage = Static<typeof ServerMessage>
export type SnapshotMessage = Static<typeof SnapshotMessage>
export type DeltaMessage = Static<typeof DeltaMessage>

/** Close codes the hub uses (4000-4999 are application codes). */
export const CLOSE = {
  GOING_AWAY: 1001,
  POLICY_VIOLATION: 1008,
  HEARTBEAT_TIMEOUT: 4001,
  TOO_SLOW: 4008,
} as const
