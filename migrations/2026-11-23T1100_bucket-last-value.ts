import type { Kysely } from 'kysely'

/** The latest sample of a bucket by event time: what a target on a reported indicator reads. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('aggregate_buckets').addColumn('last', 'double precision').addColumn('last_ts', 'timestamptz').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('aggregate_buckets').dropColumn('last').dropColumn('last_ts').execute()
}
