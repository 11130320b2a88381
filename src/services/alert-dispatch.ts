import { createHmac } from 'node:crypto'
import { Queue, type JobsOptions } from 'bullmq'
import type { Db } from '../infra/db.js'
import type { Redis } from '../infra/redis.js'
import type { Keys } from '../infra/keys.js'
import type { Logger } from '../logger.js'
import type { Config } from '../config.js'
import type { AlertStatus } from '../schemas/alert-event.js'
import {
  enabledWebhooks,
  ensureDeliveries,
  markDispatched,
  undispatchedEvents,
  type DeliveryJobRef,
  type OutboxEvent,
  type WebhookFilter,
} from '../repositories/webhooks.repository.js'

/** A delivery job carries only the delivery id: every try reads the current row. The sweep job runs the dispatcher. */
export type WebhookJobData = { deliveryId: number } | { sweep: true }

export const DEFAULT_WEBHOOK_STATUSES: readonly AlertStatus[] = ['firing', 'resolved']

/** Outbox rows taken per round. */
const BATCH = 500
/** Events per script call: bounds how long one call holds Redis. */
const STREAM_CHUNK = 100
/** How long the "already on the stream" marker lives: far longer than any dispatch retry takes. */
const STREAMED_TTL_S = 3 * 86400


export function webhookQueue(rt: { keys: Keys }, connection: Redis): Queue<WebhookJobData> {
  return new Queue<WebhookJobData>(rt.keys.webhookQueue, { connection, prefix: rt.keys.bullPrefix })
}

/** Job options of a delivery; `suffix` gives a dead delivery's retry a job id of its own. */
export function deliveryJob(config: Pick<Config, 'webhookMaxAttempts' | 'webhookBackoffMs'>, deliveryId: number, suffix = ''): { name: string; data: WebhookJobData; opts: JobsOptions } {
  return {
    name: 'deliver',
    data: { deliveryId },
    opts: {
      // The id dedupes a re-dispatch: while the job exists the queue ignores a second add; once it is gone the row is no longer pending.
      jobId: `d-${deliveryId}${suffix}`,
      attempts: config.webhookMaxAttempts,
      backoff: { type: 'exponential', delay: config.webhookBackoffMs },
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 7 * 86400, count: 1000 },
    },
  }
}

/** Whether a webhook's filter takes this change. An absent or empty list matches everything. */
export function webhookMatches(filter: WebhookFilter, e: Pick<OutboxEvent, 'status' | 'payload'>): boolean {
  const statuses = filter.statuses && filter.statuses.length > 0 ? filter.statuses : DEFAULT_WEBHOOK_STATUSES
  if (!statuses.includes(e.status)) return false
  const has = (list: string[] | undefined, v: string): boolean => !list || list.length === 0 || list.includes(v)
  return has(filter.severities, e.payload.rule.severity) && has(filter.ruleIds, e.payload.rule.id) && has(filter.metrics, e.payload.series.metric)
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the receiver recomputes it and rejects an old t. */
export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')
  return `t=${unixSeconds},v1=${mac}`
}

export interface DispatcherDeps {
  db: Db
  redis: Redis
  keys: Keys
  log: Logger
  config: Config
  queue: Queue<WebhookJobData>
}

/**
 * Moves committed alert changes out of the outbox (alert_events) onto the alert stream and into
 * webhook deliveries. Each round is: stream append (marker-guarded), delivery rows (unique per
 * webhook x event), queue jobs (deduped by job id), then dispatched_at. Every step is a no-op when
 * repeated, so a crash between steps or two dispatchers at once lose and duplicate nothing; the
 * steps go in this order so that an event is only marked once everything downstream holds it.
 *
 * Order: rounds take events in id order and changes of one series are committed in id order (one
 * partition drains a series), so a series' stream entries and delivery rows follow its changes.
 * Outbox rows are never skipped (no SKIP LOCKED): a dispatcher skipping a row another one holds
 * could queue a series' later change before the earlier one has a delivery row to wait for.
 */
export class AlertDispatcher {
  private current: Promise<number> | null = null
  private next: Promise<number> | null = null

  constructor(private readonly deps: DispatcherDeps) {}

  /**
   * Dispatches everything undispatched; returns the number of events handled. Calls made while a
   * round runs share one follow-up round, which starts after it and so sees their commits: many
   * drainers finishing at once cost at most two passes, not one each.
   */
  dispatch(): Promise<number> {
    if (!this.current) return this.start()
    if (!this.next) {
      this.next = this.current
        .catch(() => 0)
        .then(() => {
          this.next = null
          return this.start()
        })
    }
    return this.next
  }

  private start(): Promise<number> {
    const p = this.run().finally(() => {
      if (this.current === p) this.current = null
    })
    this.current = p
    return p
  }

  private async run(): Promise<number> {
    const { db, log } = this.deps
    let total = 0
    let webhooks: Awaited<ReturnType<typeof enabledWebhooks>> | null = null
    for (;;) {
      const events = await undispatchedEvents(db, BATCH)
      if (events.length === 0) return total
      webhooks ??= await enabledWebhooks(db)
      const streamed = await this.appendToStream(events)
      const wanted = events.flatMap((e) =>
        webhooks!.filter((w) => webhookMatches(w.filter, e)).map((w) => ({ webhookId: w.id, alertEventId: e.id, seriesId: e.seriesId })),
      )
      const deliveries = await ensureDeliveries(db, events.map((e) => e.id), wanted)
      await this.enqueue(deliveries)
      await markDispatched(db, events.map((e) => e.id))
      total += events.length
      log.info(
        { events: events.length, firstAlertEventId: events[0]!.id, lastAlertEventId: events[events.length - 1]!.id, streamed, deliveries: deliveries.length },
        'alert changes dispatched',
      )
      if (events.length < BATCH) return total
    }
  }

  private async appendToStream(events: readonly OutboxEvent[]): Promise<number> {
    const { redis, keys, config } = this.deps
    const pipeline = redis.pipeline()
    for (let i = 0; i < events.length; i += STREAM_CHUNK) {
      const chunk = events.slice(i, i + STREAM_CHUNK)
      const args: (string | number)[] = [keys.alertStream, ...chunk.map((e) => keys.alertStreamed(String(e.id))), STREAMED_TTL_S, config.alertStreamMaxLen]
      for (const e of chunk) {
        const id = String(e.id)
        args.push(id, String(e.seriesId), e.status, JSON.stringify({ id, ...e.payload }))
      }
      pipeline.lanternAlertStream(chunk.length + 1, ...args)
    }
    const results = (await pipeline.exec()) ?? []
    let added = 0
    for (const [err, n] of results) {
      if (err) throw err
      added += Number(n)
    }
    return added
  }

  private async enqueue(deliveries: readonly DeliveryJobRef[]): Promise<void> {
    if (deliveries.length === 0) return
    await this.deps.queue.addBulk(deliveries.map((d) => deliveryJob(this.deps.config, d.id)))
  }
}
