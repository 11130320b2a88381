/**
 * Labeled synthetic series for the anomaly detectors. Each family imitates a kind of real series
 * (a plant sensor, server metrics, a shop's orders, a city's traffic) and injects the anomalies a
 * person would mark on a chart; the label is the sample range of the anomaly. Everything is
 * seeded: the same seed gives the same series.
 */
import { Rng } from './rng.js'

export interface Anomaly {
  /** First and last sample index (inclusive) of the anomaly in the series' arrays. */
  start: number
  end: number
  kind: string
}

export interface LabeledSeries {
  name: string
  family: Family
  intervalMs: number
  ts: number[]
  values: number[]
  anomalies: Anomaly[]
}

export const FAMILIES = [
  'spikes',
  'dips',
  'level_shift',
  'drift',
  'seasonal_daily',
  'noise',
  'missing_data',
  'business',
  'sensor_rw',
  'counts',
  'quantized',
  'periodic_spikes',
] as const
export type Family = (typeof FAMILIES)[number]

const MIN = 60_000
const HOUR = 60 * MIN
const DAY = 24 * HOUR
/** Monday 2026-01-05 00:00 UTC. */
const START = Date.UTC(2026, 0, 5)

interface Draft {
  intervalMs: number
  values: number[]
  anomalies: Anomaly[]
  /** Sample indices to drop (missing data). */
  missing?: Set<number>
}

/** Picks `count` non-overlapping anomaly positions of the given lengths in [from, to). */
function positions(rng: Rng, count: number, from: number, to: number, length: number, gap: number): number[] {
  const out: number[] = []
  for (let tries = 0; out.length < count && tries < 10_000; tries++) {
    const p = rng.int(from, to - length - 1)
    if (out.every((q) => Math.abs(q - p) > length + gap)) out.push(p)
  }
  return out.sort((a, b) => a - b)
}

/** AR(1) noise with marginal standard deviation sigma. */
function ar1(rng: Rng, n: number, phi: number, sigma: number): number[] {
  const out = new Array<number>(n)
  const innov = sigma * Math.sqrt(1 - phi * phi)
  let x = sigma * rng.normal()
  for (let i = 0; i < n; i++) {
    x = phi * x + innov * rng.normal()
    out[i] = x
  }
  return out
}

const hourOfDay = (i: number, intervalMs: number): number => (((i * intervalMs) % DAY) + DAY) % DAY / HOUR
const dayIndex = (i: number, intervalMs: number): number => Math.floor((i * intervalMs) / DAY)
const bump = (h: number, centre: number, width: number): number => Math.exp(-0.5 * ((h - centre) / width) ** 2)

function spikes(rng: Rng, dips: boolean): Draft {
  const n = 4032
  const sigma = 2
  const values = ar1(rng, n, 0.6, sigma).map((v) => 100 + v)
  const anomalies: Anomaly[] = []
  for (const p of positions(rng, 6, Math.floor(n * 0.2), n, 3, 150)) {
    const len = dips ? rng.int(1, 3) : 1
    const mag = rng.uniform(6, 12) * sigma * (dips ? -1 : rng.next() < 0.8 ? 1 : -1)
    for (let k = 0; k < len; k++) values[p + k] = values[p + k]! + mag
    anomalies.push({ start: p, end: p + len - 1, kind: dips ? 'dip' : 'spike' })
  }
  return { intervalMs: 5 * MIN, values, anomalies }
}

function levelShift(rng: Rng): Draft {
  const n = 4032
  const sigma = 1.5
  const values = ar1(rng, n, 0.5, sigma).map((v) => 40 + v)
  const anomalies: Anomaly[] = []
  for (const p of positions(rng, 3, Math.floor(n * 0.2), n, 12, 400)) {
    const mag = rng.uniform(5, 10) * sigma * rng.sign()
    for (let i = p; i < n; i++) values[i] = values[i]! + mag
    anomalies.push({ start: p, end: p + 11, kind: 'level_shift' })
  }
  return { intervalMs: 5 * MIN, values, anomalies }
}

function drift(rng: Rng): Draft {
  const n = 4032
  const sigma = 1
  const values = ar1(rng, n, 0.3, sigma).map((v) => 20 + v)
  const anomalies: Anomaly[] = []
  const len = rng.int(150, 400)
  const [p] = positions(rng, 1, Math.floor(n * 0.3), n - len - 200, len, 0)
  const to = rng.uniform(6, 10) * sigma * rng.sign()
  for (let i = p!; i < n; i++) values[i] = values[i]! + to * Math.min(1, (i - p!) / len)
  anomalies.push({ start: p!, end: p! + len - 1, kind: 'drift' })
  return { intervalMs: 5 * MIN, values, anomalies }
}

/** A city traffic count: night low, morning and evening peaks, day-to-day variation. */
function seasonalDaily(rng: Rng): Draft {
  const n = 4032
  const iv = 5 * MIN
  const dayAmp: number[] = Array.from({ length: 15 }, () => 1 + 0.08 * rng.normal())
  const shape = (i: number): number => {
    const h = hourOfDay(i, iv)
    const amp = dayAmp[dayIndex(i, iv)]!
    return 20 + amp * (30 * bump(h, 8.5, 1.2) + 45 * bump(h, 18, 1.6) + 15 * bump(h, 13, 3))
  }
  const noise = ar1(rng, n, 0.4, 1)
  const values = Array.from({ length: n }, (_, i) => shape(i) * (1 + 0.03 * noise[i]!) + 1.5 * rng.normal())
  const anomalies: Anomaly[] = []
  const perDay = DAY / iv
  const from = 5 * perDay
  const days = positions(rng, 4, 4, 14, 1, 0)
  const kinds = ['spike', 'missing_peak', 'night_surge', 'dip']
  days.forEach((d, j) => {
    const kind = kinds[j % kinds.length]!
    const day0 = Math.max(from, d * perDay)
    if (kind === 'spike') {
      const p = day0 + rng.int(0, perDay - 1)
      values[p] = values[p]! + rng.uniform(15, 30)
      anomalies.push({ start: p, end: p, kind })
    } else if (kind === 'missing_peak') {
      // the evening peak does not come: the value stays at the afternoon level for two hours
      const p = day0 + Math.round((17 * HOUR) / iv)
      const len = Math.round((2 * HOUR) / iv)
      for (let i = p; i < p + len; i++) values[i] = 20 + 15 * bump(13, 13, 3) * 0.6 + 1.5 * rng.normal()
      anomalies.push({ start: p, end: p + len - 1, kind })
    } else if (kind === 'night_surge') {
      const p = day0 + Math.round((rng.uniform(1, 4) * HOUR) / iv)
      const len = Math.round(HOUR / iv)
      for (let i = p; i < p + len; i++) values[i] = values[i]! + 25
      anomalies.push({ start: p, end: p + len - 1, kind })
    } else {
      const p = day0 + Math.round((rng.uniform(9, 16) * HOUR) / iv)
      values[p] = values[p]! - rng.uniform(20, 30)
      anomalies.push({ start: p, end: p, kind })
    }
  })
  anomalies.sort((a, b) => a.start - b.start)
  return { intervalMs: iv, values, anomalies }
}

function noise(rng: Rng): Draft {
  const n = 4032
  const values = ar1(rng, n, 0.2, 1).map((v) => 10 + v)
  return { intervalMs: 5 * MIN, values, anomalies: [] }
}

/** A sensor that drops out for hours at a time: gaps, a mild daily cycle, spikes and a shift. */
function missingData(rng: Rng): Draft {
  const n = 4032
  const iv = 5 * MIN
  const sigma = 1
  const base = ar1(rng, n, 0.5, sigma)
  const values = base.map((v, i) => 30 + 2 * Math.sin((2 * Math.PI * hourOfDay(i, iv)) / 24) + v)
  const missing = new Set<number>()
  for (const g of positions(rng, 5, Math.floor(n * 0.1), n, 144, 100)) {
    const len = rng.int(12, 144)
    for (let i = g; i < g + len; i++) missing.add(i)
  }
  const anomalies: Anomaly[] = []
  const spots = positions(rng, 4, Math.floor(n * 0.2), n, 12, 200).filter((p) => ![...Array(12).keys()].some((k) => missing.has(p + k)))
  spots.forEach((p, j) => {
    if (j === spots.length - 1) {
      const mag = rng.uniform(6, 9) * sigma * rng.sign()
      for (let i = p; i < n; i++) values[i] = values[i]! + mag
      anomalies.push({ start: p, end: p + 11, kind: 'level_shift' })
    } else {
      values[p] = values[p]! + rng.uniform(7, 12) * sigma * rng.sign()
      anomalies.push({ start: p, end: p, kind: 'spike' })
    }
  })
  return { intervalMs: iv, values, anomalies, missing }
}

/** Orders per 5 minutes of a shop: business hours, quiet weekends, Poisson counts with heavy-tailed bursts. */
function business(rng: Rng): Draft {
  const n = 4032 * 2
  const iv = 5 * MIN
  const rate = (i: number): number => {
    const h = hourOfDay(i, iv)
    const dow = dayIndex(i, iv) % 7 // 0 = Monday
    const weekday = dow < 5 ? 1 : 0.45
    return 8 + weekday * (60 * bump(h, 11, 2.5) + 45 * bump(h, 15.5, 2) + 25 * bump(h, 20, 1.5))
  }
  const values = Array.from({ length: n }, (_, i) => {
    const heavy = Math.min(0.6, Math.max(-0.5, 0.1 * rng.studentT(3)))
    return rng.poisson(rate(i) * (1 + heavy))
  })
  const anomalies: Anomaly[] = []
  const perDay = DAY / iv
  const kinds = ['outage', 'surge', 'outage', 'spike']
  positions(rng, 4, 8 * perDay, n, 24, 300).forEach((p0, j) => {
    const kind = kinds[j]!
    // move the event into business hours (10:00-16:00), where it matters and shows
    const p = Math.floor(p0 / perDay) * perDay + Math.round((rng.uniform(10, 16) * HOUR) / iv)
    if (kind === 'outage') {
      const len = rng.int(6, 18)
      for (let i = p; i < p + len; i++) values[i] = rng.poisson(rate(i) * 0.05)
      anomalies.push({ start: p, end: p + len - 1, kind })
    } else if (kind === 'surge') {
      const len = 12
      for (let i = p; i < p + len; i++) values[i] = rng.poisson(rate(i) * 2.2)
      anomalies.push({ start: p, end: p + len - 1, kind })
    } else {
      values[p] = values[p]! + rng.uniform(150, 250)
      anomalies.push({ start: p, end: p, kind })
    }
  })
  anomalies.sort((a, b) => a.start - b.start)
  return { intervalMs: iv, values, anomalies }
}

/** A machine temperature: slowly wandering level, quantized readings, failures that drop or ramp. */
function sensorRw(rng: Rng): Draft {
  const n = 4032
  const iv = 5 * MIN
  const values = new Array<number>(n)
  let level = 0
  for (let i = 0; i < n; i++) {
    level = 0.997 * level + 0.12 * rng.normal()
    values[i] = 80 + level + 0.6 * Math.sin((2 * Math.PI * hourOfDay(i, iv)) / 24) + 0.25 * rng.normal()
  }
  const anomalies: Anomaly[] = []
  const kinds = ['drop', 'spike', 'ramp']
  positions(rng, 3, Math.floor(n * 0.25), n - 100, 60, 400).forEach((p, j) => {
    const kind = kinds[j]!
    if (kind === 'drop') {
      const len = rng.int(24, 60)
      const mag = rng.uniform(8, 15)
      for (let i = p; i < p + len; i++) values[i] = values[i]! - mag * Math.min(1, (i - p + 1) / 3)
      anomalies.push({ start: p, end: p + len - 1, kind })
    } else if (kind === 'spike') {
      values[p] = values[p]! + rng.uniform(4, 6) * rng.sign()
      anomalies.push({ start: p, end: p, kind })
    } else {
      const len = 12
      const mag = rng.uniform(6, 10)
      for (let i = p; i < n; i++) values[i] = values[i]! + mag * Math.min(1, (i - p + 1) / len)
      anomalies.push({ start: p, end: p + len - 1, kind })
    }
  })
  for (let i = 0; i < n; i++) values[i] = Math.round(values[i]! * 10) / 10
  return { intervalMs: iv, values, anomalies }
}

/** Low counts (requests of a small service per minute): mostly 0-6, a burst and an outage of zeros. */
function counts(rng: Rng): Draft {
  const n = 4032
  const iv = 5 * MIN
  const values = Array.from({ length: n }, () => rng.poisson(3))
  const anomalies: Anomaly[] = []
  const [a, b] = positions(rng, 2, Math.floor(n * 0.2), n, 24, 300)
  const burst = rng.next() < 0.5 ? a! : b!
  const outage = burst === a ? b! : a!
  for (let i = burst; i < burst + 3; i++) values[i] = rng.poisson(25)
  anomalies.push({ start: burst, end: burst + 2, kind: 'burst' })
  for (let i = outage; i < outage + 24; i++) values[i] = 0
  anomalies.push({ start: outage, end: outage + 23, kind: 'outage' })
  anomalies.sort((x, y) => x.start - y.start)
  return { intervalMs: iv, values, anomalies }
}

/** A server's CPU: reads 2.0 most of the time with the odd 1.9 or 2.1, a nightly batch job at 02:00. */
function quantized(rng: Rng): Draft {
  const n = 4032
  const iv = 5 * MIN
  const values = Array.from({ length: n }, (_, i) => {
    const h = hourOfDay(i, iv)
    if (h >= 2 && h < 2.5) return Math.round((8 + rng.normal()) * 10) / 10
    const u = rng.next()
    return u < 0.02 ? 2.1 : u < 0.03 ? 1.9 : 2.0
  })
  const anomalies: Anomaly[] = []
  const perDay = DAY / iv
  const [a, b] = positions(rng, 2, 4 * perDay, n - 30, 30, 300)
  for (const [p0, kind] of [
    [a!, 'stuck_high'],
    [b!, 'spike'],
  ] as const) {
    // keep away from the batch job
    const p = hourOfDay(p0, iv) < 4 ? p0 + Math.round((6 * HOUR) / iv) : p0
    if (kind === 'stuck_high') {
      for (let i = p; i < p + 24; i++) values[i] = Math.round((9 + rng.normal()) * 10) / 10
      anomalies.push({ start: p, end: p + 23, kind })
    } else {
      values[p] = 20
      anomalies.push({ start: p, end: p, kind })
    }
  }
  anomalies.sort((x, y) => x.start - y.start)
  return { intervalMs: iv, values, anomalies }
}

/** A queue length with an hourly cron burst (normal), a much bigger burst and a level drop as anomalies. */
function periodicSpikes(rng: Rng): Draft {
  const n = 4032
  const iv = 5 * MIN
  const sigma = 1
  const values = ar1(rng, n, 0.4, sigma).map((v, i) => 50 + v + (i % 12 === 0 ? rng.uniform(6, 9) * sigma : 0))
  const anomalies: Anomaly[] = []
  const [a, b] = positions(rng, 2, Math.floor(n * 0.25), n - 300, 12, 500)
  const spike = a! % 12 === 0 ? a! + 5 : a!
  values[spike] = values[spike]! + rng.uniform(20, 25) * sigma
  anomalies.push({ start: spike, end: spike, kind: 'big_burst' })
  const mag = -rng.uniform(6, 9) * sigma
  for (let i = b!; i < n; i++) values[i] = values[i]! + mag
  anomalies.push({ start: b!, end: b! + 11, kind: 'level_drop' })
  anomalies.sort((x, y) => x.start - y.start)
  return { intervalMs: iv, values, anomalies }
}

const GENERATORS: Record<Family, (rng: Rng) => Draft> = {
  spikes: (r) => spikes(r, false),
  dips: (r) => spikes(r, true),
  level_shift: levelShift,
  drift,
  seasonal_daily: seasonalDaily,
  noise,
  missing_data: missingData,
  business,
  sensor_rw: sensorRw,
  counts,
  quantized,
  periodic_spikes: periodicSpikes,
}

/** Generates one labeled series; missing samples are removed and labels re-indexed. */
export function generate(family: Family, seed: number): LabeledSeries {
  const rng = new Rng(seed * 7919 + FAMILIES.indexOf(family) * 104_729 + 1)
  const d = GENERATORS[family](rng)
  const keep: number[] = []
  const newIndex = new Map<number, number>()
  for (let i = 0; i < d.values.length; i++) {
    if (d.missing?.has(i)) continue
    newIndex.set(i, keep.length)
    keep.push(i)
  }
  const remap = (i: number, dir: 1 | -1): number | undefined => {
    for (let j = i; j >= 0 && j < d.values.length; j += dir) {
      const k = newIndex.get(j)
      if (k !== undefined) return k
    }
    return undefined
  }
  const anomalies: Anomaly[] = []
  for (const a of d.anomalies) {
    const s = remap(a.start, 1)
    const e = remap(a.end, -1)
    if (s !== undefined && e !== undefined && s <= e) anomalies.push({ start: s, end: e, kind: a.kind })
  }
  return {
    name: `${family}#${seed}`,
    family,
    intervalMs: d.intervalMs,
    ts: keep.map((i) => START + i * d.intervalMs),
    values: keep.map((i) => d.values[i]!),
    anomalies,
  }
}
