/**
 * A demo feed of city sensors: air quality, river level, traffic and power load for a handful of
 * provinces, with a daily cycle, noise and an occasional spike. Posts once a second at
 * DEMO_RATE events/s to LANTERN_URL until stopped.
 */
const url = `${process.env.LANTERN_URL ?? 'http://127.0.0.1:8080'}/v1/metrics`
const rate = Math.max(1, Number(process.env.DEMO_RATE ?? 200))

const PROVINCES = ['01', '46', '48', '79', '92']
const SENSORS = [
  { metric: 'air.pm25', base: 35, swing: 20, peakHour: 8, noise: 6, stations: 4 },
  { metric: 'river.level', base: 2.1, swing: 0.4, peakHour: 16, noise: 0.05, stations: 2 },
  { metric: 'traffic.count', base: 900, swing: 700, peakHour: 18, noise: 120, stations: 5 },
  { metric: 'power.load', base: 420, swing: 180, peakHour: 20, noise: 25, stations: 3 },
]
const series = PROVINCES.flatMap((province) =>
  SENSORS.flatMap((s) => Array.from({ length: s.stations }, (_, i) => ({ ...s, dims: { province, station: `${s.metric.split('.')[0]}-${province}-${i + 1}` } }))),
)

let seq = 0
const gauss = (): number => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random())

function sample(now: number) {
  const s = series[seq % series.length] as (typeof series)[number]
  const hour = ((now / 3_600_000) % 24 + 7) % 24
  const daily = Math.cos(((hour - s.peakHour) / 24) * 2 * Math.PI)
  const spike = Math.random() < 0.0005 ? s.swing * 4 : 0
  const value = Math.max(0, s.base + s.swing * daily + s.noise * gauss() + spike)
  return { id: `demo-${process.pid}-${seq++}`, source: 'demo-feed', metric: s.metric, ts: now, value: Math.round(value * 100) / 100, dims: s.dims }
}

async function tick(): Promise<void> {
  const now = Date.now()
  const events = Array.from({ length: rate }, () => sample(now))
  try {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) })
    if (res.status !== 202) console.error(`[demo-feed] ${res.status} ${await res.text()}`)
  } catch (err) {
    console.error(`[demo-feed] ${(err as Error).message}; retrying`)
  }
}

console.error(`[demo-feed] posting ${rate} events/s of ${series.length} series to ${url}`)
setInterval(() => void tick(), 1000)
process.on('disconnect', () => process.exit(0))
