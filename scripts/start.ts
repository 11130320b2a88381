import { spawn, type ChildProcess } from 'node:child_process'
import { parseArgs } from 'node:util'
import net from 'node:net'
import { ensureServices, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, type Services } from './services.js'
import { makeDb, makePool } from '../src/infra/db.js'
import { migrateToLatest } from '../src/infra/migrate.js'

/**
 * The whole system on one machine: services, migrations, API/hub processes, worker processes and,
 * with --demo, a demo feed. Children that die are restarted; Ctrl-C stops everything it started.
 */
const { values } = parseArgs({
  options: {
    api: { type: 'string', default: '1' },
    workers: { type: 'string', default: '1' },
    demo: { type: 'boolean', default: false },
    'demo-rate': { type: 'string', default: '200' },
    help: { type: 'boolean', default: false },
  },
})
if (values.help) {
  console.log('npm start -- [--api N] [--workers N] [--demo] [--demo-rate EVENTS_PER_SEC]')
  process.exit(0)
}
const count = (name: string, raw: string, min: number): number => {
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > 32) throw new Error(`--${name} must be a whole number from ${min} to 32`)
  return n
}
const apis = count('api', values.api, 1)
const workers = count('workers', values.workers, 0)
const basePort = Number(process.env.PORT || 8080)
const host = process.env.HOST || '127.0.0.1'

const DURABLE_REDIS_URL = 'redis://127.0.0.1:6390'

/** Whether something accepts TCP connections at the URL's host and port. */
const answers = (url: string): Promise<boolean> =>
  new Promise((resolve) => {
    const { hostname, port, protocol } = new URL(url)
    const socket = net.connect({ host: hostname, port: Number(port || (protocol.startsWith('redis') ? 6379 : 5432)) })
    socket.setTimeout(1000)
    socket.once('connect', () => (socket.destroy(), resolve(true)))
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => (socket.destroy(), resolve(false)))
  })

const say = (msg: string): void => console.error(`[lantern] ${msg}`)
const wanted = {
  databaseUrl: process.env.DATABASE_URL || DEFAULT_DATABASE_URL,
  redisUrl: process.env.REDIS_URL || DEFAULT_REDIS_URL,
  // Acknowledged events live in Redis until drained: unless a Redis is configured explicitly,
  // run one that persists them rather than a local one that keeps nothing on disk.
  durableRedisFallback: process.env.REDIS_URL ? undefined : DURABLE_REDIS_URL,
}
const services = [await ensureServices(wanted)]
const first = services[0] as Services
const env = { ...process.env, DATABASE_URL: first.databaseUrl, REDIS_URL: first.redisUrl, HOST: host }

const db = makeDb(makePool(first.databaseUrl, 1, 'lantern-start'))
await migrateToLatest(db, (name) => say(`migration applied: ${name}`))
await db.destroy()

interface Role {
  name: string
  script: string
  env: NodeJS.ProcessEnv
  child?: ChildProcess
  restarts: number
}
const roles: Role[] = []
for (let i = 0; i < apis; i++) roles.push({ name: `api-${i + 1}`, script: 'src/server.ts', env: { ...env, PORT: String(basePort + i) }, restarts: 0 })
for (let i = 0; i < workers; i++) roles.push({ name: `worker-${i + 1}`, script: 'workers/main.ts', env, restarts: 0 })
if (values.demo) {
  roles.push({ name: 'demo-feed', script: 'scripts/demo-feed.ts', env: { ...env, LANTERN_URL: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${basePort}`, DEMO_RATE: values['demo-rate'] }, restarts: 0 })
}

let stopping = false
function launch(role: Role): void {
  // Own process group: a terminal Ctrl-C reaches only this supervisor, which then stops each child once, gracefully.
  const child = spawn(process.execPath, ['--import', 'tsx', role.script], { env: role.env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true })
  role.child = child
  child.on('exit', (code, signal) => {
    if (stopping) return
    role.restarts++
    const delay = Math.min(30_000, 500 * 2 ** Math.min(role.restarts, 6))
    say(`${role.name} exited (${signal ?? `code ${code}`}); restarting in ${delay} ms`)
    setTimeout(() => !stopping && launch(role), delay)
  })
}
roles.forEach(launch)

const urls = Array.from({ length: apis }, (_, i) => `http://${host}:${basePort + i}`)
say(`running: ${roles.map((r) => r.name).join(', ')}`)
say(`operations screen: ${urls[0]}/`)
say(`API and live hub: ${urls.join(', ')}  (OpenAPI: ${urls[0]}/docs, AsyncAPI: ${urls[0]}/docs/asyncapi.json, socket: ${urls[0]?.replace('http', 'ws')}/v1/live)`)
say('Ctrl-C stops everything this command started')

async function stop(signal: string): Promise<void> {
  if (stopping) return
  stopping = true
  say(`${signal}: stopping (workers finish their in-flight batches)`)
  await Promise.all(
    roles.map(
      (r) =>
        new Promise<void>((resolve) => {
          if (!r.child || r.child.exitCode !== null || r.child.signalCode !== null) return resolve()
          r.child.once('exit', () => resolve())
          r.child.kill('SIGTERM')
          setTimeout(() => r.child?.kill('SIGKILL'), 35_000).unref()
        }),
    ),
  )
  clearInterval(watchdog)
  for (const s of services.reverse()) await s.stop()
  process.exit(0)
}
/**
 * Servers this command started are restarted if they die (from their own data: Redis replays its
 * append-only file), as the roles are; servers it found running are left to their owners.
 */
let checking = false
const watchdog = setInterval(() => {
  if (checking || stopping || first.started.length === 0) return
  checking = true
  void (async () => {
    const down = await Promise.all([first.started.includes('redis') && !(await answers(first.redisUrl)), first.started.includes('postgres') && !(await answers(first.databaseUrl))])
    if (down.some(Boolean)) {
      say('a service this command started stopped answering; starting it again')
      services.push(await ensureServices({ databaseUrl: first.databaseUrl, redisUrl: first.redisUrl }))
    }
  })()
    .catch((err: Error) => say(`could not restart a service: ${err.message}`))
    .finally(() => {
      checking = false
    })
}, 2000)

process.on('SIGINT', () => void stop('SIGINT'))
process.on('SIGTERM', () => void stop('SIGTERM'))
