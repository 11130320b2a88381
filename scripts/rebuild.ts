import { parseArgs } from 'node:util'
import { sql } from 'kysely'
import { loadConfig } from '../src/config.js'
import { openRuntime, startRuntime } from '../src/infra/runtime.js'
import { makeDb, makePool } from '../src/infra/db.js'
import { migrateToLatest } from '../src/infra/migrate.js'
import { rebuildFromArchive } from '../workers/rebuild.js'

/**
 * Disaster recovery: rebuilds all state into the empty database at DATABASE_URL from the raw log
 * archive of another database.
 *
 *   DATABASE_URL=postgres://127.0.0.1/lantern_new npm run rebuild -- --from-database postgres://127.0.0.1/lantern_old
 */
const { values } = parseArgs({ options: { 'from-database': { type: 'string' } } })
const sourceUrl = values['from-database']
if (!sourceUrl) {
  console.error('npm run rebuild -- --from-database <postgres url of the archive>   (target: DATABASE_URL, an empty database)')
  process.exit(2)
}
const source = makeDb(makePool(sourceUrl, 2, 'lantern-rebuild-source'))
// The layout must be the source's: a series' partition and a day's start depend on it.
const { rows: meta } = await sql<{ key: string; value: string }>`SELECT key, value FROM lantern_meta`.execute(source)
const layout = Object.fromEntries(meta.map((m) => [m.key, m.value]))
const config = loadConfig({ ...process.env, LANTERN_PARTITIONS: layout.partitions ?? process.env.LANTERN_PARTITIONS, LANTERN_DAY_OFFSET_MIN: layout.dayOffsetMin ?? process.env.LANTERN_DAY_OFFSET_MIN })
const target = makeDb(makePool(config.databaseUrl, 1, 'lantern-rebuild-migrate'))
await migrateToLatest(target)
await target.destroy()
const rt = openRuntime(config, { role: 'worker', poolSize: Math.min(config.partitions, 8) + 2, failFastRedis: false })
await startRuntime(rt)
const started = Date.now()
let last = 0
const total = await rebuildFromArchive(rt, source, (n) => {
  if (Date.now() - last < 1000) return
  last = Date.now()
  process.stderr.write(`rebuild: ${n} events, ${Math.round(n / ((Date.now() - started) / 1000))}/s\n`)
})
const secs = (Date.now() - started) / 1000
console.error(`rebuild: ${total} events in ${secs.toFixed(1)} s (${Math.round(total / Math.max(secs, 0.001))}/s)`)
await rt.close()
await source.destroy()
