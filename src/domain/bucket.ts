import { DDSketch } from '@datadog/sketches-js'
import { decodeSketch, encodeSketch, encodeValues } from './sketch-codec.js'

/** Relative accuracy of every quantile Lantern reports: p50/p95/p99 are within 1% of the true value. */
export const SKETCH_ACCURACY = 0.01

/**
 * The mergeable state of one aggregate bucket. Mean and m2 (sum of squared deviations) follow
 * Welford/Chan, so merging buckets of many series gives the exact variance of the union, never an
 * average of averages.
 */
/** The exact part of a bucket: everything but the quantile sketch. */
export interface Moments {
  count: number
  sum: number
  min: number
  max: number
  mean: number
  m2: number
  /** The sample with the latest event time (-Infinity when empty). */
  lastTs: number
  last: number
}

export function emptyMoments(): Moments {
  return { count: 0, sum: 0, min: Infinity, max: -Infinity, mean: 0, m2: 0, lastTs: -Infinity, last: 0 }
}

/** Welford's update: the same additions in the same order give the same bits. */
export function addMoment(b: Moments, value: number): void {
  b.count += 1
  b.sum += value
  if (value < b.min) b.min = value
  if (value > b.max) b.max = value
  const delta = value - b.mean
  b.mean += delta / b.count
  b.m2 += delta * (value - b.mean)
}

export interface BucketState extends Moments {
  sketch: DDSketch
}

export interface BucketSummary {
  count: number
  sum: number
  min: number | null
  max: number | null
  mean: number | null
  stddev: number | null
  p50: number | null
  p95: number | null
  p99: number | null
  /** Value of the sample with the latest event time. */
  last: number | null
  lastTs: string | null
}

export function emptyBucket(): BucketState {
  return { ...emptyMoments(), sketch: new DDSketch({ relativeAccuracy: SKETCH_ACCURACY }) }
}

export function addValue(b: BucketState, value: number): void {
  addMoment(b, value)
  b.sketch.accept(value)
}

/** Keeps the latest sample by event time; at equal times the later-arriving one wins. */
export function observeLast(b: Moments, ts: number, value: number): void {
  if (ts >= b.lastTs) {
    b.lastTs = ts
    b.last = value
  }
}

/** Folds `other` into `into`; `other` is left untouched. */
export function mergeInto(into: BucketState, other: BucketState): void {
  if (other.count === 0) return
  if (other.lastTs > into.lastTs) {
    into.lastTs = other.lastTs
    into.last = other.last
  }
  if (into.count === 0) {
    into.count = other.count
    into.sum = other.sum
    into.min = other.min
    into.max = other.max
    into.mean = other.mean
    into.m2 = other.m2
    mergeSketch(into.sketch, other.sketch)
    return
  }
  const n = into.count + other.count
  const delta = other.mean - into.mean
  into.m2 += other.m2 + (delta * delta * into.count * other.count) / n
  into.mean += (delta * other.count) / n
  into.count = n
  into.sum += other.sum
  if (other.min < into.min) into.min = other.min
  if (other.max > into.max) into.max = other.max
  mergeSketch(into.sketch, other.sketch)
}

/**
 * DDSketch.merge in @datadog/sketches-js 2.1 drops the other sketch's negative values (it merges
 * the positive store only), which skews quantiles of any series that goes below zero; this merges
 * both stores and the zero count.
 */
function mergeSketch(into: DDSketch, other: DDSketch): void {
  if (other.count === 0) return
  into.store.merge(other.store)
  into.negativeStore.merge(other.negativeStore)
  into.zeroCount += other.zeroCount
  into.count += other.count
  into.sum += other.sum
  if (other.min < into.min) into.min = other.min
  if (other.max > into.max) into.max = other.max
}

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v))

/** Quantiles are clamped to the exact min and max, which the sketch only approximates. */
export function summarize(b: BucketState): BucketSummary {
  if (b.count === 0) {
    return { count: 0, sum: 0, min: null, max: null, mean: null, stddev: null, p50: null, p95: null, p99: null, last: null, lastTs: null }
  }
  const q = (p: number): number => clamp(b.sketch.getValueAtQuantile(p), b.min, b.max)
  return {
    count: b.count,
    sum: b.sum,
    min: b.min,
    max: b.max,
    mean: b.mean,
    // Population standard deviation over every sample in the bucket.
    stddev: Math.sqrt(Math.max(0, b.m2 / b.count)),
    p50: q(0.5),
    p95: q(0.95),
    p99: q(0.99),
    last: Number.isFinite(b.lastTs) ? b.last : null,
    lastTs: Number.isFinite(b.lastTs) ? new Date(b.lastTs).toISOString() : null,
  }
}

export interface StoredBucket {
  count: number
  sum: number
  min: number
  max: number
  mean: number
  m2: number
  sketch: Uint8Array
  lastTs: number | null
  last: number | null
}

export function toStored(b: BucketState): StoredBucket {
  const hasLast = Number.isFinite(b.lastTs)
  return { count: b.count, sum: b.sum, min: b.min, max: b.max, mean: b.mean, m2: b.m2, sketch: encodeSketch(b.sketch), lastTs: hasLast ? b.lastTs : null, last: hasLast ? b.last : null }
}

/**
 * What toStored gives for a new bucket fed `values` in order and then observeLast(lastTs, last),
 * to the last bit, without building its sketch (bulk imports create many small new buckets).
 */
export function storedOfValues(values: readonly number[], lastTs: number, last: number): StoredBucket {
  const m = emptyMoments()
  for (const v of values) addMoment(m, v)
  observeLast(m, lastTs, last)
  return { count: m.count, sum: m.sum, min: m.min, max: m.max, mean: m.mean, m2: m.m2, sketch: encodeValues(values), lastTs: m.lastTs, last: m.last }
}

export function fromStored(s: StoredBucket): BucketState {
  const sketch = decodeSketch(s.sketch, SKETCH_ACCURACY)
  // The encoded form carries bins only; quantile ranks need the count, so restore the summary.
  sketch.count = s.count
  sketch.sum = s.sum
  sketch.min = s.min
  sketch.max = s.max
  return { count: s.count, sum: s.sum, min: s.min, max: s.max, mean: s.mean, m2: s.m2, sketch, lastTs: s.lastTs ?? -Infinity, last: s.last ?? 0 }
}
