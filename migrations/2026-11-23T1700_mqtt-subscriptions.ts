import { sql, type Kysely } from 'kysely'

/**
 * MQTT subscriptions: which broker and topic filters a connector subscribes to and how a message
 * becomes metric events. Live status (connected, counters, last error) is kept in Redis by the
 * worker that owns the subscription, not here: it changes with every batch.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('mqtt_subscriptions')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('broker_url', 'text', (c) => c.notNull())
    .addColumn('topic_filters', sql`text[]`, (c) => c.notNull())
    .addColumn('qos', 'smallint', (c) => c.notNull())
    .addColumn('mapping', 'jsonb', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    // Fixed per subscription so the broker keeps the session (and queues QoS 1 messages) while Lantern is down.
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('username', 'text')
    .addColumn('password', 'text')
    .addColumn('protocol_version', 'smallint', (c) => c.notNull().defaultTo(5))
    .addColumn('session_expiry_s', 'integer', (c) => c.notNull())
    // Filters dropped by an update: the connector unsubscribes them on connect, so the kept session stops receiving them.
    .addColumn('retired_filters', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('mqtt_subscriptions_client_id').on('mqtt_subscriptions').columns(['broker_url', 'client_id']).unique().execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('mqtt_subscriptions').execute()
}
