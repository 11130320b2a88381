import { parseArgs } from 'node:util'

export type Scenario = 'ingest' | 'e2e' | 'reports' | 'fanout' | 'replay' | 'import' | 'mqtt'

const DRAIN_TIMEOUT_S: Record<Exclude<Scenario, 'ingest' | 'fanout'>, number> = { e2e: 90, reports: 900, replay: 300, import: 600, mqtt: 300 }

export interface Options {
  scenarios: Scenario[]
  /** undefined: each scenario's own default (ingest 0, e2e 1, reports 1). */
  workers: number | undefined
  partitions: number | undefined
  concurrency: number
  batch: number
  durationS: number
  warmupS: number
  e2eDurationS: number
  /** undefined: each scenario's own default; see drainTimeoutOf. */
  drainTimeoutS: number | undefined
  subscribers: number
  rate: number
  tickMs: number
  latencyDurationS: number
  latencyWarmupS: number
  cases: number
  /** replay: metric events posted before the archive is read back. */
  events: number
  /** fanout: socket counts, one round each. */
  sockets: number[]
  /** fanout: batches (deltas) per topic per second; --rate for fanout. */
  fanoutRate: number
  /** import: rows of the history file. */
  rows: number
  /** import: live events per second posted before and during the import. */
  liveRate: number
  /** import: seconds between two samples of one series in the history file. */
  importStepS: number
  /** mqtt: messages published per QoS phase. */
  messages: number
  /** mqtt: publishing clients. */
  publishers: number
  /** mqtt: phases, in order. */
  mqttQos: (0 | 1)[]
  /** mqtt: the broker (a project-local Mosquitto is started when none answers on loopback). */
  mqttUrl: string
}

export const USAGE = `npm run bench -- <ingest|e2e|reports|fanout|replay|import|mqtt|all> [flags]   (all = ingest, e2e, reports, replay, import)

  --workers N            drain worker processes (default: 0 for ingest, 1 for e2e, reports, fanout, replay and import)
  --partitions N         LANTERN_PARTITIONS for the run (default: the server's)
  --concurrency K        concurrent keep-alive HTTP clients at full speed (default 8)
  --batch N              events per request at full speed (default 1000)
  --duration S           ingest, fanout: seconds of posting, warm-up included (default 15)
  --warmup S             ingest, fanout: first seconds left out of the figures (default 2)
  --e2e-duration S       e2e throughput: seconds of posting at full speed (default 10)
  --drain-timeout S      e2e throughput, reports, replay, import: most seconds to wait for the drain to commit everything (default 90 for e2e, 900 for reports, 300 for replay, 600 for import)
  --subscribers S        e2e latency: WebSocket subscribers (default 25, one province topic each)
  --rate R               e2e latency: events per second posted (default 10000)
                         fanout: deltas per topic per second, one posted batch each (default 13)
  --tick-ms MS           e2e latency: pacing interval of the posted batches (default 25)
  --latency-duration S   e2e latency: seconds of paced posting (default 15)
  --latency-warmup S     e2e latency: first seconds of deltas left out of the figures (default 1)
  --cases N              reports: dossiers posted, two events each (default 393000)
  --events N             replay: metric events posted, then exported, audited and verified (default 500000)
  --sockets N,N          fanout: WebSocket subscribers per round, rounds in order (default 1000,10000)
  --rows N               import: rows of the generated history file (default 1000000)
  --live-rate R          import: live events per second posted before and during the import (default 2000)
  --import-step S        import: seconds between two samples of a series in the history (default 60)
  --messages N           mqtt: messages published per QoS (default 200000), timed from the first publish to committed state
  --publishers N         mqtt: publishing MQTT clients (default 2)
  --qos 1,0              mqtt: QoS of the subscription and the messages, one phase each, in order (default 1,0)
  --mqtt-url URL         mqtt: the broker (default $MQTT_URL or mqtt://127.0.0.1:1883; a local Mosquitto is started when none answers)
`

export class UsageError extends Error {
  override name = 'UsageError'
}

function number(raw: string, flag: string, min: number, max: number, integer = true): number {
  const n = Number(raw)
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
    throw new UsageError(`--${flag} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}, got "${raw}"`)
  }
  return n
}

function scenariosOf(name: string | undefined): Scenario[] {
  if (name === 'ingest' || name === 'e2e' || name === 'reports' || name === 'fanout' || name === 'replay' || name === 'import' || name === 'mqtt') return [name]
  if (name === 'all') return ['ingest', 'e2e', 'reports', 'replay', 'import']
  throw new UsageError(name === undefined ? 'name a scenario' : `unknown scenario "${name}"`)
}

export function parseOptions(argv: string[]): Options | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      workers: { type: 'string' },
      partitions: { type: 'string' },
      concurrency: { type: 'string', default: '8' },
      batch: { type: 'string', default: '1000' },
      duration: { type: 'string', default: '15' },
      warmup: { type: 'string', default: '2' },
      'e2e-duration': { type: 'string', default: '10' },
      'drain-timeout': { type: 'string' },
      subscribers: { type: 'string', default: '25' },
      rate: { type: 'string' },
      'tick-ms': { type: 'string', default: '25' },
      'latency-duration': { type: 'string', default: '15' },
      'latency-warmup': { type: 'string', default: '1' },
      cases: { type: 'string', default: '393000' },
      events: { type: 'string', default: '500000' },
      sockets: { type: 'string', default: '1000,10000' },
      rows: { type: 'string', default: '1000000' },
      'live-rate': { type: 'string', default: '2000' },
      'import-step': { type: 'string', default: '60' },
      messages: { type: 'string', default: '200000' },
      publishers: { type: 'string', default: '2' },
      qos: { type: 'string', default: '1,0' },
      'mqtt-url': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) return 'help'
  if (positionals.length > 1) throw new UsageError(`one scenario at a time, got ${positionals.join(', ')}`)
  const options: Options = {
    scenarios: scenariosOf(positionals[0]),
    workers: values.workers === undefined ? undefined : number(values.workers, 'workers', 0, 16),
    partitions: values.partitions === undefined ? undefined : number(values.partitions, 'partitions', 1, 1024),
    concurrency: number(values.concurrency, 'concurrency', 1, 256),
    batch: number(values.batch, 'batch', 1, 50_000),
    durationS: number(values.duration, 'duration', 1, 600, false),
    warmupS: number(values.warmup, 'warmup', 0, 60, false),
    e2eDurationS: number(values['e2e-duration'], 'e2e-duration', 1, 600, false),
    drainTimeoutS: values['drain-timeout'] === undefined ? undefined : number(values['drain-timeout'], 'drain-timeout', 1, 3600, false),
    subscribers: number(values.subscribers, 'subscribers', 1, 1000),
    rate: number(values.rate ?? '10000', 'rate', 1, 1_000_000),
    tickMs: number(values['tick-ms'], 'tick-ms', 5, 1000),
    latencyDurationS: number(values['latency-duration'], 'latency-duration', 1, 600, false),
    latencyWarmupS: number(values['latency-warmup'], 'latency-warmup', 0, 60, false),
    cases: number(values.cases, 'cases', 1, 5_000_000),
    events: number(values.events, 'events', 1, 10_000_000),
    sockets: values.sockets.split(',').map((x) => number(x.trim(), 'sockets', 1, 100_000)),
    fanoutRate: positionals[0] === 'fanout' ? number(values.rate ?? '13', 'rate', 0.5, 100, false) : 13,
    rows: number(values.rows, 'rows', 1, 20_000_000),
    liveRate: number(values['live-rate'], 'live-rate', 1, 100_000),
    importStepS: number(values['import-step'], 'import-step', 1, 86_400),
    messages: number(values.messages, 'messages', 1, 10_000_000),
    publishers: number(values.publishers, 'publishers', 1, 64),
    mqttQos: values.qos.split(',').map((x) => number(x.trim(), 'qos', 0, 1) as 0 | 1),
    mqttUrl: values['mqtt-url'] ?? (process.env.MQTT_URL || 'mqtt://127.0.0.1:1883'),
  }
  if (options.workers === 0 && !options.scenarios.every((s) => s === 'ingest')) throw new UsageError('e2e, reports, fanout, replay and import need at least one worker (mqtt too)')
  if (options.warmupS >= options.durationS) throw new UsageError('--warmup must be shorter than --duration')
  if (options.latencyWarmupS >= options.latencyDurationS) throw new UsageError('--latency-warmup must be shorter than --latency-duration')
  return options
}

export function drainTimeoutOf(opts: Options, scenario: keyof typeof DRAIN_TIMEOUT_S): number {
  return opts.drainTimeoutS ?? DRAIN_TIMEOUT_S[scenario]
}
