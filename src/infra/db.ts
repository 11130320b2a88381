import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { Database } from './db-schema.js'

export type Db = Kysely<Database>

const INT8_OID = 20

/** int8 columns (counts, ids) come back as numbers: they stay far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
}

export function makePool(connectionString: string, max: number, applicationName: string): pg.Pool {
  const pool = new pg.Pool({ connectionString, max, application_name: applicationName, types, connectionTimeoutMillis: 5000 })
  // An idle client that loses its connection emits here; the pool replaces it on next use.
  pool.on('error', () => undefined)
  return pool
}

export function makeDb(pool: pg.Pool): Db {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
}
