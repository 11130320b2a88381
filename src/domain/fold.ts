import { bucketStart, WINDOWS, WINDOW_MS } from './windows.js'
import { seriesKey } from './series-key.js'
import type { MetricEvent } from '../schemas/metric-event.js'

export interface BucketValues {
  widthS: number
  startMs: number
  values: number[]
  /** The batch's latest sample by event time (the later in log order at equal times). */
  lastTs: number
  last: number
  /** Some value came from the live lane (false: the import lane only). */
  live: boolean
}

export interface SeriesBatch {
  key: string
  metric: string
  dims: Record<string, string>
  firstTs: number
  lastTs: number
  events: number
  lateEvents: number
  lastLateTs: number | null
  /** Values per tumbling bucket, keyed `${widthS}:${startMs}`. */
  buckets: Map<string, BucketValues>
  /** The on-time samples in log order, for the detectors and rules (which read a series forward in event time). */
  samples: { ts: number; value: number; id: string }[]
}

export interface FoldResult {
  series: Map<string, SeriesBatch>
  watermarkMs: number
  events: number
  lateEvents: number
  /** Events of the batch that came through the import lane. */
  importedEvents: number
}

/** A run of a batch's events from one lane, in log order. */
export interface FoldSegment {
  events: readonly MetricEvent[]
  /**
   * From the import lane (history): every event lands in its buckets whatever its age, never
   * late, and the watermark does not move. Imported samples are not handed to the detectors and
   * rules (`samples`): history raises no anomaly flag and fires no alert.
   */
  imported: boolean
}

export interface FoldSettings {
  latenessMs: number
  dayOffsetMs: number
}

/**
 * The lateness rule, in log order: an event is late when its time is more than the allowed
 * lateness behind the partition's watermark (the newest on-time event time before it). Calls
 * `visit` for every event and returns the new watermark. The drain's fold and the audit's replay
 * both judge through this one function.
 */
export function judgeLateness(
  events: readonly MetricEvent[],
  watermarkMs: number,
  latenessMs: number,
  visit: (e: MetricEvent, late: boolean) => void,
  /** Events of the import lane: none is late and the watermark stays where it is. */
  imported = false,
): number {
  if (imported) {
    for (const e of events) visit(e, false)
    return watermarkMs
  }
  let watermark = watermarkMs
  for (const e of events) {
    const late = e.ts < watermark - latenessMs
    if (!late && e.ts > watermark) watermark = e.ts
    visit(e, late)
  }
  return watermark
}

/**
 * Groups a batch, in log order, into per-series bucket values; a late event is counted on its
 * series and touches no bucket. Pure: same input, same output, which is what lets a re-run batch
 * give the same state.
 */
export function foldBatch(events: readonly MetricEvent[], watermarkMs: number, s: FoldSettings): FoldResult {
  return foldSegments([{ events, imported: false }], watermarkMs, s)
}

/** foldBatch over a batch made of live and imported runs, in log order (the order they are archived). */
export function foldSegments(segments: readonly FoldSegment[], watermarkMs: number, s: FoldSettings): FoldResult {
  const series = new Map<string, SeriesBatch>()
  let late = 0
  let total = 0
  let imported = 0
  let watermark = watermarkMs
  let importing = false
  const visit = (e: MetricEvent, isLate: boolean): void => {
    const key = seriesKey(e.metric, e.dims)
    let sb = series.get(key)
    if (!sb) {
      sb = { key, metric: e.metric, dims: e.dims, firstTs: e.ts, lastTs: e.ts, events: 0, lateEvents: 0, lastLateTs: null, buckets: new Map(), samples: [] }
      series.set(key, sb)
    }
    sb.events += 1
    if (e.ts < sb.firstTs) sb.firstTs = e.ts
    if (e.ts > sb.lastTs) sb.lastTs = e.ts
    if (isLate) {
      sb.lateEvents += 1
      late += 1
      if (sb.lastLateTs === null || e.ts > sb.lastLateTs) sb.lastLateTs = e.ts
      return
    }
    if (!importing) sb.samples.push({ ts: e.ts, value: e.value, id: e.id })
    for (const w of WINDOWS) {
      const startMs = bucketStart(e.ts, w, s.dayOffsetMs)
      const widthS = WINDOW_MS[w] / 1000
      const bk = `${widthS}:${startMs}`
      let bv = sb.buckets.get(bk)
      if (!bv) sb.buckets.set(bk, (bv = { widthS, startMs, values: [], lastTs: e.ts, last: e.value, live: false }))
      if (!importing) bv.live = true
      bv.values.push(e.value)
      if (e.ts >= bv.lastTs) {
        bv.lastTs = e.ts
        bv.last = e.value
      }
    }
  }
  for (const seg of segments) {
    importing = seg.imported
    watermark = judgeLateness(seg.events, watermark, s.latenessMs, visit, seg.imported)
    total += seg.events.length
    if (seg.imported) imported += seg.events.length
  }
  return { series, watermarkMs: watermark, events: total, lateEvents: late, importedEvents: imported }
}
