import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { loadConfig, type Config } from '../../src/config.js'
import { openRuntime, startRuntime, type Runtime } from '../../src/infra/runtime.js'
import { makeDb, makePool } from '../../src/infra/db.js'
import { migrateToLatest } from '../../src/infra/migrate.js'
import { makeLogger } from '../../src/logger.js'

export interface TestEnv {
  env: NodeJS.ProcessEnv
  config: Config
  databaseUrl: string
  prefix: string
}

const base = (): URL => new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/lantern')

/**
 * A database of its own (name always contains "test") and a key prefix of its own, migrated the
 * way production is. Destructive clean-up refuses any database whose name lacks "test".
 */
export async function createTestEnv(overrides: Record<string, string> = {}): Promise<TestEnv & { destroy(): Promise<void> }> {
  const tag = randomBytes(4).toString('hex')
  const dbName = `lantern_test_${tag}`
  const admin = new pg.Client({ connectionString: withDb(base(), 'postgres') })
  await admin.connect()
  await admin.query(`CREATE DATABASE "${dbName}"`)
  await admin.end()
  const databaseUrl = withDb(base(), dbName)
  const migrationDb = makeDb(makePool(databaseUrl, 1, 'lantern-test-migrate'))
  await migrateToLatest(migrationDb)
  await migrationDb.destroy()
  const prefix = `lantern-test-${tag}`
  const env = { ...process.env, DATABASE_URL: databaseUrl, LANTERN_KEY_PREFIX: prefix, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent', ...overrides }
  const config = loadConfig(env)
  return {
    env,
    config,
    databaseUrl,
    prefix,
    async destroy() {
      await dropKeys(config.redisUrl, prefix)
      await dropDatabase(dbName)
    },
  }
}

export async function openTestRuntime(te: TestEnv, role: 'api' | 'worker' = 'api'): Promise<Runtime> {
  const rt = openRuntime(te.config, { role, poolSize: 5, failFastRedis: role === 'api', log: makeLogger(te.config.logLevel, role) })
  await startRuntime(rt)
  return rt
}

function withDb(url: URL, name: string): string {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

async function dropDatabase(name: string): Promise<void> {
  if (!name.includes('test')) throw new Error(`refusing to drop ${name}: not a test database`)
  const admin = new pg.Client({ connectionString: withDb(base(), 'postgres') })
  await admin.connect()
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
  await admin.end()
}

async function dropKeys(redisUrl: string, prefix: string): Promise<void> {
  if (!prefix.includes('test')) throw new Error(`refusing to delete keys of ${prefix}: not a test prefix`)
  const { Redis } = await import('ioredis')
  const redis = new Redis(redisUrl)
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    if (keys.length > 0) await redis.unlink(...keys)
    cursor = next
  } while (cursor !== '0')
  redis.disconnect()
}

export interface TestApp {
  te: TestEnv
  api: Runtime
  worker: Runtime
  app: import('fastify').FastifyInstance
  hub: import('../../src/live/hub.js').Hub
  /** The live socket URL when started with `listen`, '' otherwise. */
  wsUrl: string
}

/**
 * A whole system for one test: its own database and key prefix, an API/hub runtime with the app
 * built on it (listening on a free loopback port when `listen`), and a worker runtime for
 * drainers. Everything is torn down with the test.
 */
export async function startTestApp(
  t: { teardown(fn: () => unknown): void },
  overrides: Record<string, string> = {},
  opts: { listen?: boolean } = {},
): Promise<TestApp> {
  const { buildApp } = await import('../../src/app.js')
  const te = await createTestEnv(overrides)
  const api = await openTestRuntime(te, 'api')
  const worker = await openTestRuntime(te, 'worker')
  const { app, hub } = await buildApp(api)
  let wsUrl = ''
  if (opts.listen) {
    await app.listen({ host: '127.0.0.1', port: 0 })
    const address = app.server.address()
    wsUrl = `ws://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/v1/live`
  } else {
    await app.ready()
  }
  t.teardown(async () => {
    await app.close()
    await api.close()
    await worker.close()
    await te.destroy()
  })
  return { te, api, worker, app, hub, wsUrl }
}
