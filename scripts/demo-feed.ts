/**
 * The demo feed behind `npm start -- --demo`: an operations centre in motion, posted to LANTERN_URL.
 * - Sensors (air quality, river level, traffic, power load) in five provinces with a daily cycle and
 *   noise: DEMO_RATE samples a second.
 * - Injected anomalies: now and then one station misbehaves for a few minutes (logged on stderr).
 * - A flood: for 12 minutes of every 30 the river in Thừa Thiên Huế (46) swells past its 3 m alarm
 *   level, and flooding reports pour in.
 * - Cases: citizen field reports (paht) and dossiers (dvc), received → assigned → in_progress →
 *   resolved or rejected, some rated, each with a due time; some stall and go overdue. Case time is
 *   compressed to minutes so lifecycles play out while one watches.
 * - Alert rules, created at start when missing (by name): the Perfume River at or above 3 m for two
 *   minutes in province 46 (critical; fires and resolves with every flood), and PM2.5 anomaly flags
 *   with a score of at least 0.8 in any province (warning). The screen's alert feed shows them.
 * - Targets, created once, and every minute a province reporting its figures for a past ten-minute
 *   slot, sometimes mistyped: the discrepancies the screen lists under its alerts.
 * It backfills the past hour first, so the screen is full at once. Backfill and case event ids are
 * derived from what they describe, so a restarted feed re-sends them as duplicates, never twice.
 */
const base = process.env.LANTERN_URL ?? 'http://127.0.0.1:8080'
const rate = Math.max(1, Number(process.env.DEMO_RATE ?? 200))
const casesPerMinute = Math.max(6, Math.round((rate / 200) * 60))
const MIN = 60_000
const HOUR = 60 * MIN
const BACKFILL_MIN = 60

type Rand = () => number
type Json = Record<string, unknown>

/** A generator seeded by a string (FNV-1a, then mulberry32): a case replays identically after a restart. */
function seeded(key: string): Rand {
  let s = 2166136261
  for (let i = 0; i < key.length; i++) s = Math.imul(s ^ key.charCodeAt(i), 16777619)
  return () => {
    s = (s + 0x6d2b79f5) | 0
    let x = Math.imul(s ^ (s >>> 15), 1 | s)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
const between = (r: Rand, lo: number, hi: number): number => lo + r() * (hi - lo)
function weighted<T>(r: Rand, entries: readonly (readonly [T, number])[]): T {
  let x = r() * entries.reduce((sum, [, w]) => sum + w, 0)
  for (const [item, w] of entries) if ((x -= w) < 0) return item
  return (entries.at(-1) as readonly [T, number])[0]
}
const gauss = (): number => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())
const iso = (ms: number): string => new Date(ms).toISOString()

// ---- sensors -------------------------------------------------------------------------------

/** Provinces with how many of the country's cases each gets. */
const PROVINCES = [['01', 5], ['79', 5], ['48', 2], ['46', 2], ['92', 1]] as const
const SENSORS = [
  { metric: 'air.pm25', base: 35, swing: 20, peakHour: 8, noise: 6, stations: 4 },
  { metric: 'river.level', base: 2.1, swing: 0.4, peakHour: 16, noise: 0.05, stations: 2 },
  { metric: 'traffic.count', base: 900, swing: 700, peakHour: 18, noise: 120, stations: 5 },
  { metric: 'power.load', base: 420, swing: 180, peakHour: 20, noise: 25, stations: 3 },
]
const series = PROVINCES.flatMap(([province]) =>
  SENSORS.flatMap((s) => Array.from({ length: s.stations }, (_, i) => ({ ...s, dims: { province, station: `${s.metric.split('.')[0]}-${province}-${i + 1}` } }))),
)
type Series = (typeof series)[number]

const FLOOD = { province: '46', everyMin: 30, lastsMin: 12, rise: 2.2 }
/** Extra river level in the flood province: a swell over the first minutes of every cycle. */
function floodRise(ts: number): number {
  const minute = (ts / MIN) % FLOOD.everyMin
  return minute < FLOOD.lastsMin ? FLOOD.rise * Math.sin((Math.PI * minute) / FLOOD.lastsMin) ** 2 : 0
}

const FAULTS: Record<string, { what: string; apply: (v: number) => number }[]> = {
  'air.pm25': [{ what: 'fire nearby, PM2.5 +150', apply: (v) => v + 150 }],
  'river.level': [{ what: 'stuck sensor reads 0', apply: () => 0 }],
  'traffic.count': [
    { what: 'road closed, traffic -90%', apply: (v) => v * 0.1 },
    { what: 'jam, traffic x2.5', apply: (v) => v * 2.5 },
  ],
  'power.load': [{ what: 'outage, load -80%', apply: (v) => v * 0.2 }],
}
let anomaly: { station: string; until: number; apply: (v: number) => number } | null = null

/** About one anomaly every five minutes, one at a time. */
function maybeInjectAnomaly(now: number): void {
  if (anomaly && now < anomaly.until) return
  anomaly = null
  if (Math.random() > 1 / 300) return
  const s = series[Math.floor(Math.random() * series.length)] as Series
  const fault = weighted(Math.random, (FAULTS[s.metric] ?? []).map((f) => [f, 1] as const))
  const minutes = Math.round(between(Math.random, 2, 5))
  anomaly = { station: s.dims.station, until: now + minutes * MIN, apply: fault.apply }
  console.error(`[demo-feed] anomaly injected: ${s.dims.station} (${s.metric}) ${fault.what} for ${minutes} min`)
}

function sample(s: Series, ts: number, id: string): Json {
  const hour = ((ts / HOUR) % 24 + 7) % 24 // local time in Vietnam, UTC+7
  let value = s.base + s.swing * Math.cos(((hour - s.peakHour) / 24) * 2 * Math.PI) + s.noise * gauss()
  if (s.metric === 'river.level' && s.dims.province === FLOOD.province) value += floodRise(ts)
  if (anomaly?.station === s.dims.station && ts < anomaly.until) value = anomaly.apply(value)
  return { id, source: 'demo-sensors', metric: s.metric, ts, value: Math.round(Math.max(0, value) * 100) / 100, dims: s.dims }
}

let seq = 0
const liveSamples = (now: number): Json[] =>
  Array.from({ length: rate }, () => sample(series[seq % series.length] as Series, now, `demo-${process.pid}-${seq++}`))

/** Four samples a minute per station over the backfill hour. */
const backfillSamples = (now: number): Planned[] =>
  Array.from({ length: BACKFILL_MIN * 4 }, (_, k) => Math.floor(now / MIN) * MIN - BACKFILL_MIN * MIN + k * 15_000).flatMap((ts) =>
    series.map((s) => ({ ts, metric: sample(s, ts, `bf-${s.dims.station}-${ts}`) })),
  )

// ---- cases ---------------------------------------------------------------------------------

type Service = 'paht' | 'dvc'
/** [category, the agency that handles it, weight]. */
const CATEGORIES: Record<Service, readonly (readonly [readonly [string, string], number])[]> = {
  paht: [
    [['road-damage', 'transport-dept'], 4],
    [['waste', 'urban-environment'], 4],
    [['street-lighting', 'lighting-company'], 2],
    [['flooding', 'drainage-company'], 2],
    [['noise', 'ward-police'], 2],
    [['water-supply', 'water-company'], 2],
    [['electrical-safety', 'power-company'], 1],
  ],
  dvc: [
    [['business-registration', 'planning-investment-dept'], 3],
    [['construction-permit', 'construction-dept'], 2],
    [['land-certificate', 'natural-resources-dept'], 3],
    [['birth-registration', 'justice-dept'], 3],
    [['residence', 'police'], 2],
  ],
}
const DUE_MIN: Record<Service, [number, number]> = { paht: [20, 90], dvc: [30, 120] }
const RATINGS = { onTime: [[1, 3], [2, 5], [3, 12], [4, 35], [5, 45]], late: [[1, 15], [2, 20], [3, 30], [4, 20], [5, 15]] } as const

/** Something to post once its time has come: a report event, a metric sample, or both. */
interface Planned {
  ts: number
  report?: Json
  metric?: Json
}

function caseEvents(r: Rand, service: Service, id: string, province: string, [category, agency]: readonly [string, string], receivedTs: number): Planned[] {
  const source = `${service}-${province}`
  const ev = (status: string, ts: number, extra: Json = {}): Planned => ({ ts, report: { id: `${id}-${status}`, source, service, case: id, status, ts, ...extra } })
  const due = Math.round(receivedTs + between(r, ...DUE_MIN[service]) * MIN)
  const out = [ev('received', receivedTs, { due, dims: { province, agency, category } })]
  if (service === 'dvc') {
    // The online-dossier target is the share of dossiers submitted online.
    const dossier = (metric: string): Planned => ({ ts: receivedTs, metric: { id: `${id}-${metric}`, source, metric, ts: receivedTs, value: 1, dims: { province } } })
    out.push(dossier('dvc.dossiers'), ...(r() < 0.78 ? [dossier('dvc.online_dossiers')] : []))
  }
  const fate = r()
  const stalls = fate < 0.1
  if (stalls && r() < 0.5) return out
  const assigned = receivedTs + between(r, 1, 8) * MIN
  const started = assigned + between(r, 2, 12) * MIN
  out.push(ev('assigned', Math.round(assigned)), ev('in_progress', Math.round(started)))
  if (stalls) return out
  const late = r() < 0.15
  const closed = Math.round(late ? due + between(r, 5, 40) * MIN : Math.max(started + MIN, receivedTs + between(r, 0.3, 0.95) * (due - receivedTs)))
  const rejected = fate < 0.17
  out.push(ev(rejected ? 'rejected' : 'resolved', closed))
  if (!rejected && r() < 0.55) out.push(ev('rated', closed + Math.round(between(r, 2, 20) * MIN), { rating: weighted(r, RATINGS[closed > due ? 'late' : 'onTime']) }))
  return out
}

/** The cases received in one minute, each seeded by the minute and its index. */
function planMinute(minute: number): Planned[] {
  const flooding = floodRise(minute * MIN) > 0.5 ? Math.round(casesPerMinute / 4) : 0
  return Array.from({ length: casesPerMinute + flooding }, (_, i) => {
    const r = seeded(`${minute}-${i}`)
    const flood = i >= casesPerMinute
    const service: Service = flood || r() < 0.6 ? 'paht' : 'dvc'
    const province = flood ? FLOOD.province : weighted(r, PROVINCES)
    const category = flood ? (['flooding', 'drainage-company'] as const) : weighted(r, CATEGORIES[service])
    const id = `${service === 'paht' ? 'PA' : 'HS'}-${province}-${minute.toString(36)}-${i}`
    return caseEvents(r, service, id, province, category, Math.round(minute * MIN + r() * MIN))
  }).flat()
}

// ---- targets and reported figures ----------------------------------------------------------

async function ensureTargets(): Promise<void> {
  const local = new Date(Date.now() + 7 * HOUR)
  const y = local.getUTCFullYear()
  const m = local.getUTCMonth() + 1
  const month = (year: number, mon: number): string => `${year + Math.floor((mon - 1) / 12)}-${String(((mon - 1) % 12) + 1).padStart(2, '0')}-01T00:00:00+07:00`
  const targets = [
    { name: 'Hồ sơ nộp trực tuyến / Dossiers submitted online', operator: '>=', target: 80, unit: '%', indicator: { metric: 'dvc.online_dossiers', aggregate: 'sum' }, denominator: { metric: 'dvc.dossiers', aggregate: 'sum' }, period: { from: month(y, 1), to: month(y + 1, 1) } },
    { name: 'PM2.5 trung bình tháng / Monthly mean PM2.5', operator: '<=', target: 50, unit: 'µg/m³', indicator: { metric: 'air.pm25', aggregate: 'mean' }, period: { from: month(y, m), to: month(y, m + 1) } },
    { name: 'Đỉnh mực nước sông Hương / Perfume River peak', operator: '<=', target: 3.5, unit: 'm', indicator: { metric: 'river.level', aggregate: 'max', dims: { province: FLOOD.province } }, period: { from: month(y, m), to: month(y, m + 1) } },
  ]
  const existing = new Set(((await getJson('/v1/targets')).targets as { name: string }[]).map((t) => t.name))
  for (const t of targets.filter((t) => !existing.has(t.name))) {
    const res = await fetch(`${base}/v1/targets`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(t) })
    if (res.status !== 201) throw new Error(`POST /v1/targets: ${res.status} ${await res.text()}`)
  }
}

/** A province reports its figures for the last ten-minute slot that ended a minute ago; about a third carry a typo. */
async function reportFigures(now: number): Promise<void> {
  const to = Math.floor((now - MIN) / (10 * MIN)) * 10 * MIN
  const from = to - 10 * MIN
  const province = weighted(Math.random, PROVINCES)
  const service = Math.random() < 0.6 ? 'paht' : 'dvc'
  const q = new URLSearchParams({ service, province, from: iso(from), as_of: iso(to - 1) })
  const { kpis } = ((await getJson(`/v1/kpis?${q}`)).groups as { kpis: Record<string, number> }[])[0] ?? { kpis: {} }
  const reported: Record<string, number> = { received: kpis.received ?? 0, processed: kpis.processed ?? 0, inProgress: kpis.inProgress ?? 0 }
  if (Math.random() < 0.35) {
    const figure = weighted(Math.random, Object.keys(reported).map((k) => [k, 1] as const))
    reported[figure] = Math.max(0, (reported[figure] ?? 0) + weighted(Math.random, [[-3, 1], [-1, 2], [1, 2], [5, 1]]))
  }
  const body = { source: `province-${province}`, service, province, period: { from: iso(from), to: iso(to) }, reported }
  const res = await fetch(`${base}/v1/crosschecks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (res.status !== 201) console.error(`[demo-feed] POST /v1/crosschecks: ${res.status} ${await res.text()}`)
}

// ---- alert rules ---------------------------------------------------------------------------

/** The flood desk's threshold rule (each river gauge of the flood province on its own) and an anomaly rule on PM2.5. */
const RULES = [
  {
    name: 'Sông Hương vượt báo động 3 (3 m) / Huong river above alarm level 3',
    metric: 'river.level',
    dims: { province: FLOOD.province },
    aggregate: 'max',
    window: '1m',
    op: '>=',
    value: 3,
    for: '2m',
    severity: 'critical',
    labels: { desk: 'flood' },
  },
  { name: 'PM2.5 bất thường / PM2.5 anomaly', kind: 'anomaly', metric: 'air.pm25', dims: { province: '*' }, value: 0.8, window: '5m', severity: 'warning', labels: { desk: 'environment' } },
]

/**
 * Creates the rules the server does not have yet (by name), before the first sample is posted: a
 * rule applies from the next batch on, and the backfilled hour should already hold a flood that
 * fired and resolved. Returns false on a server without rules (the demo then runs without alerts).
 */
async function ensureRules(): Promise<boolean> {
  const res = await fetch(`${base}/v1/rules`)
  if (res.status === 404) {
    console.error('[demo-feed] this server has no /v1/rules; running without alert rules')
    return false
  }
  if (!res.ok) throw new Error(`GET /v1/rules: ${res.status}`)
  const existing = new Set(((await res.json()) as { rules: { name: string }[] }).rules.map((r) => r.name))
  for (const rule of RULES.filter((r) => !existing.has(r.name))) {
    const created = await fetch(`${base}/v1/rules`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(rule) })
    if (created.status !== 201) throw new Error(`POST /v1/rules: ${created.status} ${await created.text()}`)
    console.error(`[demo-feed] rule created: ${rule.name}`)
  }
  return true
}

async function getJson(path: string): Promise<Json> {
  const res = await fetch(`${base}${path}`)
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`)
  return (await res.json()) as Json
}

// ---- the loop ------------------------------------------------------------------------------

/** Posts in chunks; false when the batch should be sent again (server away or busy). */
async function post(path: string, events: Json[]): Promise<boolean> {
  for (let i = 0; i < events.length; i += 5000) {
    const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events.slice(i, i + 5000)) })
    if (res.status === 202) continue
    console.error(`[demo-feed] POST ${path}: ${res.status} ${(await res.text()).slice(0, 500)}`)
    return res.status < 500
  }
  return true
}

let queue: Planned[] = backfillSamples(Date.now())
let plannedUpTo = Math.floor(Date.now() / MIN) - BACKFILL_MIN - 1
let rulesReady = false
let targetsReady = false
let ticks = 0

async function tick(): Promise<void> {
  if (!rulesReady) {
    try {
      await ensureRules()
      rulesReady = true
    } catch (err) {
      // Nothing is posted before the rules exist, or the backfilled flood would raise no alert.
      return console.error(`[demo-feed] ${(err as Error).message}; retrying`)
    }
  }
  const now = Date.now()
  maybeInjectAnomaly(now)
  const nowMinute = Math.floor(now / MIN)
  if (plannedUpTo < nowMinute) {
    for (let m = plannedUpTo + 1; m <= nowMinute; m++) queue = queue.concat(planMinute(m))
    plannedUpTo = nowMinute
    queue.sort((a, b) => a.ts - b.ts)
  }
  const ready = queue.findIndex((p) => p.ts > now)
  const due = queue.splice(0, ready === -1 ? queue.length : ready)
  const metrics = due.flatMap((p) => (p.metric ? [p.metric] : [])).concat(liveSamples(now))
  const reports = due.flatMap((p) => (p.report ? [p.report] : []))
  try {
    // Event ids make resending safe: what did get through is counted once.
    if (!(await post('/v1/metrics', metrics)) || !(await post('/v1/reports', reports))) queue = due.concat(queue)
  } catch (err) {
    queue = due.concat(queue)
    return console.error(`[demo-feed] ${(err as Error).message}; retrying`)
  }
  try {
    if (!targetsReady) {
      await ensureTargets()
      targetsReady = true
    }
    if (++ticks % 60 === 30) await reportFigures(now)
  } catch (err) {
    console.error(`[demo-feed] ${(err as Error).message}`)
  }
}

let busy = false
setInterval(() => {
  if (busy) return
  busy = true
  void tick().finally(() => (busy = false))
}, 1000)
console.error(`[demo-feed] ${rate} samples/s of ${series.length} series and ${casesPerMinute} cases/min to ${base}, after a ${BACKFILL_MIN}-minute backfill`)
process.on('disconnect', () => process.exit(0))
