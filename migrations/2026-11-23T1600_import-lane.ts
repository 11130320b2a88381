import { sql, type Kysely } from 'kysely'

/**
 * History import: a second log lane per partition. The drain keeps a second position in it
 * (`import_last_id`, moved by the same compare-and-set as the live one); archived entries of that
 * lane carry the import job that appended them (`import_id`), which is how the audit and the
 * rebuild know to fold them without the lateness judgment, as the drain did. `imports` holds one
 * row per job (the file's SHA-256 makes a second import of the same file a no-op), and
 * `import_uploads` the bytes of a file uploaded through the API until a worker has read them.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('drain_checkpoints')
    .addColumn('import_last_id', 'text', (c) => c.notNull().defaultTo('0-0'))
    .execute()
  await db.schema.alterTable('log_archive').addColumn('import_id', 'bigint').execute()

  await db.schema
    .createTable('imports')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('format', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('on_error', 'text', (c) => c.notNull())
    .addColumn('origin', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('bytes_total', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('bytes_read', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('rows_read', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('chunks_sent', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('rows_sent', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('events_appended', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('duplicates', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('events_committed', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('bad_rows', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('bad_rows_sent', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('bad_row_list', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('error', 'text')
    .addColumn('runs', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .execute()
  // One job per file content, kind and format: a second import of the same file finds it.
  await sql`CREATE UNIQUE INDEX imports_file_idx ON imports (sha256, kind, format)`.execute(db)

  await db.schema
    .createTable('import_uploads')
    .addColumn('import_id', 'bigint', (c) => c.notNull().references('imports.id').onDelete('cascade'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('data', 'bytea', (c) => c.notNull())
    .addPrimaryKeyConstraint('import_uploads_pk', ['import_id', 'seq'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('import_uploads').execute()
  await db.schema.dropTable('imports').execute()
  await db.schema.alterTable('log_archive').dropColumn('import_id').execute()
  await db.schema.alterTable('drain_checkpoints').dropColumn('import_last_id').execute()
}
