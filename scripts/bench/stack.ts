import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import pg from 'pg'
import { Child, type ChildExit, type ChildLog } from './children.js'
import type { CpuTarget } from './cpu.js'
import { errorMessage, say, waitUntil } from './util.js'

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url))
const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/lantern'
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'
const DEFAULT_PARTITIONS = 8
const LOOPBACK = new Set(['127.0.0.1', 'localhost'])
/** Clean-up drops and deletes only what matches these, whatever happens to the names in between. */
const BENCH_DB = /^lantern_bench_[0-9a-f]{8}(_rebuild)?$/
const BENCH_PREFIX = /^lantern-bench-[0-9a-f]{8}(-rebuild)?$/
const STOP_GRACE_MS = 10_000

export interface StackOptions {
  workers: number
  partitions: number | undefined
}

export interface CleanupReport {
  database: string
  databaseDropped: boolean
  keyPrefix: string
  keysDeleted: number
  keysLeft: number
  problems: string[]
}

export interface ProcessReport {
  name: string
  pid: number | undefined
  exit: ChildExit | null
  log: ChildLog
}

interface Services {
  stop(): Promise<void>
}

interface ServicesModule {
  ensureServices(opts: { databaseUrl: string; redisUrl: string; log?: (msg: string) => void }): Promise<Services>
}

/**
 * The system under test, fresh for one scenario: its own database and key prefix on the local
 * Postgres and Redis, migrated, with one API process and N workers. teardown() stops the
 * processes and removes every trace of the run.
 */
export class Stack {
  readonly tag = randomBytes(4).toString('hex')
  readonly dbName = `lantern_bench_${this.tag}`
  readonly prefix = `lantern-bench-${this.tag}`
  readonly databaseUrl: string
  readonly redisUrl: string
  readonly partitions: number
  port = 0
  api: Child | undefined
  readonly workers: Child[] = []
  private services: Services | undefined
  private crash: Promise<never> = new Promise<never>(() => undefined)
  private tearingDown: Promise<CleanupReport> | undefined
  /** Extra databases and key prefixes a scenario made next to the main ones; clean-up removes them too. */
  private readonly sides = new Map<string, { url: string; name: string; prefix: string }>()

  /** Nothing is created until setUp(); teardown() is safe after a setUp() that failed half-way. */
  constructor(private readonly opts: StackOptions) {
    const base = loopbackUrl(process.env.DATABASE_URL || DEFAULT_DATABASE_URL, 'DATABASE_URL')
    base.pathname = `/${this.dbName}`
    this.databaseUrl = base.toString()
    this.redisUrl = loopbackUrl(process.env.REDIS_URL || DEFAULT_REDIS_URL, 'REDIS_URL').toString()
    this.partitions = opts.partitions ?? (Number(process.env.LANTERN_PARTITIONS) || DEFAULT_PARTITIONS)
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get children(): Child[] {
    return this.api ? [this.api, ...this.workers] : [...this.workers]
  }

  /** Rejects as soon as a server process exits without being asked to; race it against each phase. */
  crashed(): Promise<never> {
    return this.crash
  }

  /** Everything that shares the machine during a run, for the CPU figures. */
  cpuTargets(): CpuTarget[] {
    return [
      ...this.children.map((c) => ({ name: c.name, pids: c.pid === undefined ? [] : [c.pid] })),
      { name: 'redis', comm: 'redis-server' },
      { name: 'postgres', comm: 'postgres' },
      { name: 'bench', pids: [process.pid] },
    ]
  }

  processReports(): ProcessReport[] {
    return this.children.map((c) => ({ name: c.name, pid: c.pid, exit: c.running ? null : { code: c.proc.exitCode, signal: c.proc.signalCode }, log: c.log }))
  }

  /**
   * A second empty database on the same server, `<dbName>_<suffix>`, with its own key prefix
   * `<prefix>-<suffix>`; dropSide() (or teardown()) removes both.
   */
  async createSide(suffix: 'rebuild'): Promise<{ url: string; name: string; prefix: string }> {
    const name = `${this.dbName}_${suffix}`
    const url = new URL(this.databaseUrl)
    url.pathname = `/${name}`
    const side = { url: url.toString(), name, prefix: `${this.prefix}-${suffix}` }
    this.sides.set(suffix, side)
    await dropDatabase(side.url, name)
    await withAdmin(side.url, (client) => client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`))
    return side
  }

  /** Drops a side database and deletes its keys; safe to call twice. */
  async dropSide(suffix: 'rebuild'): Promise<{ dropped: boolean; keysDeleted: number; keysLeft: number }> {
    const side = this.sides.get(suffix)
    if (!side) return { dropped: true, keysDeleted: 0, keysLeft: 0 }
    const dropped = await dropDatabase(side.url, side.name)
    const { deleted, left } = await deleteKeys(this.redisUrl, side.prefix)
    if (dropped && left === 0) this.sides.delete(suffix)
    return { dropped, keysDeleted: deleted, keysLeft: left }
  }

  teardown(): Promise<CleanupReport> {
    this.tearingDown ??= this.cleanUp()
    return this.tearingDown
  }

  async setUp(): Promise<void> {
    say(`setting up database ${this.dbName}, key prefix ${this.prefix}, ${this.partitions} partitions`)
    this.services = await ensureDatabase(this.databaseUrl, this.redisUrl)
    await migrate(this.databaseUrl)
    this.port = await freePort()
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: this.databaseUrl,
      REDIS_URL: this.redisUrl,
      HOST: '127.0.0.1',
      PORT: String(this.port),
      LOG_LEVEL: 'warn',
      LANTERN_KEY_PREFIX: this.prefix,
      LANTERN_PARTITIONS: String(this.partitions),
    }
    // The API goes first: it pins the layout settings the workers then agree with.
    this.api = new Child('api', 'src/server.ts', env, REPO_ROOT)
    await this.waitForApi(this.api)
    for (let i = 1; i <= this.opts.workers; i++) this.workers.push(new Child(`worker-${i}`, 'workers/main.ts', env, REPO_ROOT))
    if (this.workers.length > 0) await this.waitForWorkers()
    this.watchForCrashes()
    say(`running: api pid ${this.api.pid} on ${this.baseUrl}${this.workers.map((w) => `, ${w.name} pid ${w.pid}`).join('')}`)
  }

  private watchForCrashes(): void {
    this.crash = Promise.race(
      this.children.map((c) =>
        c.unexpectedExit().then((exit) => {
          throw new Error(`${c.name} exited during the run (${exit.signal ?? `code ${exit.code}`}); see its output above`)
        }),
      ),
    )
    // A crash between phases has no race listening; it must not become an unhandled rejection.
    this.crash.catch(() => undefined)
  }

  private async waitForApi(api: Child): Promise<void> {
    const ready = await waitUntil(async () => {
      if (!api.running) throw new Error(`the API exited while starting (code ${api.proc.exitCode ?? api.proc.signalCode}); see its output above`)
      try {
        const res = await fetch(`${this.baseUrl}/readyz`, { signal: AbortSignal.timeout(2000) })
        await res.arrayBuffer()
        return res.status === 200
      } catch {
        return false
      }
    }, 60_000)
    if (!ready) throw new Error('the API did not report ready on /readyz within 60 s')
  }

  /** Workers are ready once every partition's drain job has been taken by one of them. */
  private async waitForWorkers(): Promise<void> {
    const redis = openRedis(this.redisUrl)
    await redis.connect()
    try {
      const activeKey = `${this.prefix}:{queues}:drain:active`
      const ready = await waitUntil(async () => {
        const dead = this.workers.find((w) => !w.running)
        if (dead) throw new Error(`${dead.name} exited while starting; see its output above`)
        return (await redis.llen(activeKey)) >= this.partitions
      }, 60_000)
      if (!ready) throw new Error(`the workers did not take all ${this.partitions} drain jobs within 60 s`)
    } finally {
      redis.disconnect()
    }
  }

  private async cleanUp(): Promise<CleanupReport> {
    const report: CleanupReport = { database: this.dbName, databaseDropped: false, keyPrefix: this.prefix, keysDeleted: 0, keysLeft: -1, problems: [] }
    const attempt = async (what: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn()
      } catch (err) {
        report.problems.push(`${what}: ${errorMessage(err)}`)
        say(`clean-up: ${what} failed: ${errorMessage(err)}`)
      }
    }
    say('cleaning up: stopping processes, dropping the database, deleting the keys')
    await attempt('stop processes', async () => {
      await Promise.all(this.children.map((c) => c.stop(STOP_GRACE_MS)))
    })
    await attempt('drop database', async () => {
      report.databaseDropped = await dropDatabase(this.databaseUrl, this.dbName)
    })
    for (const suffix of [...this.sides.keys()]) {
      await attempt(`drop ${suffix} database and keys`, async () => {
        const r = await this.dropSide(suffix as 'rebuild')
        if (!r.dropped || r.keysLeft > 0) throw new Error(`database ${r.dropped ? 'dropped' : 'NOT dropped'}, ${r.keysLeft} keys left`)
      })
    }
    await attempt('delete keys', async () => {
      const { deleted, left } = await deleteKeys(this.redisUrl, this.prefix)
      report.keysDeleted = deleted
      report.keysLeft = left
    })
    await attempt('stop services', async () => {
      await this.services?.stop()
    })
    say(`clean-up: database ${report.databaseDropped ? 'dropped' : 'NOT dropped'}, ${report.keysDeleted} keys deleted, ${report.keysLeft} left`)
    return report
  }
}

function loopbackUrl(raw: string, name: string): URL {
  const url = new URL(raw)
  if (!LOOPBACK.has(url.hostname)) throw new Error(`${name} must point at 127.0.0.1: the bench only talks to this machine (got ${url.hostname})`)
  url.hostname = '127.0.0.1'
  return url
}

export function openRedis(url: string): Redis {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  // ioredis also emits every failure as an event; the failing command reports it.
  redis.on('error', () => undefined)
  return redis
}

function maintenanceUrl(databaseUrl: string): string {
  const url = new URL(databaseUrl)
  url.pathname = '/postgres'
  return url.toString()
}

async function withAdmin<T>(databaseUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: maintenanceUrl(databaseUrl), connectionTimeoutMillis: 5000 })
  client.on('error', () => undefined)
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end()
  }
}

/** scripts/services.ts starts missing services and creates the database; without it, only the database is created. */
async function ensureDatabase(databaseUrl: string, redisUrl: string): Promise<Services | undefined> {
  const services = await loadServicesModule()
  if (services) return services.ensureServices({ databaseUrl, redisUrl, log: (msg) => say(`services: ${msg}`) })
  say('scripts/services.ts is not available; creating the database directly')
  const name = new URL(databaseUrl).pathname.slice(1)
  await withAdmin(databaseUrl, (client) => client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`))
  return undefined
}

async function loadServicesModule(): Promise<ServicesModule | undefined> {
  const url = new URL('../services.ts', import.meta.url)
  if (!existsSync(url)) return undefined
  try {
    const mod = (await import(url.href)) as Partial<ServicesModule>
    return typeof mod.ensureServices === 'function' ? (mod as ServicesModule) : undefined
  } catch (err) {
    say(`scripts/services.ts failed to load (${errorMessage(err)})`)
    return undefined
  }
}

async function migrate(databaseUrl: string): Promise<void> {
  say('migrating')
  try {
    await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/migrate.ts'], {
      cwd: REPO_ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
    })
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string }
    throw new Error(`migration failed: ${(e.stderr || e.stdout || errorMessage(err)).trim().split('\n').slice(-5).join(' | ')}`)
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

async function dropDatabase(databaseUrl: string, name: string): Promise<boolean> {
  if (!BENCH_DB.test(name)) throw new Error(`refusing to drop ${name}: not a bench database`)
  return withAdmin(databaseUrl, async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`)
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
    return rowCount === 0
  })
}

/** SCAN + UNLINK of every key under the prefix; then a second SCAN counts what is left. */
async function deleteKeys(redisUrl: string, prefix: string): Promise<{ deleted: number; left: number }> {
  if (!BENCH_PREFIX.test(prefix)) throw new Error(`refusing to delete keys of ${prefix}: not a bench prefix`)
  const redis = openRedis(redisUrl)
  await redis.connect()
  try {
    const deleted = await scanKeys(redis, prefix, (keys) => redis.unlink(...keys))
    const left = await scanKeys(redis, prefix, async () => 0)
    return { deleted, left }
  } finally {
    redis.disconnect()
  }
}

async function scanKeys(redis: Redis, prefix: string, onKeys: (keys: string[]) => Promise<unknown>): Promise<number> {
  let cursor = '0'
  let total = 0
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 10_000)
    if (keys.length > 0) await onKeys(keys)
    total += keys.length
    cursor = next
  } while (cursor !== '0')
  return total
}
