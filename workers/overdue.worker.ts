import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import type { Runtime } from '../src/infra/runtime.js'
import { markNewlyOverdue } from '../src/repositories/cases.repository.js'
import type { ChangeNotice } from '../src/live/change-notice.js'

/** How often open cases are checked for a due time that has just passed. */
export const OVERDUE_EVERY_MS = 10_000

/**
 * No event arrives when a case goes overdue, so a repeatable job (one schedule shared by every
 * worker process) looks for cases whose due time passed since the last check and announces their
 * groups, which makes screens watching those KPIs update.
 */
export function startOverdueWorker(rt: Runtime): { close(): Promise<void> } {
  const { config, keys, log } = rt
  const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null, connectionName: 'lantern-worker-overdue' })
  connection.on('error', (err) => log.warn({ err: err.message }, 'queue connection error'))
  const queue = new Queue(keys.maintenanceQueue, { connection, prefix: keys.bullPrefix })
  queue
    .upsertJobScheduler('overdue-check', { every: OVERDUE_EVERY_MS }, { name: 'overdue-check', opts: { removeOnComplete: true, removeOnFail: 100 } })
    .catch((err: Error) => log.error({ err }, 'could not schedule the overdue check'))
  const worker = new Worker(
    keys.maintenanceQueue,
    async () => {
      const groups = await markNewlyOverdue(rt.db, Date.now())
      if (groups.length > 0) {
        const notice: ChangeNotice = { partition: -1, metrics: {}, cases: groups }
        await rt.redis.publish(keys.changesChannel, JSON.stringify(notice))
        log.info({ groups: groups.length }, 'cases went overdue')
      }
      return { groups: groups.length }
    },
    { connection, prefix: keys.bullPrefix, concurrency: 1 },
  )
  worker.on('error', (err) => log.warn({ err: err.message }, 'overdue worker error'))
  return {
    async close() {
      await worker.close()
      await queue.close()
      connection.disconnect()
    },
  }
}
