import { Redis, type RedisOptions, type Result } from 'ioredis'

export type { Redis }

/**
 * Appends one partition's share of a batch of one kind of event. Atomic: each event's idempotency key is set and the
 * survivors are written as one log entry, or nothing happens. A duplicate inside the same batch is
 * caught too, since the first SET wins. The entry holds the events as NDJSON (JSON text never
 * contains a raw newline), so each event keeps its exact bytes for the archive's hash chain.
 * Returns {entryId or false, 1-based indexes of duplicates}.
 */
const APPEND_LUA = `
local kept = {}
local dups = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    kept[#kept + 1] = ARGV[i + 2]
  else
    dups[#dups + 1] = i - 1
  end
end
local id = false
if #kept > 0 then
  id = redis.call('XADD', KEYS[1], '*', 'n', #kept, 'at', ARGV[2], 'k', ARGV[3], 'e', table.concat(kept, '\\n'))
end
return {id, dups}
`

/**
 * Appends one partition's share of one chunk of a history import to the partition's import lane.
 * Like APPEND_LUA (idempotency keys shared with live ingest, one entry, all or nothing), plus a
 * per-job mark of the last chunk appended: a chunk at or below the mark is already in and is
 * skipped whole, so an importer killed anywhere and started again never appends a chunk twice,
 * however long ago the idempotency keys expired. The job's event and duplicate counts and its
 * last entry id are kept beside the mark, in the same atomic step.
 * KEYS: import stream, job hash, idempotency key per event. ARGV: ttl, arrivedAt, kind, job id,
 * chunk number, then the events. Returns {entryId or false, duplicates}, or {false, -1} when the
 * chunk was already appended.
 */
const IMPORT_APPEND_LUA = `
local job = ARGV[4]
local chunk = tonumber(ARGV[5])
local mark = tonumber(redis.call('HGET', KEYS[2], job .. ':mark') or '-1')
if chunk <= mark then return {false, -1} end
local kept = {}
local dups = 0
for i = 3, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    kept[#kept + 1] = ARGV[i + 3]
  else
    dups = dups + 1
  end
end
local id = false
if #kept > 0 then
  id = redis.call('XADD', KEYS[1], '*', 'n', #kept, 'at', ARGV[2], 'k', ARGV[3], 'j', job, 'e', table.concat(kept, '\\n'))
  redis.call('HSET', KEYS[2], job .. ':last', id)
end
redis.call('HSET', KEYS[2], job .. ':mark', chunk)
redis.call('HINCRBY', KEYS[2], job .. ':events', #kept)
redis.call('HINCRBY', KEYS[2], job .. ':dups', dups)
return {id, dups}
`

/**
 * Publishes a topic delta only if it is newer than the last one published for the same bucket:
 * several hub processes may compute the same change, and a slower computation from an older
 * snapshot must never overwrite a newer value. Newer means a larger version sum (every stored
 * bucket row only ever increments its version). Assigns the next sequence, keeps a bounded
 * history whose entry ids are the sequence numbers, and publishes the message (a JSON object, to
 * which the sequence is prepended). Returns the sequence, or 0 when the delta was not newer.
 */
const PUBLISH_DELTA_LUA = `
local last = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '-1')
local version = tonumber(ARGV[2])
if version <= last then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
local seq = redis.call('INCR', KEYS[1])
local msg = '{"seq":' .. seq .. ',' .. string.sub(ARGV[3], 2)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'm', msg)
redis.call('PUBLISH', KEYS[4], msg)
if redis.call('HLEN', KEYS[3]) > tonumber(ARGV[5]) then
  local fields = redis.call('HKEYS', KEYS[3])
  table.sort(fields, function(a, b) return tonumber(a) < tonumber(b) end)
  for i = 1, #fields - tonumber(ARGV[5]) do redis.call('HDEL', KEYS[3], fields[i]) end
end
return seq
`

/**
 * Appends alert changes to the alert stream, each at most once: an event's marker is SET NX first
 * and only the one call that sets it adds the entry, so two dispatchers (or a redo after a crash)
 * never add one change twice. Markers share the stream's {alerts} hash tag (one slot for Cluster).
 * KEYS: stream, marker per event. ARGV: ttl, maxlen, then per event: id, series, status, event JSON.
 * Returns how many entries were added.
 */
const ALERT_STREAM_LUA = `
local added = 0
for i = 2, #KEYS do
  local a = 3 + (i - 2) * 4
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'id', ARGV[a], 'series', ARGV[a + 1], 'status', ARGV[a + 2], 'event', ARGV[a + 3])
    added = added + 1
  end
end
return added
`

declare module 'ioredis' {
  interface RedisCommander<Context> {
    lanternAlertStream(numKeys: number, ...args: (string | number)[]): Result<number, Context>
    lanternAppend(numKeys: number, ...args: (string | number)[]): Result<[string | null, number[]], Context>
    lanternImportAppend(numKeys: number, ...args: (string | number)[]): Result<[string | null, number], Context>
    lanternPublishDelta(
      seqKey: string,
      historyKey: string,
      versionsKey: string,
      channel: string,
      bucketStart: string,
      version: number,
      message: string,
      historyLength: number,
      versionsKept: number,
    ): Result<number, Context>
  }
}

export interface RedisRole {
  /** Fail fast when Redis is away (ingest answers 503) instead of queueing commands in memory. */
  failFast: boolean
}

export function makeRedis(url: string, role: RedisRole, name: string): Redis {
  const options: RedisOptions = {
    connectionName: name,
    lazyConnect: true,
    enableOfflineQueue: !role.failFast,
    maxRetriesPerRequest: role.failFast ? 1 : null,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  }
  const redis = new Redis(url, options)
  redis.defineCommand('lanternAppend', { lua: APPEND_LUA })
  redis.defineCommand('lanternImportAppend', { lua: IMPORT_APPEND_LUA })
  redis.defineCommand('lanternPublishDelta', { numberOfKeys: 4, lua: PUBLISH_DELTA_LUA })
  redis.defineCommand('lanternAlertStream', { lua: ALERT_STREAM_LUA })
  // ioredis emits 'error' on every failed reconnect; callers observe state through commands.
  redis.on('error', () => undefined)
  return redis
}
