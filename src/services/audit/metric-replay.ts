import type { MetricEvent } from '../../schemas/metric-event.js'
import { judgeLateness, type FoldSettings } from '../../domain/fold.js'
import { WINDOWS, WINDOW_MS, bucketStart } from '../../domain/windows.js'
import { seriesKey } from '../../domain/series-key.js'
import { addMoment, emptyMoments, observeLast, type Moments } from '../../domain/bucket.js'
import { scanMetricLine, type ScannedLine } from './metric-lines.js'
import { parseEntry } from './parse-entry.js'

/** A re-derived bucket: its moments and its key, `${seriesKey}|${widthS}|${startMs}`. */
export interface DerivedBucket extends Moments {
  key: string
}

/**
 * A copy of a string that keeps no other string alive: V8 may represent a slice as a view into
 * its parent, and a key kept for the whole replay must not hold on to the entry it came from.
 * Slicing a concatenation first flattens it into a fresh string.
 */
const detached = (text: string): string => ` ${text}`.slice(1)

/** Bucket widths in seconds, in WINDOWS order. */
const WIDTHS_S = WINDOWS.map((w) => WINDOW_MS[w] / 1000)

/**
 * One archived sample as the replay sees it: time, value and where its series key is. A sample
 * read by the fast scan points into its entry's text; one that went through JSON.parse keeps the
 * parsed event, whose fields are used exactly as the parse gave them.
 */
class Sample implements ScannedLine {
  ts = 0
  value = 0
  text = ''
  metricStart = 0
  metricEnd = 0
  dimsStart = 0
  dimsEnd = 0
  event: MetricEvent | null = null

  static of(e: MetricEvent): Sample {
    const s = new Sample()
    s.ts = e.ts
    s.value = e.value
    s.event = e
    return s
  }
}

/** judgeLateness reads only `ts`; a Sample has it, under the same name and meaning. */
const judge = (samples: readonly Sample[], watermarkMs: number, latenessMs: number, visit: (s: Sample, late: boolean) => void, imported: boolean): number =>
  judgeLateness(samples as unknown as readonly MetricEvent[], watermarkMs, latenessMs, visit as unknown as (e: MetricEvent, late: boolean) => void, imported)

interface SeriesBuckets {
  key: string
  /** Per window (in WINDOWS order): buckets by start. */
  byStart: Map<number, DerivedBucket>[]
}

/** The series of one metric by the text of their dims, for scanned lines. */
interface MetricSeries {
  metric: string
  byDims: Map<string, SeriesBuckets>
}

/**
 * The audit's re-derivation of aggregate buckets from archived metric entries, fed in log order
 * (partition, then sequence). The same fold as before, without its per-event overhead: each
 * partition's watermark carries the lateness rule (judgeLateness) from entry to entry, and every
 * on-time event adds its value, in log order, to each of its 1m/5m/1h/1d buckets that start in
 * [fromMs, toMs). Buckets are kept per series and window by start, and listed in the order they
 * were first touched.
 */
export class MetricReplay {
  /** Events read so far. */
  events = 0
  private readonly watermarks = new Map<number, number>()
  /** By series key (metric + JSON.stringify(dims)): the one place a series' buckets live. */
  private readonly series = new Map<string, SeriesBuckets>()
  /** A shortcut to the same series for scanned lines, without building their key. */
  private readonly byMetric = new Map<string, MetricSeries>()
  private lastMetric: MetricSeries | undefined
  private readonly created: DerivedBucket[] = []
  /** Samples are reused from entry to entry: an entry is folded before the next is read. */
  private readonly pool: Sample[] = []
  private readonly place = (s: Sample, late: boolean): void => {
    if (!late) this.fold(s)
  }

  constructor(
    private readonly fromMs: number,
    private readonly toMs: number,
    private readonly settings: FoldSettings,
  ) {}

  /**
   * Folds one archived entry (the NDJSON text of the `events` column) of a partition; `imported`
   * for an entry of the import lane (history: never late, the watermark stays).
   */
  addEntry(partition: number, text: string, imported = false): void {
    const samples = this.read(text)
    const next = judge(samples, this.watermarks.get(partition) ?? 0, this.settings.latenessMs, this.place, imported)
    this.watermarks.set(partition, next)
    this.events += samples.length
  }

  /** Every re-derived bucket, in the order it was first touched. */
  buckets(): readonly DerivedBucket[] {
    return this.created
  }

  /**
   * The bucket whose key is `${seriesKey}|${widthS}|${startMs}`, if one was derived. Neither a
   * width nor a start has a `|` in its text, so the key names exactly one (series, width, start),
   * and numbers whose text is the same are the numbers a map takes as the same.
   */
  find(seriesKey: string, widthS: number, startMs: number): DerivedBucket | undefined {
    const w = WIDTHS_S.indexOf(widthS)
    return w === -1 ? undefined : this.series.get(seriesKey)?.byStart[w]?.get(startMs)
  }

  /** The entry's events, as JSON.parse of the whole entry would give them (and throwing as it would). */
  private read(text: string): Sample[] {
    const samples: Sample[] = []
    for (let start = 0, i = 0; ; i++) {
      const nl = text.indexOf('\n', start)
      const end = nl === -1 ? text.length : nl
      const sample = this.pool[i] ?? (this.pool[i] = new Sample())
      if (!scanMetricLine(text, start, end, sample)) {
        // Not the usual shape: parse the whole entry, exactly as before. The lines read so far
        // are single JSON objects, so they are the parse's first events.
        const parsed = parseEntry<MetricEvent>(text)
        for (let j = samples.length; j < parsed.length; j++) samples.push(Sample.of(parsed[j] as MetricEvent))
        return samples
      }
      sample.text = text
      sample.event = null
      samples.push(sample)
      if (nl === -1) return samples
      start = nl + 1
    }
  }

  private fold(s: Sample): void {
    let series: SeriesBuckets | undefined
    for (let w = 0; w < WINDOWS.length; w++) {
      const window = WINDOWS[w] as (typeof WINDOWS)[number]
      const startMs = bucketStart(s.ts, window, this.settings.dayOffsetMs)
      if (startMs < this.fromMs || startMs >= this.toMs) continue
      series ??= s.event ? this.seriesOf(seriesKey(s.event.metric, s.event.dims)) : this.seriesOfLine(s)
      const byStart = series.byStart[w] as Map<number, DerivedBucket>
      let b = byStart.get(startMs)
      if (!b) {
        // A start is a number: its text in the key names it exactly (0 and -0 aside, which the
        // map and the text both take as one).
        b = emptyMoments() as DerivedBucket
        b.key = `${series.key}|${WIDTHS_S[w]}|${startMs}`
        byStart.set(startMs, b)
        this.created.push(b)
      }
      addMoment(b, s.value)
      observeLast(b, s.ts, s.value)
    }
  }

  private seriesOf(key: string): SeriesBuckets {
    let series = this.series.get(key)
    if (!series) {
      const own = detached(key)
      this.series.set(own, (series = { key: own, byStart: WINDOWS.map(() => new Map<number, DerivedBucket>()) }))
    }
    return series
  }

  /**
   * The series of a scanned line: its key is the metric's text followed by the dims' text, and a
   * scanned dims text is one JSON object, so (metric, dims) names the key exactly.
   */
  private seriesOfLine(s: Sample): SeriesBuckets {
    const { text, metricStart, metricEnd } = s
    let m = this.lastMetric
    if (m === undefined || m.metric.length !== metricEnd - metricStart || !text.startsWith(m.metric, metricStart)) {
      const metric = text.slice(metricStart, metricEnd)
      m = this.byMetric.get(metric)
      if (!m) {
        const own = detached(metric)
        this.byMetric.set(own, (m = { metric: own, byDims: new Map() }))
      }
      this.lastMetric = m
    }
    const dims = text.slice(s.dimsStart, s.dimsEnd)
    let series = m.byDims.get(dims)
    if (!series) {
      series = this.seriesOf(m.metric + dims)
      m.byDims.set(series.key.slice(m.metric.length), series)
    }
    return series
  }
}
