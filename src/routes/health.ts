import type { FastifyPluginAsync } from 'fastify'
import { sql } from 'kysely'
import type { Runtime } from '../infra/runtime.js'
import { listCheckpoints } from '../repositories/checkpoints.repository.js'
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client'

const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T> =>
  Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms).unref())])

export const healthRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  app.get('/healthz', { schema: { tags: ['ops'], summary: 'Liveness: the process answers' } }, async () => ({ status: 'ok' }))

  app.get('/readyz', { schema: { tags: ['ops'], summary: 'Readiness: Redis and Postgres answer' } }, async (_req, reply) => {
    const check = async (fn: () => Promise<unknown>): Promise<string> => {
      try {
        await withTimeout(fn(), 2000)
        return 'ok'
      } catch (err) {
        return (err as Error).message
      }
    }
    const [redis, postgres] = await Promise.all([check(() => rt.redis.ping()), check(() => sql`select 1`.execute(rt.db))])
    const ready = redis === 'ok' && postgres === 'ok'
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', redis, postgres })
  })

  app.get('/metrics', { schema: { tags: ['ops'], summary: 'Prometheus metrics of this API process and every live worker' } }, async (_req, reply) => {
    await refreshLag(rt).catch(() => undefined)
    const merged = AggregatorRegistry.aggregate([await rt.metrics.registry.getMetricsAsJSON(), ...(await workerSnapshots(rt).catch(() => []))])
    reply.header('content-type', merged.contentType)
    return merged.metrics()
  })
}

async function workerSnapshots(rt: Runtime): Promise<MetricObjectWithValues<MetricValue<string>>[][]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await rt.redis.scan(cursor, 'MATCH', rt.keys.workerMetricsPattern, 'COUNT', 1000)
    keys.push(...found)
    cursor = next
  } while (cursor !== '0')
  if (keys.length === 0) return []
  const values = await rt.redis.mget(...keys)
  return values.flatMap((v) => (v ? [JSON.parse(v) as MetricObjectWithValues<MetricValue<string>>[]] : []))
}

/**
 * Lag seen from the API: age of the oldest log entry past each partition's checkpoint. Workers
 * report their own view too; this one works even when every worker is down.
 */
async function refreshLag(rt: Runtime): Promise<void> {
  const checkpoints = await listCheckpoints(rt.db)
  const pipeline = rt.redis.pipeline()
  for (const c of checkpoints) pipeline.xrange(rt.keys.stream(c.partition), `(${c.lastId}`, '+', 'COUNT', 1)
  const replies = (await pipeline.exec()) ?? []
  const now = Date.now()
  checkpoints.forEach((c, i) => {
    const entries = (replies[i]?.[1] ?? []) as [string, string[]][]
    const first = entries[0]?.[0]
    const age = first ? Math.max(0, (now - Number(first.split('-')[0])) / 1000) : 0
    rt.metrics.drainLag.set({ partition: String(c.partition) }, age)
  })
}
