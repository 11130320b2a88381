import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { FileMigrationProvider, Migrator, type Kysely, type MigrationResultSet } from 'kysely'

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations')

/** Applies every pending migration; throws with the failing migration's name on error. */
export async function migrateToLatest(db: Kysely<any>, onStep?: (name: string) => void): Promise<MigrationResultSet> {
  const migrator = new Migrator({ db, provider: new FileMigrationProvider({ fs, path, migrationFolder: MIGRATIONS_DIR }) })
  const result = await migrator.migrateToLatest()
  for (const r of result.results ?? []) {
    if (r.status === 'Success') onStep?.(r.migrationName)
  }
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown'
    throw new Error(`migration ${failed} failed: ${(result.error as Error).message ?? String(result.error)}`)
  }
  return result
}
