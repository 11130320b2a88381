import type { Runtime } from '../src/infra/runtime.js'
import { makeRedis, type Redis } from '../src/infra/redis.js'
import { appendEvents } from '../src/ingest/append-log.js'
import { EVENT_KINDS } from '../src/schemas/log-entry.js'
import { seriesKey } from '../src/domain/series-key.js'
import { MqttSupervisor, DEFAULT_SUPERVISOR, type SupervisorOptions } from '../src/connectors/mqtt/supervisor.js'
import { mqttKeys } from '../src/connectors/mqtt/status.js'
import type { AppendFn } from '../src/connectors/mqtt/connector.js'

export interface MqttWorkerOptions extends Partial<SupervisorOptions> {
  /**
   * The Redis the events are appended to. Default: a connection of its own to REDIS_URL that fails
   * fast (no offline queue), so an unreachable log fails the batch at once and the broker keeps
   * the messages, instead of them piling up in this process.
   */
  logRedis?: Redis
  /** Wraps the append (tests use it to fail after the events are in the log, as a crash before the PUBACK would). */
  wrapAppend?: (append: AppendFn) => AppendFn
}

/**
 * MQTT connectors in a worker process: a supervisor that runs the subscriptions this process owns
 * (see MqttSupervisor), re-reading them every poll and at once on a change notice from the API.
 */
export function startMqttConnectors(rt: Runtime, opts: MqttWorkerOptions = {}): { close(): Promise<void>; supervisor: MqttSupervisor } {
  const { config, keys, log } = rt
  const ownLogRedis = opts.logRedis === undefined
  const logRedis = opts.logRedis ?? makeRedis(config.redisUrl, { failFast: true }, 'lantern-worker-mqtt')
  if (ownLogRedis) logRedis.connect().catch((err: Error) => log.warn({ err: err.message }, 'mqtt log connection: first connect failed; it keeps retrying'))
  const toLog: AppendFn = (events, arrivedAt) =>
    appendEvents(logRedis, keys, config.partitions, config.dedupWindowSec, EVENT_KINDS.metric, events, (e) => seriesKey(e.metric, e.dims), arrivedAt)
  const append = opts.wrapAppend ? opts.wrapAppend(toLog) : toLog

  const supervisor = new MqttSupervisor(rt, append, { ...DEFAULT_SUPERVISOR, ...stripUndefined(opts) })
  // Change notices from the API: a subscription created, updated or deleted is picked up at once.
  const notices = rt.redis.duplicate({ connectionName: 'lantern-worker-mqtt-notices', enableOfflineQueue: true, maxRetriesPerRequest: null })
  notices.on('error', () => undefined)
  notices.on('message', () => supervisor.tick())
  notices.subscribe(mqttKeys(config.keyPrefix).changed).catch((err: Error) => log.warn({ err: err.message }, 'mqtt change notices unavailable; polling only'))
  supervisor.start()
  return {
    supervisor,
    async close() {
      notices.disconnect()
      await supervisor.close()
      if (ownLogRedis) logRedis.disconnect()
    },
  }
}

function stripUndefined(o: MqttWorkerOptions): Partial<SupervisorOptions> {
  const out: Partial<SupervisorOptions> = {}
  if (o.pollMs !== undefined) out.pollMs = o.pollMs
  if (o.lockTtlMs !== undefined) out.lockTtlMs = o.lockTtlMs
  if (o.tuning !== undefined) out.tuning = o.tuning
  return out
}
