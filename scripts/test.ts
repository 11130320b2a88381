import { spawn } from 'node:child_process'
import { ensureChromium, ensureServices, DEFAULT_DATABASE_URL, DEFAULT_MQTT_URL, DEFAULT_REDIS_URL } from './services.js'

/**
 * The test command: makes Redis, Postgres and an MQTT broker available (starting project-local ones
 * on a bare machine) and Debian's Chromium for the browser tests, runs every tap test against them, stops what it started, and ends with one
 * "N passed, N failed" line. Extra arguments go to tap (e.g. a single test file).
 */
const databaseUrl = process.env.DATABASE_URL || DEFAULT_DATABASE_URL
const redisUrl = process.env.REDIS_URL || DEFAULT_REDIS_URL
const mqttUrl = process.env.MQTT_URL || DEFAULT_MQTT_URL
const services = await ensureServices({ databaseUrl, redisUrl, mqttUrl })

const args = process.argv.slice(2)
const files = args.length > 0 ? args : ['test/unit/*.test.ts', 'test/integration/*.test.ts', 'test/browser/*.test.ts']
if (files.some((f) => f.startsWith('test/browser'))) await ensureChromium()
let summary = ''
const code = await new Promise<number>((resolve) => {
  const child = spawn('npx', ['tap', ...files], {
    env: { ...process.env, DATABASE_URL: services.databaseUrl, REDIS_URL: services.redisUrl, MQTT_URL: mqttUrl },
    stdio: ['ignore', 'pipe', 'inherit'],
    shell: true,
  })
  child.stdout.on('data', (chunk: Buffer) => {
    const text = chunk.toString()
    process.stdout.write(text)
    const m = /# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/.exec(text)
    if (m) summary = `${m[2]} passed, ${m[3] ?? 0} failed`
  })
  child.on('close', (c) => resolve(c ?? 1))
})
await services.stop()
console.log(summary ? `\nTests: ${summary}` : '\nTests: no summary from tap')
process.exit(code)
