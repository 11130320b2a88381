import { createWriteStream } from 'node:fs'
import { parseArgs } from 'node:util'
import { SingleBar, Presets } from 'cli-progress'

/**
 * Replays a range of the raw log as NDJSON from a running server's archive: to a file or to
 * standard output, with a progress bar (events, rate, ETA) on the terminal.
 *
 *   npm run replay -- --from 2026-11-01T00:00:00Z --to 2026-11-02T00:00:00Z --kind metric --metric air.pm25 --dims province=46 --out day.ndjson
 */
const { values } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.LANTERN_URL ?? 'http://127.0.0.1:8080' },
    from: { type: 'string' },
    to: { type: 'string' },
    kind: { type: 'string' },
    metric: { type: 'string' },
    service: { type: 'string' },
    dims: { type: 'string', multiple: true, default: [] },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (values.help) {
  console.error('npm run replay -- [--url URL] [--from T] [--to T] [--kind metric|report] [--metric M] [--service S] [--dims k=v ...] [--out FILE]')
  process.exit(0)
}

const qs = new URLSearchParams()
for (const k of ['from', 'to', 'kind', 'metric', 'service'] as const) if (values[k]) qs.set(k, values[k] as string)
for (const d of values.dims) {
  const [k, ...v] = d.split('=')
  if (!k || v.length === 0) {
    console.error(`--dims takes name=value, got "${d}"`)
    process.exit(2)
  }
  qs.set(`dims.${k}`, v.join('='))
}

async function fail(res: Response): Promise<never> {
  console.error(`replay: ${res.status} ${await res.text()}`)
  process.exit(1)
}

const estimate = await fetch(`${values.url}/v1/export/estimate?${qs}`)
if (!estimate.ok) await fail(estimate)
const total = ((await estimate.json()) as { events: number }).events
const res = await fetch(`${values.url}/v1/export?${qs}`)
if (!res.ok || !res.body) await fail(res)

const out: NodeJS.WritableStream = values.out ? createWriteStream(values.out) : process.stdout
const bar = new SingleBar({ format: 'replay |{bar}| {value} events | {rate}/s | ETA {eta_formatted}', stream: process.stderr, etaBuffer: 50 }, Presets.shades_classic)
// The total is an upper bound (filters apply inside entries): the bar may end short of it.
bar.start(total, 0, { rate: 0 })
const started = Date.now()
let events = 0
const decoder = new TextDecoder()
for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
  const text = decoder.decode(chunk, { stream: true })
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) events++
  if (!out.write(text)) await new Promise<void>((r) => out.once('drain', () => r()))
  bar.update(events, { rate: Math.round(events / Math.max(0.001, (Date.now() - started) / 1000)) })
}
bar.update(events)
bar.stop()
if (out !== process.stdout) await new Promise<void>((r) => out.end(() => r()))
console.error(`replay: ${events} events in ${((Date.now() - started) / 1000).toFixed(1)} s${values.out ? ` to ${values.out}` : ''}`)
