import { Ajv, type ValidateFunction, type ErrorObject } from 'ajv'
import { metricEventSchema, type MetricEvent, type MetricEventInput } from '../schemas/metric-event.js'
import { canonicalDims } from '../domain/series-key.js'
import { parseIsoInstant } from '../domain/timestamp.js'
import type { EventError } from '../errors.js'
import { UnparsableLine } from './parse-body.js'

/** Keys that would reach Object.prototype in careless consumers; refused outright. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

export interface MetricLimits {
  maxDims: number
  maxDimValueLength: number
  maxFutureMs: number
}

export type ValidationResult = { ok: true; events: MetricEvent[] } | { ok: false; errors: EventError[] }

function describe(err: ErrorObject): EventError['reason'] {
  switch (err.keyword) {
    case 'additionalProperties':
      return `unknown field "${String(err.params.additionalProperty)}"`
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

/** Compiles once; the returned function validates and normalises a whole batch without I/O. */
export function makeMetricValidator(limits: MetricLimits): (items: readonly unknown[], now: number) => ValidationResult {
  const ajv = new Ajv({ allErrors: false, strict: true })
  const check: ValidateFunction<MetricEventInput> = ajv.compile(metricEventSchema(limits.maxDims, limits.maxDimValueLength))

  const normalise = (item: unknown, index: number, now: number): MetricEvent | EventError => {
    if (item instanceof UnparsableLine) return { index, path: '', reason: item.reason }
    if (!check(item)) {
      const err = (check.errors ?? [])[0]
      if (!err) return { index, path: '', reason: 'invalid event' }
      return { index, path: pathOf(err), reason: describe(err) }
    }
    if (!Number.isFinite(item.value)) return { index, path: '/value', reason: 'must be a finite number' }
    const dims = item.dims ?? {}
    for (const k of Object.keys(dims)) {
      if (FORBIDDEN_KEYS.has(k)) return { index, path: `/dims/${k}`, reason: `"${k}" is not allowed as a dimension name` }
    }
    let ts: number
    if (typeof item.ts === 'number') {
      ts = item.ts
    } else {
      const parsed = parseIsoInstant(item.ts)
      if (typeof parsed === 'string') return { index, path: '/ts', reason: parsed }
      ts = parsed
    }
    if (ts > now + limits.maxFutureMs) {
      return { index, path: '/ts', reason: `is ${Math.round((ts - now) / 1000)} s ahead of the server clock (at most ${limits.maxFutureMs / 1000} s allowed)` }
    }
    return { id: item.id, source: item.source, metric: item.metric, ts, value: item.value, dims: canonicalDims(dims) }
  }

  return (items, now) => {
    const events: MetricEvent[] = []
    const errors: EventError[] = []
    items.forEach((item, index) => {
      const r = normalise(item, index, now)
      if ('reason' in r) errors.push(r)
      else events.push(r)
    })
    return errors.length > 0 ? { ok: false, errors } : { ok: true, events }
  }
}
