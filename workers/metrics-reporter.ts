import { hostname } from 'node:os'
import type { Runtime } from '../src/infra/runtime.js'

const EVERY_MS = 5000

/**
 * Workers serve no HTTP: each one leaves a snapshot of its metrics in Redis (expiring if the
 * worker dies) and the API's /metrics merges them, so one scrape sees the whole deployment.
 */
export function startMetricsReporter(rt: Runtime): { close(): Promise<void> } {
  const key = rt.keys.workerMetrics(`${hostname()}-${process.pid}`)
  const report = async (): Promise<void> => {
    const snapshot = await rt.metrics.registry.getMetricsAsJSON()
    await rt.redis.set(key, JSON.stringify(snapshot), 'PX', EVERY_MS * 3)
  }
  const timer = setInterval(() => void report().catch(() => undefined), EVERY_MS)
  void report().catch(() => undefined)
  return {
    async close() {
      clearInterval(timer)
      await rt.redis.del(key).catch(() => undefined)
    },
  }
}
