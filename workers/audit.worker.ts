import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import type { Runtime } from '../src/infra/runtime.js'
import { auditRange } from '../src/services/audit.js'
import { updateAudit } from '../src/repositories/audits.repository.js'
import type { ChangeNotice } from '../src/live/change-notice.js'

export interface AuditJobData {
  auditId: number
  fromMs: number
  toMs: number
}

/** Progress is written and announced at most this often. */
const PROGRESS_EVERY_MS = 1000

/** Tells hubs an audit moved, so screens on the audits topic see its progress. */
export async function announceAudit(rt: Runtime): Promise<void> {
  const notice: ChangeNotice = { partition: -1, metrics: {}, audits: true }
  await rt.redis.publish(rt.keys.changesChannel, JSON.stringify(notice))
}

export function auditQueue(rt: Runtime, connection: Redis): Queue<AuditJobData> {
  return new Queue<AuditJobData>(rt.keys.auditQueue, { connection, prefix: rt.keys.bullPrefix })
}

/** Runs queued audits one at a time per worker process, recording progress and the report. */
export function startAuditWorker(rt: Runtime): { close(): Promise<void> } {
  const connection = new Redis(rt.config.redisUrl, { maxRetriesPerRequest: null, connectionName: 'lantern-worker-audit' })
  connection.on('error', (err) => rt.log.warn({ err: err.message }, 'queue connection error'))
  const settings = { latenessMs: rt.config.allowedLatenessSec * 1000, dayOffsetMs: rt.config.dayOffsetMin * 60_000 }
  const worker = new Worker<AuditJobData>(
    rt.keys.auditQueue,
    async (job) => {
      const { auditId, fromMs, toMs } = job.data
      rt.log.info({ auditId, fromMs, toMs }, 'audit started')
      await updateAudit(rt.db, auditId, { status: 'running' })
      await announceAudit(rt)
      let last = 0
      try {
        const report = await auditRange(rt.db, fromMs, toMs, settings, (events) => {
          if (Date.now() - last < PROGRESS_EVERY_MS) return
          last = Date.now()
          void job.updateProgress({ events })
          void updateAudit(rt.db, auditId, { eventsReplayed: events }).then(() => announceAudit(rt)).catch(() => undefined)
        })
        await updateAudit(rt.db, auditId, { status: 'done', eventsReplayed: report.eventsReplayed, report })
        rt.log.info({ auditId, events: report.eventsReplayed, mismatches: report.mismatches.length }, 'audit finished')
      } catch (err) {
        await updateAudit(rt.db, auditId, { status: 'failed', error: (err as Error).message })
        throw err
      } finally {
        await announceAudit(rt).catch(() => undefined)
      }
    },
    { connection, prefix: rt.keys.bullPrefix, concurrency: 1 },
  )
  worker.on('error', (err) => rt.log.warn({ err: err.message }, 'audit worker error'))
  return {
    async close() {
      await worker.close()
      connection.disconnect()
    },
  }
}
