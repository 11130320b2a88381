import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('audits')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('range_from', 'timestamptz', (c) => c.notNull())
    .addColumn('range_to', 'timestamptz', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('events_replayed', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('mismatch_count', 'integer')
    .addColumn('report', 'jsonb')
    .addColumn('error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audits').execute()
}
