import { sql, type Kysely } from 'kysely'

/**
 * The permanent copy of the log. One row per log entry (the events one request appended to one
 * partition), written in the drain transaction that folds them, so every event is archived
 * exactly once and before Redis may trim it. Each partition is a hash chain of entries: an
 * entry's hash covers the previous hash and the entry's events; a 4-byte fingerprint per event
 * says which event of a broken entry changed.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('log_archive')
    .addColumn('partition', 'integer', (c) => c.notNull())
    .addColumn('first_seq', 'bigint', (c) => c.notNull())
    .addColumn('count', 'integer', (c) => c.notNull())
    .addColumn('entry_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('arrived_at', 'timestamptz', (c) => c.notNull())
    .addColumn('min_ts', 'timestamptz', (c) => c.notNull())
    .addColumn('max_ts', 'timestamptz', (c) => c.notNull())
    .addColumn('events', 'text', (c) => c.notNull())
    .addColumn('hash', 'bytea', (c) => c.notNull())
    .addColumn('fingerprints', 'bytea', (c) => c.notNull())
    .addPrimaryKeyConstraint('log_archive_pk', ['partition', 'first_seq'])
    .execute()
  await sql`CREATE INDEX log_archive_time_idx ON log_archive USING brin (arrived_at)`.execute(db)
  await sql`CREATE INDEX log_archive_event_time_idx ON log_archive (min_ts, max_ts)`.execute(db)
  await db.schema
    .alterTable('drain_checkpoints')
    .addColumn('archive_seq', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('archive_hash', 'bytea', (c) => c.notNull().defaultTo(sql`'\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea`))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('drain_checkpoints').dropColumn('archive_seq').dropColumn('archive_hash').execute()
  await db.schema.dropTable('log_archive').execute()
}
