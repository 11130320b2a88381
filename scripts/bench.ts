/**
 * npm run bench -- <ingest|e2e|reports|fanout|replay|import|mqtt|all> [flags]   (npm run bench -- --help lists the flags)
 *
 * Each scenario runs against a system of its own: a fresh database and Redis key prefix, an API
 * process and N drain workers, all removed again afterwards. Progress goes to stderr; stdout gets
 * a table and, as its last line, one JSON object with every figure.
 */
import { runLatency, type LatencyResult } from './bench/e2e-latency.js'
import { runThroughput, type ThroughputResult } from './bench/e2e-throughput.js'
import { runFanout } from './bench/fanout.js'
import { fanoutFailed, type FanoutOutcome } from './bench/fanout-report.js'
import { runIngest } from './bench/ingest.js'
import { parseOptions, USAGE, type Options, type Scenario } from './bench/options.js'
import { machineInfo, renderTable, targetsOf, type E2eOutcome, type ImportOutcome, type IngestOutcome, type MqttOutcome, type Report, type ReplayOutcome, type ReportsOutcome } from './bench/report.js'
import { runReplay } from './bench/replay.js'
import { runImport } from './bench/import.js'
import { runMqtt } from './bench/mqtt.js'
import { runReports } from './bench/reports.js'
import { Stack, type CleanupReport, type ProcessReport } from './bench/stack.js'
import { errorMessage, say } from './bench/util.js'

const DEFAULT_WORKERS: Record<Scenario, number> = { ingest: 0, e2e: 1, reports: 1, fanout: 1, replay: 1, import: 1, mqtt: 1 }

let active: Stack | undefined

interface StackRun<T> {
  result?: T
  error?: string
  processes: ProcessReport[]
  cleanup: CleanupReport
}

async function runIngestScenario(opts: Options): Promise<IngestOutcome> {
  const workers = opts.workers ?? DEFAULT_WORKERS.ingest
  const run = await withStack(workers, opts, (stack) => runIngest(stack, opts, workers))
  return { ...run.result, error: run.error, processes: run.processes, cleanup: run.cleanup }
}

async function runE2eScenario(opts: Options): Promise<E2eOutcome> {
  const workers = opts.workers ?? DEFAULT_WORKERS.e2e
  const run = await withStack(workers, opts, async (stack): Promise<{ throughput: ThroughputResult; latency?: LatencyResult; error?: string }> => {
    const throughput = await runThroughput(stack, opts, workers)
    // The latency phase needs an empty log, else it would time the throughput backlog.
    if (!throughput.complete) return { throughput, error: 'the drain did not commit everything in time; latency phase skipped' }
    return { throughput, latency: await runLatency(stack, opts) }
  })
  return { ...run.result, error: run.error ?? run.result?.error, processes: run.processes, cleanup: run.cleanup }
}

async function runReportsScenario(opts: Options): Promise<ReportsOutcome> {
  const workers = opts.workers ?? DEFAULT_WORKERS.reports
  const run = await withStack(workers, opts, (stack) => runReports(stack, opts, workers))
  return { reproduced: run.result?.reproduced ?? false, result: run.result, error: run.error, processes: run.processes, cleanup: run.cleanup }
}

async function runFanoutScenario(opts: Options): Promise<FanoutOutcome> {
  const run = await withStack(opts.workers ?? DEFAULT_WORKERS.fanout, opts, (stack) => runFanout(stack, opts))
  return { result: run.result, error: run.error, processes: run.processes, cleanup: run.cleanup }
}

async function runReplayScenario(opts: Options): Promise<ReplayOutcome> {
  const workers = opts.workers ?? DEFAULT_WORKERS.replay
  const run = await withStack(workers, opts, (stack) => runReplay(stack, opts, workers))
  return { result: run.result, error: run.error, processes: run.processes, cleanup: run.cleanup }
}

async function runImportScenario(opts: Options): Promise<ImportOutcome> {
  const workers = opts.workers ?? DEFAULT_WORKERS.import
  const run = await withStack(workers, opts, (stack) => runImport(stack, opts, workers))
  return { result: run.result, error: run.error, processes: run.processes, cleanup: run.cleanup }
}

async function runMqttScenario(opts: Options): Promise<MqttOutcome> {
  const workers = opts.workers ?? DEFAULT_WORKERS.mqtt
  const run = await withStack(workers, opts, (stack) => withBroker(stack, opts, () => runMqtt(stack, opts, workers)))
  return { result: run.result, error: run.error, processes: run.processes, cleanup: run.cleanup }
}

/** Finds the MQTT broker, or starts a project-local Mosquitto (scripts/services.ts) for the run and stops it afterwards. */
async function withBroker<T>(stack: Stack, opts: Options, fn: () => Promise<T>): Promise<T> {
  const { ensureServices } = await import('./services.js')
  const services = await ensureServices({ databaseUrl: stack.databaseUrl, redisUrl: stack.redisUrl, mqttUrl: opts.mqttUrl, log: (msg) => say(`services: ${msg}`) })
  try {
    return await fn()
  } finally {
    await services.stop()
  }
}

/** Sets up a fresh stack, runs fn on it and always tears it down; a failure becomes the run's error. */
async function withStack<T>(workers: number, opts: Options, fn: (stack: Stack) => Promise<T>): Promise<StackRun<T>> {
  const stack = new Stack({ workers, partitions: opts.partitions })
  active = stack
  const run: Partial<StackRun<T>> = {}
  try {
    await stack.setUp()
    run.result = await fn(stack)
  } catch (err) {
    say(`scenario failed: ${errorMessage(err)}`)
    run.error = errorMessage(err)
  }
  const processes = stack.processReports()
  const cleanup = await stack.teardown()
  active = undefined
  return { ...run, processes, cleanup }
}

function onSignal(signal: NodeJS.Signals): void {
  say(`${signal}: stopping and cleaning up`)
  const stack = active
  void (stack ? stack.teardown() : Promise.resolve()).finally(() => process.exit(130))
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseOptions>
  try {
    parsed = parseOptions(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n\n${USAGE}`)
    return 2
  }
  if (parsed === 'help') {
    process.stdout.write(USAGE)
    return 0
  }
  const opts = parsed
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)

  const partial: Omit<Report, 'targets'> = { machine: machineInfo() }
  for (const scenario of opts.scenarios) {
    if (scenario === 'ingest') partial.ingest = await runIngestScenario(opts)
    else if (scenario === 'e2e') partial.e2e = await runE2eScenario(opts)
    else if (scenario === 'fanout') partial.fanout = await runFanoutScenario(opts)
    else if (scenario === 'replay') partial.replay = await runReplayScenario(opts)
    else if (scenario === 'import') partial.import = await runImportScenario(opts)
    else if (scenario === 'mqtt') partial.mqtt = await runMqttScenario(opts)
    else partial.reports = await runReportsScenario(opts)
  }
  const report: Report = { ...partial, targets: targetsOf(partial) }
  process.stdout.write(`${renderTable(report)}\n${JSON.stringify(report)}\n`)

  const outcomes = [report.ingest, report.e2e, report.reports, report.fanout, report.replay, report.import, report.mqtt].filter((o) => o !== undefined)
  const failed = outcomes.some((o) => o.error !== undefined || !o.cleanup.databaseDropped || o.cleanup.keysLeft !== 0) || report.reports?.reproduced === false || (report.fanout !== undefined && fanoutFailed(report.fanout)) || (report.replay !== undefined && (report.replay.result?.problems.length ?? 1) > 0) || (report.import !== undefined && (report.import.result?.problems.length ?? 1) > 0) || (report.mqtt !== undefined && !(report.mqtt.result?.phases.every((p) => p.complete && p.lost === 0) ?? false))
  return failed ? 1 : 0
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    say(`bench failed: ${errorMessage(err)}`)
    process.exit(1)
  },
)
