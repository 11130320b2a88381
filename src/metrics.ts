import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** One registry per process; every Lantern metric is declared here so names stay consistent. */
export function makeMetrics(role: string) {
  const registry = new Registry()
  registry.setDefaultLabels({ role })
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  return {
    registry,
    eventsAccepted: new Counter({ name: 'lantern_events_accepted_total', help: 'Events appended to the log', labelNames: ['kind'], registers }),
    eventsDuplicate: new Counter({ name: 'lantern_events_duplicate_total', help: 'Events dropped as repeats of an accepted id', labelNames: ['kind'], registers }),
    eventsRejected: new Counter({ name: 'lantern_events_rejected_total', help: 'Events refused at ingest', labelNames: ['kind', 'reason'], registers }),
    eventsDrained: new Counter({ name: 'lantern_events_drained_total', help: 'Events folded into state and committed', labelNames: ['partition'], registers }),
    eventsLate: new Counter({ name: 'lantern_events_late_total', help: 'Events older than the allowed lateness, counted per series and kept out of buckets', labelNames: ['partition'], registers }),
    drainLag: new Gauge({
      name: 'lantern_drain_lag_seconds',
      help: 'Age of the oldest log entry not yet committed, per partition (0 when caught up)',
      labelNames: ['partition'],
      registers,
      aggregator: 'max',
    }),
    commitLatency: new Histogram({
      name: 'lantern_drain_commit_seconds',
      help: 'Duration of one drain transaction (state and checkpoint)',
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    checkpointConflicts: new Counter({ name: 'lantern_drain_checkpoint_conflicts_total', help: 'Drain batches rolled back because another drainer moved the checkpoint', registers }),
    anomaliesFlagged: new Counter({ name: 'lantern_anomalies_flagged_total', help: 'Samples the detectors flagged', registers }),
    alertChanges: new Counter({ name: 'lantern_alert_changes_total', help: 'Alert state changes committed (pending, firing, resolved, cancelled)', registers }),
    sockets: new Gauge({ name: 'lantern_live_sockets', help: 'Open live sockets on this hub', registers }),
    liveTopics: new Gauge({ name: 'lantern_live_topics', help: 'Topics with at least one subscriber on this hub', registers }),
    deltasPublished: new Counter({ name: 'lantern_live_deltas_published_total', help: 'Topic deltas this hub computed and published', registers }),
    messagesSent: new Counter({ name: 'lantern_live_messages_sent_total', help: 'Messages written to sockets', registers }),
    slowClosed: new Counter({ name: 'lantern_live_slow_closed_total', help: 'Sockets closed for falling too far behind', registers }),
  }
}

export type Metrics = ReturnType<typeof makeMetrics>
