import { parseArgs } from 'node:util'

/**
 * Asks a running server to re-derive a time range from the raw log and prints the differences
 * from the stored figures. Exit code 0: the stored figures are what the events give; 1: not.
 *
 *   npm run audit -- --from 2026-11-01T00:00:00Z --to 2026-11-02T00:00:00Z
 *   npm run audit -- verify            (re-walk the archive hash chains)
 */
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: process.env.LANTERN_URL ?? 'http://127.0.0.1:8080' },
    from: { type: 'string', default: '0' },
    to: { type: 'string' },
  },
})
const verify = positionals[0] === 'verify'
const qs = new URLSearchParams({ from: values.from })
if (values.to) qs.set('to', values.to)
const started = Date.now()
process.stderr.write(verify ? 'verifying the archive hash chains...\n' : `re-deriving ${values.from} .. ${values.to ?? 'now'} from the raw log...\n`)
const res = await fetch(verify ? `${values.url}/v1/archive/verify` : `${values.url}/v1/audit?${qs}`)
const body = (await res.json()) as Record<string, unknown>
if (!res.ok) {
  console.error(`audit: ${res.status} ${JSON.stringify(body)}`)
  process.exit(2)
}
console.log(JSON.stringify(body, null, 2))
const ok = verify ? body.ok === true : (body.mismatches as unknown[]).length === 0
process.stderr.write(`${ok ? 'no difference' : 'DIFFERENCES FOUND'} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`)
process.exit(ok ? 0 : 1)
