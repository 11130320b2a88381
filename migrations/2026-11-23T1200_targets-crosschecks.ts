import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('targets')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('indicator', 'jsonb', (c) => c.notNull())
    .addColumn('denominator', 'jsonb')
    .addColumn('operator', 'text', (c) => c.notNull())
    .addColumn('target', 'double precision', (c) => c.notNull())
    .addColumn('unit', 'text')
    .addColumn('period_start', 'timestamptz', (c) => c.notNull())
    .addColumn('period_end', 'timestamptz', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()

  await db.schema
    .createTable('crosschecks')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('source', 'text')
    .addColumn('filter', 'jsonb', (c) => c.notNull())
    .addColumn('period_start', 'timestamptz', (c) => c.notNull())
    .addColumn('period_end', 'timestamptz', (c) => c.notNull())
    .addColumn('reported', 'jsonb', (c) => c.notNull())
    .addColumn('computed', 'jsonb', (c) => c.notNull())
    .addColumn('discrepancies', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('crosschecks_created_idx').on('crosschecks').column('created_at').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('crosschecks').execute()
  await db.schema.dropTable('targets').execute()
}
