import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE SEQUENCE case_version_seq`.execute(db)
  await db.schema
    .createTable('cases')
    .addColumn('service', 'text', (c) => c.notNull())
    .addColumn('case_id', 'text', (c) => c.notNull())
    .addColumn('partition', 'integer', (c) => c.notNull())
    .addColumn('dims', 'jsonb', (c) => c.notNull())
    .addColumn('province', 'text', (c) => c.generatedAlwaysAs(sql`dims->>'province'`).stored())
    .addColumn('agency', 'text', (c) => c.generatedAlwaysAs(sql`dims->>'agency'`).stored())
    .addColumn('category', 'text', (c) => c.generatedAlwaysAs(sql`dims->>'category'`).stored())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('received_ts', 'timestamptz')
    .addColumn('started_ts', 'timestamptz')
    .addColumn('resolved_ts', 'timestamptz')
    .addColumn('rejected_ts', 'timestamptz')
    .addColumn('due_ts', 'timestamptz')
    .addColumn('rating', 'smallint')
    .addColumn('rated_ts', 'timestamptz')
    .addColumn('last_ts', 'timestamptz', (c) => c.notNull())
    .addColumn('events', 'jsonb', (c) => c.notNull())
    .addColumn('findings', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('version', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('cases_pk', ['service', 'case_id'])
    .execute()
  await db.schema.createIndex('cases_group_idx').on('cases').columns(['service', 'province', 'agency', 'category']).execute()
  await db.schema.createIndex('cases_province_idx').on('cases').columns(['province', 'service']).execute()
  await db.schema.createIndex('cases_version_idx').on('cases').column('version').execute()
  await sql`CREATE INDEX cases_open_due_idx ON cases (due_ts) WHERE resolved_ts IS NULL AND rejected_ts IS NULL`.execute(db)

  await db.schema
    .createTable('case_findings')
    .addColumn('service', 'text', (c) => c.notNull())
    .addColumn('case_id', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('detail', 'text', (c) => c.notNull())
    .addColumn('event_ts', 'timestamptz', (c) => c.notNull())
    .addColumn('province', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('case_findings_pk', ['service', 'case_id', 'event_id', 'kind'])
    .execute()
  await db.schema.createIndex('case_findings_time_idx').on('case_findings').columns(['event_ts']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('case_findings').execute()
  await db.schema.dropTable('cases').execute()
  await sql`DROP SEQUENCE case_version_seq`.execute(db)
}
