import { Queue, Worker, type Job } from 'bullmq'
import { Redis } from 'ioredis'
import type { Runtime } from '../src/infra/runtime.js'
import { drainJobId } from '../src/infra/keys.js'
import { ImportGate, PartitionDrainer } from './drain/partition-drainer.js'
import { AlertDispatcher, webhookQueue } from '../src/services/alert-dispatch.js'

export interface DrainJobData {
  partition: number
}

export interface DrainWorker {
  close(): Promise<void>
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** How often every partition's drain job is (re)queued when missing; the queue ignores repeats. */
const ENSURE_EVERY_MS = 1000
/** Partitions of one worker process that may fold history-import entries at the same time. */
const IMPORT_SLOTS = 2

/**
 * Drains partitions as BullMQ jobs. Each partition has one job id, so the queue holds at most one
 * drain job per partition and its lock gives one owner at a time; a job drains for a lease and
 * then completes, so partitions spread over however many worker processes run. A worker killed
 * mid-lease leaves a stalled job that BullMQ hands to another worker once its lock expires; the
 * checkpoint compare-and-set makes any overlap harmless.
 */
export function startDrainWorker(rt: Runtime): DrainWorker {
  const { config, keys, log } = rt
  const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null, connectionName: 'lantern-worker-bullmq' })
  connection.on('error', (err) => log.warn({ err: err.message }, 'queue connection error'))
  const queue = new Queue<DrainJobData>(keys.drainQueue, { connection, prefix: keys.bullPrefix })
  // One dispatcher for every partition of this process: commits that land together share a pass.
  const deliveries = webhookQueue(rt, connection)
  const dispatcher = new AlertDispatcher({ db: rt.db, redis: rt.redis, keys, log, config, queue: deliveries })
  const deps = { ...rt, dispatchAlerts: () => dispatcher.dispatch() }
  const drainers = new Map<number, PartitionDrainer>()
  const importGate = new ImportGate(IMPORT_SLOTS)
  let closing = false

  const drainerFor = (partition: number): PartitionDrainer => {
    let d = drainers.get(partition)
    if (!d) {
      d = new PartitionDrainer(partition, deps, {
        batchEvents: config.drainBatchEvents,
        cacheBuckets: 200_000,
        latenessMs: config.allowedLatenessSec * 1000,
        dayOffsetMs: config.dayOffsetMin * 60_000,
        retentionMs: config.logRetentionSec * 1000,
        maxEntries: config.logMaxEntries,
        importGate,
      })
      drainers.set(partition, d)
    }
    return d
  }

  const drainLease = async (job: Job<DrainJobData>): Promise<{ events: number }> => {
    const { partition } = job.data
    const drainer = drainerFor(partition)
    await drainer.resumeLease()
    const leaseEnd = Date.now() + config.drainLeaseMs
    let events = 0
    log.debug({ partition, jobId: job.id }, 'drain lease started')
    while (!closing && Date.now() < leaseEnd) {
      const n = await drainer.drainOnce()
      events += n
      if (n === 0) await sleep(config.drainPollMs)
    }
    return { events }
  }

  const worker = new Worker<DrainJobData>(keys.drainQueue, drainLease, {
    connection,
    prefix: keys.bullPrefix,
    concurrency: config.workerConcurrency || config.partitions,
    lockDuration: 10_000,
    stalledInterval: 5_000,
    maxStalledCount: Number.MAX_SAFE_INTEGER,
  })

  const ensureJobs = async (): Promise<void> => {
    if (closing) return
    await Promise.all(
      Array.from({ length: config.partitions }, (_, partition) =>
        queue.add('drain', { partition }, { jobId: drainJobId(partition), removeOnComplete: true, removeOnFail: true }),
      ),
    )
  }
  const ensureSoon = (): void => {
    ensureJobs().catch((err: Error) => log.warn({ err: err.message }, 'could not queue drain jobs'))
  }
  worker.on('completed', ensureSoon)
  worker.on('failed', (job, err) => {
    log.error({ partition: job?.data.partition, jobId: job?.id, err }, 'drain lease failed; it is queued again')
    setTimeout(ensureSoon, ENSURE_EVERY_MS)
  })
  worker.on('error', (err) => log.warn({ err: err.message }, 'drain worker error'))
  const timer = setInterval(ensureSoon, ENSURE_EVERY_MS)
  ensureSoon()

  return {
    async close() {
      closing = true
      clearInterval(timer)
      await worker.close()
      await queue.close()
      await deliveries.close()
      connection.disconnect()
    },
  }
}
