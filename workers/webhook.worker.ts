import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq'
import { Redis } from 'ioredis'
import type { Runtime } from '../src/infra/runtime.js'
import { AlertDispatcher, signatureHeader, webhookQueue, type WebhookJobData } from '../src/services/alert-dispatch.js'
import { hasEarlierPending, loadDeliveryWork, recordTry, type DeliveryWork } from '../src/repositories/webhooks.repository.js'

/** How often the sweeper dispatches outbox rows whose inline dispatch (right after the drain commit) was lost. */
export const SWEEP_EVERY_MS = 2000
/** How long a delivery waits, without spending a try, for an earlier change of its series to the same webhook. */
const ORDER_WAIT_MS = 250
/** Deliveries in flight per worker process (they mostly wait on receivers). */
const CONCURRENCY = 16
/** Bytes of a failed response kept in last_error. */
const ERROR_BODY_CHARS = 300

type TryResult = { ok: true; status: number } | { ok: false; status: number | null; error: string }

/** One POST of a delivery: never throws, a failure is a value. Redirects are not followed (a 3xx is a failed try). */
async function post(rt: Runtime, d: DeliveryWork, attempt: number): Promise<TryResult> {
  const eventId = String(d.alertEventId)
  const body = JSON.stringify({ id: eventId, ...d.payload })
  const headers = {
    'Content-Type': 'application/json',
    'User-Agent': 'Lantern-Webhooks/1',
    'Idempotency-Key': eventId,
    'X-Lantern-Event': eventId,
    'X-Lantern-Delivery': String(d.id),
    'X-Lantern-Attempt': String(attempt),
    'X-Lantern-Signature': signatureHeader(d.secret, body, Math.floor(Date.now() / 1000)),
  }
  try {
    const res = await fetch(d.url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(rt.config.webhookTimeoutMs) })
    const text = await res.text().catch(() => '')
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status }
    return { ok: false, status: res.status, error: `HTTP ${res.status}${text ? `: ${text.slice(0, ERROR_BODY_CHARS)}` : ''}` }
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } }
    if (e.name === 'TimeoutError') return { ok: false, status: null, error: `no answer within ${rt.config.webhookTimeoutMs} ms` }
    return { ok: false, status: null, error: e.cause?.code ?? e.cause?.message ?? e.message }
  }
}

/**
 * Runs webhook deliveries and the outbox sweeper. A delivery try: skip a row that is gone (webhook
 * deleted) or no longer pending (a duplicate job); wait without spending a try while an earlier
 * change of the same series is pending for the same webhook (per-series order); POST; record the
 * outcome. A failed try throws so BullMQ retries with exponential backoff; the last one, or a 410
 * Gone, leaves the delivery dead (the dead-letter list, retried through the API).
 */
export function startWebhookWorker(rt: Runtime): { close(): Promise<void> } {
  const { config, keys, log, db } = rt
  const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null, connectionName: 'lantern-worker-webhooks' })
  connection.on('error', (err) => log.warn({ err: err.message }, 'queue connection error'))
  const queue = webhookQueue(rt, connection)
  const dispatcher = new AlertDispatcher({ db, redis: rt.redis, keys, log, config, queue })
  // One schedule shared by every worker process: a sweep runs once per period, wherever.
  queue
    .upsertJobScheduler('alert-dispatch-sweep', { every: SWEEP_EVERY_MS }, { name: 'sweep', data: { sweep: true }, opts: { removeOnComplete: true, removeOnFail: 100 } })
    .catch((err: Error) => log.error({ err }, 'could not schedule the alert dispatch sweep'))

  const deliver = async (job: Job<WebhookJobData>, deliveryId: number, token: string | undefined): Promise<unknown> => {
    const d = await loadDeliveryWork(db, deliveryId)
    if (!d) {
      log.info({ deliveryId, jobId: job.id }, 'webhook delivery gone (its webhook was deleted)')
      return { skipped: 'gone' }
    }
    const ids = { deliveryId: d.id, webhookId: d.webhookId, alertEventId: d.alertEventId, seriesId: d.seriesId }
    if (d.status !== 'pending') return { skipped: d.status }
    if (await hasEarlierPending(db, d)) {
      log.debug(ids, 'webhook delivery waits for an earlier change of its series')
      await job.moveToDelayed(Date.now() + ORDER_WAIT_MS, token)
      throw new DelayedError()
    }
    const attempt = d.attempts + 1
    const started = Date.now()
    const r = await post(rt, d, attempt)
    const ms = Date.now() - started
    if (r.ok) {
      await recordTry(db, d.id, { attempts: attempt, outcome: 'delivered', lastStatus: r.status, lastError: null })
      log.info({ ...ids, attempt, status: r.status, ms }, 'webhook delivered')
      return { status: r.status, attempt }
    }
    const gone = r.status === 410
    const last = gone || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
    await recordTry(db, d.id, { attempts: attempt, outcome: last ? 'dead' : 'pending', lastStatus: r.status, lastError: r.error })
    if (last) {
      log.error({ ...ids, attempt, status: r.status, err: r.error, ms }, gone ? 'webhook receiver answered 410 Gone: delivery dead' : 'webhook delivery dead after its last try')
      throw new UnrecoverableError(r.error)
    }
    log.warn({ ...ids, attempt, status: r.status, err: r.error, ms }, 'webhook try failed; retrying with backoff')
    throw new Error(r.error)
  }

  const worker = new Worker<WebhookJobData>(
    keys.webhookQueue,
    async (job, token) => {
      if ('sweep' in job.data) return { dispatched: await dispatcher.dispatch() }
      return deliver(job, job.data.deliveryId, token)
    },
    {
      connection,
      prefix: keys.bullPrefix,
      concurrency: CONCURRENCY,
      // A worker killed mid-POST leaves a stalled job; rerunning it is safe (same Idempotency-Key), failing it would strand a pending row.
      maxStalledCount: Number.MAX_SAFE_INTEGER,
    },
  )
  worker.on('error', (err) => log.warn({ err: err.message }, 'webhook worker error'))
  worker.on('failed', (job, err) => {
    if (job && 'sweep' in job.data) log.warn({ err: err.message }, 'alert dispatch sweep failed; the next one retries')
  })
  return {
    async close() {
      await worker.close()
      await queue.close()
      connection.disconnect()
    },
  }
}
