import type { Db } from '../infra/db.js'

/**
 * Settings that decide where data lives (partition of a series, start of a day bucket) are fixed
 * by the first process that runs against a database; a later mismatch is refused, not absorbed.
 */
export async function pinLayoutSettings(db: Db, settings: Record<string, string>): Promise<void> {
  const rows = Object.entries(settings).map(([key, value]) => ({ key, value }))
  await db.insertInto('lantern_meta').values(rows).onConflict((oc) => oc.column('key').doNothing()).execute()
  const stored = await db.selectFrom('lantern_meta').selectAll().where('key', 'in', Object.keys(settings)).execute()
  const mismatches = stored.filter((r) => settings[r.key] !== r.value)
  if (mismatches.length > 0) {
    const list = mismatches.map((r) => `${r.key} is ${r.value} in the database but ${settings[r.key]} in this process`).join('; ')
    throw new Error(`layout settings differ from the data already stored: ${list}`)
  }
}
