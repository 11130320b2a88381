import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('lantern_meta')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('drain_checkpoints')
    .addColumn('partition', 'integer', (c) => c.primaryKey())
    .addColumn('last_id', 'text', (c) => c.notNull().defaultTo('0-0'))
    .addColumn('watermark_ms', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('events', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('late_events', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()

  await db.schema
    .createTable('series')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('key', 'text', (c) => c.notNull().unique())
    .addColumn('metric', 'text', (c) => c.notNull())
    .addColumn('dims', 'jsonb', (c) => c.notNull())
    .addColumn('partition', 'integer', (c) => c.notNull())
    .addColumn('first_ts', 'timestamptz', (c) => c.notNull())
    .addColumn('last_ts', 'timestamptz', (c) => c.notNull())
    .addColumn('events', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('late_events', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('last_late_ts', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('series_metric_idx').on('series').columns(['metric', 'id']).execute()
  await sql`CREATE INDEX series_dims_idx ON series USING gin (dims jsonb_path_ops)`.execute(db)

  await db.schema
    .createTable('aggregate_buckets')
    .addColumn('series_id', 'bigint', (c) => c.notNull().references('series.id'))
    .addColumn('width_s', 'integer', (c) => c.notNull())
    .addColumn('start', 'timestamptz', (c) => c.notNull())
    .addColumn('count', 'bigint', (c) => c.notNull())
    .addColumn('sum', 'double precision', (c) => c.notNull())
    .addColumn('min', 'double precision', (c) => c.notNull())
    .addColumn('max', 'double precision', (c) => c.notNull())
    .addColumn('mean', 'double precision', (c) => c.notNull())
    .addColumn('m2', 'double precision', (c) => c.notNull())
    .addColumn('sketch', 'bytea', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('aggregate_buckets_pk', ['series_id', 'width_s', 'start'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('aggregate_buckets').execute()
  await db.schema.dropTable('series').execute()
  await db.schema.dropTable('drain_checkpoints').execute()
  await db.schema.dropTable('lantern_meta').execute()
}
