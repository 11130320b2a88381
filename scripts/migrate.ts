import { loadConfig } from '../src/config.js'
import { makeDb, makePool } from '../src/infra/db.js'
import { migrateToLatest } from '../src/infra/migrate.js'

/** Applies pending migrations to DATABASE_URL and exits; safe to run on every deploy. */
const config = loadConfig()
const db = makeDb(makePool(config.databaseUrl, 1, 'lantern-migrate'))
try {
  const result = await migrateToLatest(db, (name) => console.log(`applied ${name}`))
  if ((result.results ?? []).length === 0) console.log('database is up to date')
} finally {
  await db.destroy()
}
