/**
 * Configuration comes from environment variables only, is validated once at start-up and frozen.
 * Every setting is declared in SETTINGS so the README table and the validation share one source.
 */

type Parser<T> = (raw: string, name: string) => T

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const int = (min: number, max: number): Parser<number> => (raw, name) => {
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`)
  }
  return n
}

const url = (protocols: string[]): Parser<string> => (raw, name) => {
  let parsed: URL
  try {
    parsed = new URL(raw)
  } catch {
    throw new ConfigError(`${name} must be a URL, got "${raw}"`)
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use ${protocols.join(' or ')}, got "${parsed.protocol}"`)
  }
  return raw
}

const oneOf = <T extends string>(values: readonly T[]): Parser<T> => (raw, name) => {
  if (!(values as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name} must be one of ${values.join(', ')}, got "${raw}"`)
  }
  return raw as T
}

const keyPrefix: Parser<string> = (raw, name) => {
  if (!/^[a-zA-Z0-9_-]{1,40}$/.test(raw)) {
    throw new ConfigError(`${name} must be 1-40 letters, digits, '_' or '-', got "${raw}"`)
  }
  return raw
}

interface Setting<T> {
  env: string
  default: string
  doc: string
  parse: Parser<T>
}

const setting = <T>(env: string, def: string, parse: Parser<T>, doc: string): Setting<T> => ({
  env,
  default: def,
  parse,
  doc,
})

export const SETTINGS = {
  databaseUrl: setting('DATABASE_URL', 'postgres://postgres@127.0.0.1:5432/lantern', url(['postgres:', 'postgresql:']), 'PostgreSQL connection string'),
  redisUrl: setting('REDIS_URL', 'redis://127.0.0.1:6379', url(['redis:', 'rediss:']), 'Redis connection string (the log lives here until drained: run it with append-only persistence and noeviction)'),
  host: setting('HOST', '127.0.0.1', (raw) => raw, 'Address the API/hub listens on (0.0.0.0 in containers)'),
  port: setting('PORT', '8080', int(0, 65535), 'Port the API/hub listens on'),
  logLevel: setting('LOG_LEVEL', 'info', oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const), 'pino log level'),
  keyPrefix: setting('LANTERN_KEY_PREFIX', 'lantern', keyPrefix, 'Prefix of every Redis key and queue (one Redis can host several installs)'),
  partitions: setting('LANTERN_PARTITIONS', '8', int(1, 1024), 'Number of log partitions; fixed once data exists (the server refuses to start with another value)'),
  allowedLatenessSec: setting('LANTERN_ALLOWED_LATENESS_SEC', '3600', int(0, 400 * 86400), 'How far behind the partition watermark (newest event time seen) an event may be and still update its buckets; later events are counted per series as late'),
  dedupWindowSec: setting('LANTERN_DEDUP_WINDOW_SEC', '86400', int(1, 30 * 86400), 'How long an event id is remembered for idempotency (Redis memory grows with rate x window, about 100 bytes per id)'),
  maxBodyBytes: setting('LANTERN_MAX_BODY_BYTES', String(16 * 1024 * 1024), int(1024, 512 * 1024 * 1024), 'Largest ingest request body'),
  maxBatchEvents: setting('LANTERN_MAX_BATCH_EVENTS', '50000', int(1, 1_000_000), 'Most events in one ingest request'),
  maxDims: setting('LANTERN_MAX_DIMS', '16', int(0, 64), 'Most dimension keys on one event'),
  maxDimValueLength: setting('LANTERN_MAX_DIM_VALUE_LENGTH', '128', int(1, 1024), 'Longest dimension value'),
  maxFutureSec: setting('LANTERN_MAX_FUTURE_SEC', '900', int(0, 366 * 86400), 'How far ahead of the server clock an event time may be; later ones are refused (a wrong clock would otherwise push the watermark and make honest events late)'),
  logRetentionSec: setting('LANTERN_LOG_RETENTION_SEC', '3600', int(0, 30 * 86400), 'How long drained (and so archived) entries stay in the Redis log; older ones are trimmed, never an entry not yet archived'),
  logMaxEntries: setting('LANTERN_LOG_MAX_ENTRIES', '100000', int(0, 100_000_000), 'A partition log longer than this drops every archived entry at once, whatever their age (0: no length limit)'),
  drainBatchEvents: setting('LANTERN_DRAIN_BATCH_EVENTS', '20000', int(1, 1_000_000), 'Most events folded into one drain transaction'),
  drainLeaseMs: setting('LANTERN_DRAIN_LEASE_MS', '15000', int(1000, 3_600_000), 'How long a worker keeps draining one partition before handing it back to the queue (rebalances partitions across workers)'),
  drainPollMs: setting('LANTERN_DRAIN_POLL_MS', '20', int(1, 10_000), 'Pause between reads of an empty partition'),
  workerConcurrency: setting('LANTERN_WORKER_CONCURRENCY', '0', int(0, 1024), 'Partitions one worker process drains at once (0 = all partitions)'),
  liveTickMs: setting('LANTERN_LIVE_TICK_MS', '50', int(5, 10_000), 'How often the hub folds committed changes into topic deltas (coalescing window)'),
  liveHistory: setting('LANTERN_LIVE_HISTORY', '1000', int(10, 1_000_000), 'Deltas kept per topic for clients that resume from a sequence'),
  liveHeartbeatMs: setting('LANTERN_LIVE_HEARTBEAT_MS', '15000', int(1000, 600_000), 'Interval of hub heartbeats; a socket silent for two intervals is closed'),
  liveMaxTopicsPerSocket: setting('LANTERN_LIVE_MAX_TOPICS', '200', int(1, 100_000), 'Most topics one socket may subscribe to'),
  liveCoalesceBytes: setting('LANTERN_LIVE_COALESCE_BYTES', String(256 * 1024), int(0, 1024 * 1024 * 1024), 'Unsent bytes past which a socket gets only the newest value of each bucket instead of every delta'),
  liveMaxBufferedBytes: setting('LANTERN_LIVE_MAX_BUFFERED_BYTES', String(4 * 1024 * 1024), int(1024, 1024 * 1024 * 1024), 'Unsent bytes a socket may hold before it is closed as too slow (close code 4008)'),
  liveMaxCoalesced: setting('LANTERN_LIVE_MAX_COALESCED', '10000', int(1, 10_000_000), 'Distinct values a lagging socket may have waiting before it is closed as too slow (close code 4008)'),
  alertStreamMaxLen: setting('LANTERN_ALERT_STREAM_MAXLEN', '100000', int(100, 100_000_000), 'Alert changes kept on the Redis alert stream for consumer groups (approximate trim)'),
  webhookMaxAttempts: setting('LANTERN_WEBHOOK_MAX_ATTEMPTS', '8', int(1, 100), 'Tries per webhook delivery before it goes to the dead-letter list'),
  webhookBackoffMs: setting('LANTERN_WEBHOOK_BACKOFF_MS', '1000', int(1, 3_600_000), 'First retry delay of a failed webhook delivery; doubles on every further try'),
  webhookTimeoutMs: setting('LANTERN_WEBHOOK_TIMEOUT_MS', '5000', int(100, 120_000), 'How long a webhook receiver may take to answer before the try counts as failed'),
  sourceSilentSec: setting('LANTERN_SOURCE_SILENT_SEC', '300', int(10, 30 * 86400), 'A source with nothing accepted for this long shows as silent in /v1/sources (silence rules set their own duration)'),
  dayOffsetMin: setting('LANTERN_DAY_OFFSET_MIN', '0', int(-720, 840), 'Minutes east of UTC where 1d buckets start (420 = UTC+7 midnight); fixed once data exists'),
} as const

type Settings = typeof SETTINGS
export type Config = Readonly<{ [K in keyof Settings]: ReturnType<Settings[K]['parse']> }>

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const errors: string[] = []
  const out: Record<string, unknown> = {}
  for (const [key, s] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    const raw = env[s.env]
    try {
      out[key] = s.parse(raw === undefined || raw === '' ? s.default : raw, s.env)
    } catch (err) {
      errors.push((err as Error).message)
    }
  }
  if (errors.length > 0) throw new ConfigError(`invalid configuration:\n  ${errors.join('\n  ')}`)
  return Object.freeze(out) as Config
}
