import { hostname } from 'node:os'
import { randomBytes } from 'node:crypto'
import type { Runtime } from '../../infra/runtime.js'
import type { Redis } from '../../infra/redis.js'
import { makeMetricValidator } from '../../ingest/validate-events.js'
import { compileMapping, MappingError } from './mapping.js'
import { MqttConnector, DEFAULT_TUNING, type AppendFn, type ConnectorTuning } from './connector.js'
import { mqttKeys, type MqttKeys } from './status.js'
import { listSubscriptions, type MqttSubscription } from './subscriptions.js'

export interface SupervisorOptions {
  /** How often subscriptions are re-read and owner locks renewed (a change notice on Redis triggers a re-read at once). */
  pollMs: number
  /** Owner lock TTL: a worker that stops renewing loses its subscriptions to another one after this long. */
  lockTtlMs: number
  tuning: ConnectorTuning
}

export const DEFAULT_SUPERVISOR: SupervisorOptions = { pollMs: 2000, lockTtlMs: 15_000, tuning: DEFAULT_TUNING }

/** Renews the lock only while this worker still holds it. */
const RENEW_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 else return 0 end`
const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`

interface Running {
  connector: MqttConnector
  updatedAt: string
}

/**
 * Runs the connectors of the enabled subscriptions that this worker owns. Ownership is a Redis
 * lock per subscription (SET NX PX, renewed every poll, released on stop), so any number of worker
 * processes can run and each subscription has exactly one connector: a worker takes a subscription
 * when its lock is free, and another takes over within the lock TTL after an owner dies. (The
 * broker enforces the same on its side: a second connection with the same client id ends the first.)
 * A changed subscription is restarted; a disabled one stops and keeps its broker session (QoS 1
 * messages queue at the broker within its limits); a deleted one unsubscribes and ends its session.
 */
export class MqttSupervisor {
  readonly owner = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
  private readonly keys: MqttKeys
  private readonly running = new Map<string, Running>()
  private timer: NodeJS.Timeout | null = null
  private ticking: Promise<void> | null = null
  private again = false
  private closed = false
  private readonly brokenMappings = new Map<string, string>()

  constructor(
    private readonly rt: Runtime,
    private readonly append: AppendFn,
    private readonly opts: SupervisorOptions,
  ) {
    this.keys = mqttKeys(rt.config.keyPrefix)
  }

  start(): void {
    this.tick()
    this.timer = setInterval(() => this.tick(), this.opts.pollMs)
  }

  /** Re-reads the subscriptions now (after a change notice); ticks never overlap. */
  tick(): void {
    if (this.closed) return
    if (this.ticking) {
      this.again = true
      return
    }
    this.ticking = this.reconcile()
      .catch((err: unknown) => this.rt.log.warn({ err: (err as Error).message }, 'mqtt supervisor: could not reconcile subscriptions; retrying at the next poll'))
      .finally(() => {
        this.ticking = null
        if (this.again) {
          this.again = false
          this.tick()
        }
      })
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    await this.ticking
    await Promise.all([...this.running.keys()].map((id) => this.stopOne(id, { forget: false })))
  }

  /** Connectors this worker runs now (for tests and the bench). */
  runningIds(): string[] {
    return [...this.running.keys()]
  }

  private async reconcile(): Promise<void> {
    const subs = await listSubscriptions(this.rt.db)
    const byId = new Map(subs.map((s) => [s.id, s]))
    for (const [id, r] of this.running) {
      const s = byId.get(id)
      if (!s) await this.stopOne(id, { forget: true })
      else if (!s.enabled) await this.stopOne(id, { forget: false })
      else if (s.updatedAt !== r.updatedAt) {
        this.rt.log.info({ subscription: id }, 'mqtt subscription changed; restarting its connector')
        await this.stopOne(id, { forget: false }, { keepLock: true })
      }
    }
    for (const s of subs) {
      if (this.closed) return
      if (!s.enabled) continue
      const lock = this.keys.owner(s.id)
      // Renewing succeeds only while the lock is ours (a running connector, or one kept across its restart).
      const mine = (await this.rt.redis.eval(RENEW_LUA, 1, lock, this.owner, this.opts.lockTtlMs)) === 1
      if (!mine && this.running.has(s.id)) {
        this.rt.log.warn({ subscription: s.id }, 'mqtt supervisor lost the owner lock; stopping its connector')
        await this.stopOne(s.id, { forget: false }, { keepLock: true })
        continue
      }
      if (!mine && (await this.rt.redis.set(lock, this.owner, 'PX', this.opts.lockTtlMs, 'NX')) !== 'OK') continue
      if (!this.running.has(s.id)) this.startOne(s)
      await this.rt.redis.hset(this.keys.status(s.id), { owner: this.owner, heartbeatAt: String(Date.now()) })
    }
    if (subs.length === 0) this.brokenMappings.clear()
  }

  private startOne(s: MqttSubscription): void {
    let compiled
    try {
      compiled = compileMapping(s.mapping, s.topics, { maxDims: this.rt.config.maxDims })
    } catch (err) {
      // The API validates mappings, so this means a stored one no longer fits the configuration (e.g. LANTERN_MAX_DIMS lowered).
      if (!(err instanceof MappingError)) throw err
      if (this.brokenMappings.get(s.id) !== s.updatedAt) {
        this.brokenMappings.set(s.id, s.updatedAt)
        this.rt.log.error({ subscription: s.id, err: err.message }, 'mqtt subscription has a mapping that no longer validates; not started')
        void this.rt.redis.hset(this.keys.status(s.id), { lastError: `mapping: ${err.message}`.slice(0, 500), lastErrorAt: String(Date.now()) })
      }
      return
    }
    const limits = { maxDims: this.rt.config.maxDims, maxDimValueLength: this.rt.config.maxDimValueLength, maxFutureMs: this.rt.config.maxFutureSec * 1000 }
    const connector = new MqttConnector(s, compiled, {
      log: this.rt.log,
      redis: this.rt.redis,
      keys: this.keys,
      owner: this.owner,
      append: this.append,
      validate: makeMetricValidator(limits),
      tuning: this.opts.tuning,
      onBatch: (c) => {
        if (c.accepted > 0) this.rt.metrics.eventsAccepted.inc({ kind: 'mqtt' }, c.accepted)
        if (c.duplicates > 0) this.rt.metrics.eventsDuplicate.inc({ kind: 'mqtt' }, c.duplicates)
        if (c.rejected > 0) this.rt.metrics.eventsRejected.inc({ kind: 'mqtt', reason: 'invalid' }, c.rejected)
      },
    })
    this.running.set(s.id, { connector, updatedAt: s.updatedAt })
    this.rt.log.info({ subscription: s.id, name: s.name, topics: s.topics, owner: this.owner }, 'mqtt connector started')
    connector.start()
  }

  private async stopOne(id: string, how: { forget: boolean }, opts: { keepLock?: boolean } = {}): Promise<void> {
    const r = this.running.get(id)
    if (!r) return
    this.running.delete(id)
    await r.connector.stop(how).catch((err: unknown) => this.rt.log.warn({ subscription: id, err: (err as Error).message }, 'mqtt connector did not stop cleanly'))
    if (how.forget) await this.rt.redis.del(this.keys.status(id)).catch(() => undefined)
    if (!opts.keepLock) await (this.rt.redis as Redis).eval(RELEASE_LUA, 1, this.keys.owner(id), this.owner).catch(() => undefined)
    this.rt.log.info({ subscription: id, forget: how.forget }, 'mqtt connector stopped')
  }
}
