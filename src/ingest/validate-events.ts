import { Ajv, type ErrorObject } from 'ajv'
import type { TSchema, Static } from '@sinclair/typebox'
import { DIM_KEY_PATTERN, metricEventSchema, type MetricEvent } from '../schemas/metric-event.js'
import { reportEventSchema, type ReportEvent } from '../schemas/report-event.js'
import { canonicalDims } from '../domain/series-key.js'
import { parseIsoInstant } from '../domain/timestamp.js'
import type { EventError } from '../errors.js'
import { UnparsableLine } from './parse-body.js'

/** Keys that would reach Object.prototype in careless consumers; refused outright. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

export interface EventLimits {
  maxDims: number
  maxDimValueLength: number
  maxFutureMs: number
}

export type ValidationResult<E> = { ok: true; events: E[] } | { ok: false; errors: EventError[] }
export type BatchValidator<E> = (items: readonly unknown[], now: number) => ValidationResult<E>

function describe(err: ErrorObject): string {
  switch (err.keyword) {
    case 'additionalProperties':
      return err.instancePath.endsWith('/dims')
        ? `dimension name "${String(err.params.additionalProperty)}" must match ${DIM_KEY_PATTERN}`
        : `unknown field "${String(err.params.additionalProperty)}"`
    case 'required':
      return `missing field "${String(err.params.missingProperty)}"`
    case 'pattern':
      return `does not match ${String(err.params.pattern)}`
    default:
      return err.message ?? err.keyword
  }
}

function pathOf(err: ErrorObject): string {
  if (err.keyword === 'required') return `${err.instancePath}/${String(err.params.missingProperty)}`
  if (err.keyword === 'additionalProperties') return `${err.instancePath}/${String(err.params.additionalProperty)}`
  return err.instancePath
}

class Refusal {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {}
}

/** Helpers the per-kind finishing step uses; each throws a Refusal naming the field. */
interface Normaliser {
  time(raw: string | number, path: string): number
  dims(raw: Record<string, string> | undefined): Record<string, string>
}

/**
 * Compiles a schema once and returns a batch validator: every item is checked, every bad one is
 * reported with its index, JSON path and reason, and only an all-good batch yields events.
 */
function makeBatchValidator<S extends TSchema, E>(schema: S, limits: EventLimits, finish: (item: Static<S>, n: Normaliser) => E): BatchValidator<E> {
  const check = new Ajv({ allErrors: false, strict: true }).compile<Static<S>>(schema)
  return (items, now) => {
    const normaliser: Normaliser = {
      time(raw, path) {
        const ms = typeof raw === 'number' ? raw : parseIsoInstant(raw)
        if (typeof ms === 'string') throw new Refusal(path, ms)
        if (path === '/ts' && ms > now + limits.maxFutureMs) {
          throw new Refusal(path, `is ${Math.round((ms - now) / 1000)} s ahead of the server clock (at most ${limits.maxFutureMs / 1000} s allowed)`)
        }
        return ms
      },
      dims(raw) {
        const dims = raw ?? {}
        for (const k of Object.keys(dims)) if (FORBIDDEN_KEYS.has(k)) throw new Refusal(`/dims/${k}`, `"${k}" is not allowed as a dimension name`)
        return canonicalDims(dims)
      },
    }
    const events: E[] = []
    const errors: EventError[] = []
    items.forEach((item, index) => {
      if (item instanceof UnparsableLine) return void errors.push({ index, path: '', reason: item.reason })
      if (!check(item)) {
        const err = check.errors?.[0]
        return void errors.push(err ? { index, path: pathOf(err), reason: describe(err) } : { index, path: '', reason: 'invalid event' })
      }
      try {
        events.push(finish(item, normaliser))
      } catch (err) {
        if (!(err instanceof Refusal)) throw err
        errors.push({ index, path: err.path, reason: err.reason })
      }
    })
    return errors.length > 0 ? { ok: false, errors } : { ok: true, events }
  }
}

export function makeMetricValidator(limits: EventLimits): BatchValidator<MetricEvent> {
  return makeBatchValidator(metricEventSchema(limits.maxDims, limits.maxDimValueLength), limits, (item, n) => {
    if (!Number.isFinite(item.value)) throw new Refusal('/value', 'must be a finite number')
    const ts = n.time(item.ts, '/ts')
    return { id: item.id, source: item.source, metric: item.metric, ts, value: item.value, dims: n.dims(item.dims) }
  })
}

export function makeReportValidator(limits: EventLimits): BatchValidator<ReportEvent> {
  return makeBatchValidator(reportEventSchema(limits.maxDims, limits.maxDimValueLength), limits, (item, n) => {
    if (item.status === 'rated' && item.rating === undefined) throw new Refusal('/rating', 'is required when status is rated')
    if (item.status !== 'rated' && item.rating !== undefined) throw new Refusal('/rating', 'is only allowed when status is rated')
    const event: ReportEvent = { id: item.id, source: item.source, service: item.service, case: item.case, status: item.status, ts: n.time(item.ts, '/ts'), dims: n.dims(item.dims) }
    if (item.due !== undefined) event.due = n.time(item.due, '/due')
    if (item.rating !== undefined) event.rating = item.rating
    return event
  })
}
