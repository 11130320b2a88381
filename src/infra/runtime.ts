import type pg from 'pg'
import type { Config } from '../config.js'
import { makeLogger, type Logger } from '../logger.js'
import { makeRedis, type Redis } from './redis.js'
import { makeDb, makePool, type Db } from './db.js'
import { makeKeys, type Keys } from './keys.js'
import { makeMetrics, type Metrics } from '../metrics.js'
import { pinLayoutSettings } from '../repositories/meta.repository.js'
import { ensureCheckpoints } from '../repositories/checkpoints.repository.js'

export interface Runtime {
  config: Config
  log: Logger
  redis: Redis
  pool: pg.Pool
  db: Db
  keys: Keys
  metrics: Metrics
  close(): Promise<void>
}

export interface RuntimeOptions {
  role: 'api' | 'worker'
  poolSize: number
  /** Ingest must answer 503 at once when Redis is away; workers would rather wait for it. */
  failFastRedis: boolean
  log?: Logger
}

export function openRuntime(config: Config, opts: RuntimeOptions): Runtime {
  const log = opts.log ?? makeLogger(config.logLevel, opts.role)
  const redis = makeRedis(config.redisUrl, { failFast: opts.failFastRedis }, `lantern-${opts.role}`)
  const pool = makePool(config.databaseUrl, opts.poolSize, `lantern-${opts.role}`)
  const db = makeDb(pool)
  return {
    config,
    log,
    redis,
    pool,
    db,
    keys: makeKeys(config.keyPrefix),
    metrics: makeMetrics(opts.role),
    async close() {
      redis.disconnect()
      await db.destroy()
    },
  }
}

/** Connects, then checks that this process agrees with the data on where things live. */
export async function startRuntime(rt: Runtime): Promise<void> {
  await rt.redis.connect()
  await pinLayoutSettings(rt.db, { partitions: String(rt.config.partitions), dayOffsetMin: String(rt.config.dayOffsetMin) })
  await ensureCheckpoints(rt.db, rt.config.partitions)
}
