/**
 * Every Redis key and queue name is built here. Keys that a Lua script touches together share a
 * hash tag ({...}) so the script works on Redis Cluster: a partition's stream and its idempotency
 * keys live in the partition's slot; a topic's sequence, history and versions live in the topic's.
 */
export interface Keys {
  prefix: string
  stream(partition: number): string
  /** The partition's import lane: history imports, drained beside the live stream (live entries first). */
  importStream(partition: number): string
  /** Per import job, in the partition's slot: last chunk appended (`<job>:mark`), events, duplicates, last entry id. */
  importJobs(partition: number): string
  seen(partition: number, source: string, id: string): string
  topicSeq(topicId: string): string
  topicHistory(topicId: string): string
  topicVersions(topicId: string): string
  topicChannel(topicId: string): string
  changesChannel: string
  /** A worker's latest metrics snapshot, merged into the API's /metrics. */
  workerMetrics(workerId: string): string
  workerMetricsPattern: string
  /** BullMQ prefix: its own tag keeps every queue key in one slot, as BullMQ requires. */
  bullPrefix: string
  drainQueue: string
  maintenanceQueue: string
  auditQueue: string
  importQueue: string
  /** Alert state changes for consumers that read with consumer groups (XREADGROUP) and resume after downtime. */
  alertStream: string
  /** Marks an alert event as already on the alert stream (same slot as the stream, for the Lua script). */
  alertStreamed(alertEventId: string): string
  webhookQueue: string
  /** Rules and detector settings changed: drainers reload them when this number moves. */
  configVersion: string
  /** Every source that ever sent, scored by its last arrival (ms). */
  sourceNames: string
  /** One source's health: last arrival, newest event time, lag, counts, last rejection. */
  sourceHealth(source: string): string
  /** Events per source in one wall-clock minute (kept a few minutes, for the rate). */
  sourceRate(minute: number): string
}

export function makeKeys(prefix: string): Keys {
  return {
    prefix,
    stream: (p) => `${prefix}:{p${p}}:log`,
    importStream: (p) => `${prefix}:{p${p}}:import`,
    importJobs: (p) => `${prefix}:{p${p}}:import-jobs`,
    seen: (p, source, id) => `${prefix}:{p${p}}:seen:${source}\u0000${id}`,
    topicSeq: (t) => `${prefix}:{t${t}}:seq`,
    topicHistory: (t) => `${prefix}:{t${t}}:history`,
    topicVersions: (t) => `${prefix}:{t${t}}:versions`,
    topicChannel: (t) => `${prefix}:{t${t}}:deltas`,
    changesChannel: `${prefix}:changes`,
    workerMetrics: (id) => `${prefix}:metrics:worker:${id}`,
    workerMetricsPattern: `${prefix}:metrics:worker:*`,
    bullPrefix: `${prefix}:{queues}`,
    drainQueue: 'drain',
    maintenanceQueue: 'maintenance',
    auditQueue: 'audit',
    importQueue: 'import',
    alertStream: `${prefix}:{alerts}:stream`,
    alertStreamed: (id) => `${prefix}:{alerts}:streamed:${id}`,
    webhookQueue: 'webhook',
    configVersion: `${prefix}:config-version`,
    sourceNames: `${prefix}:{sources}:names`,
    sourceHealth: (source) => `${prefix}:{sources}:health:${source}`,
    sourceRate: (minute) => `${prefix}:{sources}:rate:${minute}`,
  }
}

export const drainJobId = (partition: number): string => `drain-p${partition}`
