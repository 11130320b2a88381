import { acknowledgement, failureKind, type Acknowledgement, type Poster } from './http.js'
import { buildTemplate, cloneTemplate, requestTag, stamp, type BodyTemplate, type Series } from './workload.js'
import { errorMessage, sleep } from './util.js'

/** Distinct value sets a client cycles through, so consecutive requests do not repeat values. */
const TEMPLATES = 4
/** Pause after a failed request, so a refusing server is not hammered in a tight loop. */
const BACKOFF_MS = 100

export interface Outcome {
  startedMs: number
  endedMs: number
  events: number
  ack?: Acknowledgement
  failure?: string
}

export interface FullSpeedOptions {
  poster: Poster
  clients: number
  /** Serialized before timing; see workload.ts. */
  templates: readonly BodyTemplate[]
  /** performance.now() after which no new request starts. */
  stopAtMs: number
  onOutcome(o: Outcome): void
}

export function buildTemplates(series: readonly Series[], batch: number): BodyTemplate[] {
  return Array.from({ length: TEMPLATES }, (_, i) => buildTemplate(series, batch, Math.floor((i * series.length) / TEMPLATES)))
}

/**
 * K clients, each posting its next batch as soon as the previous one is answered, until stopAtMs;
 * resolves once every request has been answered.
 */
export async function postAtFullSpeed(opts: FullSpeedOptions): Promise<void> {
  let requests = 0
  const client = async (index: number): Promise<void> => {
    // Each client patches its own copies: a body must stay untouched until it has been sent.
    const own = opts.templates.map(cloneTemplate)
    for (let k = index; performance.now() < opts.stopAtMs; k++) {
      const template = own[k % own.length] as BodyTemplate
      const body = stamp(template, requestTag(requests++), Date.now())
      const startedMs = performance.now()
      const outcome = await opts.poster.post('/v1/metrics', body).then(
        (reply) => {
          const ack = acknowledgement(reply)
          return ack ? { ack } : { failure: failureKind(reply) }
        },
        (err: unknown) => ({ failure: failureKind(err instanceof Error ? err : new Error(errorMessage(err))) }),
      )
      opts.onOutcome({ startedMs, endedMs: performance.now(), events: template.events, ...outcome })
      if (outcome.failure) await sleep(BACKOFF_MS)
    }
  }
  await Promise.all(Array.from({ length: opts.clients }, (_, i) => client(i)))
}
