import { parseArgs } from 'node:util'

/**
 * Queues an audit of a time range on a running server, follows its progress, and prints the
 * differences a worker found between the stored figures and what the raw log gives.
 * Exit code 0: none; 1: differences; 2: the audit could not run.
 *
 *   npm run audit -- --from 2026-11-01T00:00:00Z --to 2026-11-02T00:00:00Z
 *   npm run audit -- verify            (re-walk the archive hash chains)
 */
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: process.env.LANTERN_URL ?? 'http://127.0.0.1:8080' },
    from: { type: 'string', default: '0' },
    to: { type: 'string', default: new Date().toISOString() },
  },
})

async function json(res: Response): Promise<Record<string, unknown>> {
  const body = (await res.json()) as Record<string, unknown>
  if (!res.ok) {
    console.error(`audit: ${res.status} ${JSON.stringify(body)}`)
    process.exit(2)
  }
  return body
}

const started = Date.now()
if (positionals[0] === 'verify') {
  const body = await json(await fetch(`${values.url}/v1/archive/verify`))
  console.log(JSON.stringify(body, null, 2))
  process.exit(body.ok === true ? 0 : 1)
}

const queued = await json(await fetch(`${values.url}/v1/audits`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ from: values.from, to: values.to }) }))
process.stderr.write(`audit ${String(queued.id)} queued: ${String(queued.from)} .. ${String(queued.to)}\n`)
for (;;) {
  await new Promise((r) => setTimeout(r, 1000))
  const audit = await json(await fetch(`${values.url}/v1/audits/${String(queued.id)}`))
  const secs = (Date.now() - started) / 1000
  process.stderr.write(`\raudit ${String(audit.id)}: ${String(audit.status)}, ${String(audit.eventsReplayed)} events replayed (${Math.round(Number(audit.eventsReplayed) / secs)}/s)   `)
  if (audit.status === 'failed') {
    console.error(`\naudit failed: ${String(audit.error)}`)
    process.exit(2)
  }
  if (audit.status === 'done') {
    process.stderr.write('\n')
    console.log(JSON.stringify(audit.report, null, 2))
    const differences = Number(audit.mismatchCount)
    process.stderr.write(differences === 0 ? 'no difference: the stored figures are what the events give\n' : `${differences} DIFFERENCES FOUND\n`)
    process.exit(differences === 0 ? 0 : 1)
  }
}
