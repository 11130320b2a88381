import { sql, type Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  // Detector and rule settings change rarely; `config_version` (in lantern_meta) tells drainers to reload.
  await db.schema
    .createTable('anomaly_settings')
    .addColumn('metric', 'text', (c) => c.primaryKey())
    .addColumn('config', 'jsonb', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()

  // Written in the drain transaction with the checkpoint: a crash resumes detectors exactly where the committed batch left them.
  await db.schema
    .createTable('detector_state')
    .addColumn('series_id', 'bigint', (c) => c.primaryKey().references('series.id').onDelete('cascade'))
    .addColumn('state', 'bytea', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()

  await db.schema
    .createTable('anomalies')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('series_id', 'bigint', (c) => c.notNull().references('series.id').onDelete('cascade'))
    .addColumn('metric', 'text', (c) => c.notNull())
    .addColumn('ts', 'timestamptz', (c) => c.notNull())
    .addColumn('event_id', 'text', (c) => c.notNull())
    .addColumn('value', 'float8', (c) => c.notNull())
    .addColumn('score', 'float8', (c) => c.notNull())
    .addColumn('detectors', sql`text[]`, (c) => c.notNull())
    .addColumn('expected', 'float8', (c) => c.notNull())
    .addColumn('low', 'float8', (c) => c.notNull())
    .addColumn('high', 'float8', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // A detector scores each (series, event time) once: a re-run batch cannot add a second flag.
    .addUniqueConstraint('anomalies_series_ts', ['series_id', 'ts'])
    .execute()
  await db.schema.createIndex('anomalies_metric_ts').on('anomalies').columns(['metric', 'ts desc', 'id desc']).execute()

  await db.schema
    .createTable('alert_rules')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('metric', 'text', (c) => c.notNull())
    .addColumn('dims', 'jsonb', (c) => c.notNull())
    .addColumn('aggregate', 'text', (c) => c.notNull())
    .addColumn('window_s', 'integer', (c) => c.notNull())
    .addColumn('op', 'text', (c) => c.notNull())
    .addColumn('value', 'float8', (c) => c.notNull())
    .addColumn('for_s', 'integer', (c) => c.notNull())
    .addColumn('severity', 'text', (c) => c.notNull())
    .addColumn('labels', 'jsonb', (c) => c.notNull())
    .addColumn('enabled', 'boolean', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    // Deleted rules are kept: their alerts stay in the history.
    .addColumn('deleted_at', 'timestamptz')
    .execute()

  // One rule's evaluation state on one series: its window of samples and where the lifecycle stands.
  await db.schema
    .createTable('rule_state')
    .addColumn('rule_id', 'bigint', (c) => c.notNull().references('alert_rules.id').onDelete('cascade'))
    .addColumn('series_id', 'bigint', (c) => c.notNull().references('series.id').onDelete('cascade'))
    .addColumn('state', 'jsonb', (c) => c.notNull())
    .addPrimaryKeyConstraint('rule_state_pk', ['rule_id', 'series_id'])
    .execute()

  await db.schema
    .createTable('alerts')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('rule_id', 'bigint', (c) => c.notNull().references('alert_rules.id').onDelete('cascade'))
    .addColumn('series_id', 'bigint', (c) => c.notNull().references('series.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('severity', 'text', (c) => c.notNull())
    .addColumn('pending_at', 'timestamptz', (c) => c.notNull())
    .addColumn('firing_at', 'timestamptz')
    .addColumn('resolved_at', 'timestamptz')
    .addColumn('value', 'float8', (c) => c.notNull())
    .addColumn('cause', 'jsonb', (c) => c.notNull())
    .addColumn('resolution', 'jsonb')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  // Deduplication: at most one open (pending or firing) alert per rule x series.
  await sql`CREATE UNIQUE INDEX alerts_open ON alerts (rule_id, series_id) WHERE status IN ('pending', 'firing')`.execute(db)
  await db.schema.createIndex('alerts_recent').on('alerts').columns(['updated_at desc', 'id desc']).execute()

  // The outbox of state changes: every change is delivered from here (alert stream, webhooks), in id order per series.
  await db.schema
    .createTable('alert_events')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('alert_id', 'bigint', (c) => c.notNull().references('alerts.id').onDelete('cascade'))
    .addColumn('series_id', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('dispatched_at', 'timestamptz')
    .execute()
  await sql`CREATE INDEX alert_events_undispatched ON alert_events (id) WHERE dispatched_at IS NULL`.execute(db)

  await db.schema
    .createTable('webhooks')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('secret', 'text', (c) => c.notNull())
    .addColumn('filter', 'jsonb', (c) => c.notNull())
    .addColumn('enabled', 'boolean', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('webhook_id', 'bigint', (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
    .addColumn('alert_event_id', 'bigint', (c) => c.notNull().references('alert_events.id').onDelete('cascade'))
    .addColumn('series_id', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .addColumn('last_status', 'integer')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .addUniqueConstraint('webhook_deliveries_once', ['webhook_id', 'alert_event_id'])
    .execute()
  await db.schema.createIndex('webhook_deliveries_order').on('webhook_deliveries').columns(['webhook_id', 'series_id', 'alert_event_id']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['webhook_deliveries', 'webhooks', 'alert_events', 'alerts', 'rule_state', 'alert_rules', 'anomalies', 'detector_state', 'anomaly_settings']) {
    await db.schema.dropTable(t).execute()
  }
}
