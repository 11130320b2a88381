/**
 * Scoring of flags against labeled anomalies.
 *
 * Event-window scoring: an anomaly counts as detected when a flag falls inside its sample range
 * or within a short tolerance after it (TOLERANCE); the delay is from the anomaly's first sample to
 * the first such flag. Flags outside every window are false positives, and a run of consecutive
 * such flags counts as one false-positive episode. Flags during the probation period (the first
 * 15% of a series, at most 750 samples, as in NAB) are not scored; no anomaly starts there.
 *
 * NAB-style score: the Numenta Anomaly Benchmark's standard profile on windows of 10% of the
 * series length divided by the number of anomalies, centred on each anomaly's start: the earliest
 * flag in a window earns up to +1 (less the later it comes), every flag outside a window costs up
 * to 0.11 (less right after a window), every missed window costs 1. Normalized so that flagging
 * nothing is 0 and perfect is 100.
 */
import type { Anomaly } from './series.js'

export interface SeriesOutcome {
  events: number
  detected: number
  delays: number[]
  fpEpisodes: number
  fpFlags: number
  scored: number
  nabRaw: number
  nabNull: number
  nabPerfect: number
}

export function tolerance(a: Anomaly): number {
  return Math.min(12, Math.max(3, Math.ceil(0.1 * (a.end - a.start + 1))))
}

export function probation(n: number): number {
  return Math.min(750, Math.floor(0.15 * n))
}

const scaledSigmoid = (x: number): number => (x > 3 ? -1 : 2 / (1 + Math.exp(5 * x)) - 1)

export function scoreSeries(n: number, anomalies: readonly Anomaly[], flags: readonly boolean[]): SeriesOutcome {
  const from = probation(n)
  // event windows
  const inWindow = new Uint8Array(n)
  for (const a of anomalies) {
    const end = Math.min(n - 1, a.end + tolerance(a))
    for (let i = a.start; i <= end; i++) inWindow[i] = 1
  }
  let detected = 0
  const delays: number[] = []
  for (const a of anomalies) {
    const end = Math.min(n - 1, a.end + tolerance(a))
    for (let i = a.start; i <= end; i++) {
      if (flags[i]) {
        detected++
        delays.push(i - a.start)
        break
      }
    }
  }
  let fpEpisodes = 0
  let fpFlags = 0
  let prevFp = false
  for (let i = from; i < n; i++) {
    const fp = flags[i] === true && inWindow[i] === 0
    if (fp) {
      fpFlags++
      if (!prevFp) fpEpisodes++
    }
    prevFp = fp
  }
  // NAB standard profile
  const tpW = 1
  const fpW = 0.11
  const fnW = 1
  const windows: Array<[number, number]> = []
  if (anomalies.length > 0) {
    const size = Math.max(1, Math.floor((0.1 * n) / anomalies.length))
    for (const a of anomalies) {
      const s = Math.max(from, a.start - Math.floor(size / 2))
      const e = Math.min(n - 1, s + size - 1)
      const last = windows[windows.length - 1]
      if (last && s <= last[1]) last[1] = Math.max(last[1], e)
      else windows.push([s, e])
    }
  }
  let raw = 0
  let perfect = 0
  let w = 0
  let prevEnd = -1
  let prevWidth = 0
  const hit = new Array<boolean>(windows.length).fill(false)
  for (const [s, e] of windows) perfect += tpW * scaledSigmoid(-(e - s + 1) / (e - s + 1))
  for (let i = from; i < n; i++) {
    while (w < windows.length && i > windows[w]![1]) {
      prevEnd = windows[w]![1]
      prevWidth = windows[w]![1] - windows[w]![0] + 1
      w++
    }
    if (!flags[i]) continue
    const win = windows[w]
    if (win && i >= win[0]) {
      if (!hit[w]) {
        hit[w] = true
        raw += tpW * scaledSigmoid(-(win[1] - i + 1) / (win[1] - win[0] + 1))
      }
    } else if (prevEnd < 0) {
      raw -= fpW
    } else {
      raw += fpW * scaledSigmoid((i - prevEnd) / Math.max(1, prevWidth - 1))
    }
  }
  for (const h of hit) if (!h) raw -= fnW
  return {
    events: anomalies.length,
    detected,
    delays,
    fpEpisodes,
    fpFlags,
    scored: n - from,
    nabRaw: raw,
    nabNull: -fnW * windows.length,
    nabPerfect: perfect,
  }
}

export interface Summary {
  events: number
  detected: number
  fpEpisodes: number
  fpFlags: number
  samples: number
  precision: number
  recall: number
  f1: number
  meanDelaySamples: number | null
  meanDelayMinutes: number | null
  fpPer1000: number
  fpFlagsPer1000: number
  nab: number | null
}

export function summarize(outcomes: ReadonlyArray<SeriesOutcome & { intervalMs: number }>): Summary {
  let events = 0
  let detected = 0
  let fpEpisodes = 0
  let fpFlags = 0
  let samples = 0
  let delaySum = 0
  let delayMinSum = 0
  let delayN = 0
  let raw = 0
  let nul = 0
  let perfect = 0
  for (const o of outcomes) {
    events += o.events
    detected += o.detected
    fpEpisodes += o.fpEpisodes
    fpFlags += o.fpFlags
    samples += o.scored
    for (const d of o.delays) {
      delaySum += d
      delayMinSum += (d * o.intervalMs) / 60_000
      delayN++
    }
    raw += o.nabRaw
    nul += o.nabNull
    perfect += o.nabPerfect
  }
  const precision = detected + fpEpisodes === 0 ? 1 : detected / (detected + fpEpisodes)
  const recall = events === 0 ? 1 : detected / events
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall)
  return {
    events,
    detected,
    fpEpisodes,
    fpFlags,
    samples,
    precision,
    recall,
    f1,
    meanDelaySamples: delayN ? delaySum / delayN : null,
    meanDelayMinutes: delayN ? delayMinSum / delayN : null,
    fpPer1000: (1000 * fpEpisodes) / Math.max(1, samples),
    fpFlagsPer1000: (1000 * fpFlags) / Math.max(1, samples),
    nab: perfect - nul > 0 ? (100 * (raw - nul)) / (perfect - nul) : null,
  }
}
