import os from 'node:os'
import type { CpuUsage } from './cpu.js'
import type { LatencyResult } from './e2e-latency.js'
import type { ThroughputResult } from './e2e-throughput.js'
import type { IngestResult } from './ingest.js'
import type { ExpectedKpis } from './dossiers.js'
import { fanoutSection, type FanoutOutcome } from './fanout-report.js'
import type { ReplayResult } from './replay.js'
import type { ImportResult } from './import.js'
import type { MqttBenchResult } from './mqtt.js'
import type { KpiFigures, ReportsResult } from './reports.js'
import type { CleanupReport, ProcessReport } from './stack.js'
import type { LatencySummary } from './stats.js'

export interface Machine {
  cpus: number
  cpuModel: string
  node: string
  platform: string
  memoryGiB: number
  /** 1-minute load average when the bench started: anything above ~0 means others were using the machine. */
  loadAverage1m: number
}

export interface ScenarioOutcome {
  error?: string
  processes: ProcessReport[]
  cleanup: CleanupReport
}

export type IngestOutcome = ScenarioOutcome & Partial<IngestResult>
export type E2eOutcome = ScenarioOutcome & { throughput?: ThroughputResult; latency?: LatencyResult }
/** reproduced: the KPIs came out exactly as the data set implies (false too when the run failed). */
export type ReportsOutcome = ScenarioOutcome & { reproduced: boolean; result?: ReportsResult }
export type ReplayOutcome = ScenarioOutcome & { result?: ReplayResult }
export type ImportOutcome = ScenarioOutcome & { result?: ImportResult }
export type MqttOutcome = ScenarioOutcome & { result?: MqttBenchResult }

export interface Target {
  name: string
  figure: number | null
  target: string
  met: boolean
}

export interface Report {
  machine: Machine
  ingest?: IngestOutcome
  e2e?: E2eOutcome
  reports?: ReportsOutcome
  fanout?: FanoutOutcome
  replay?: ReplayOutcome
  import?: ImportOutcome
  mqtt?: MqttOutcome
  targets: Target[]
}

export function machineInfo(): Machine {
  const cpus = os.cpus()
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAverage1m: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
  }
}

export function targetsOf(r: Omit<Report, 'targets'>): Target[] {
  const targets: Target[] = []
  const atLeast = (name: string, figure: number | null | undefined, min: number): void => {
    if (figure !== undefined) targets.push({ name, figure, target: `>= ${min}`, met: figure !== null && figure >= min })
  }
  atLeast('ingest events/s', r.ingest?.eventsPerSec, 100_000)
  atLeast('e2e steady committed events/s', r.e2e?.throughput?.steadyCommittedPerSec, 50_000)
  const p99 = r.e2e?.latency?.latencyMs.p99
  if (p99 !== undefined) targets.push({ name: 'e2e p99 ingest->delta ms', figure: p99, target: '< 250', met: p99 !== null && p99 < 250 })
  atLeast('replay re-derive events/s', r.replay?.result ? (r.replay.result.audit?.eventsPerSec ?? null) : undefined, 200_000)
  atLeast('import events/s to committed', r.import ? (r.import.result?.eventsPerSec ?? null) : undefined, 100_000)
  return targets
}

// ---------------------------------------------------------------------------------------------------------------------
// Plain-text table

const n = (v: number | null | undefined, digits = 0): string =>
  v === null || v === undefined ? '-' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })

const row = (label: string, value: string): string => `  ${label.padEnd(30)} ${value}`

const latencyLine = (l: LatencySummary): string => `p50 ${n(l.p50, 1)}  p90 ${n(l.p90, 1)}  p95 ${n(l.p95, 1)}  p99 ${n(l.p99, 1)}  max ${n(l.max, 1)}`

const cpuLine = (c: CpuUsage | null | undefined): string => {
  if (!c) return '-'
  const ours = Object.entries(c.processes).map(([name, pct]) => `${name} ${pct}`)
  const top = c.topOthers.length > 0 ? ` (${c.topOthers.map((o) => `${o.name} ${o.pct}`).join(', ')})` : ''
  return `${ours.join(', ')}, other ${c.otherPct ?? '-'}${top}; machine ${c.machineBusyPct ?? '-'}% busy, ${c.stealPct ?? '-'}% stolen`
}

const errorsLine = (errors: Record<string, number> | undefined): string => {
  const entries = Object.entries(errors ?? {})
  return entries.length === 0 ? '0' : entries.map(([k, v]) => `${v} x ${k}`).join('; ')
}

function ingestSection(r: IngestOutcome): string[] {
  const s = r.settings
  const lines = [`ingest${s ? ` (${s.concurrency} clients x ${s.batch} events/request, ${s.series} series, ${s.workers} workers, ${s.partitions} partitions, ${r.measuredS} s measured after ${s.warmupS} s warm-up)` : ''}`]
  if (r.eventsPerSec !== undefined) {
    lines.push(
      row('events/s acknowledged (202)', n(r.eventsPerSec)),
      row('requests/s', n(r.requestsPerSec, 1)),
      row('request latency ms', r.requestLatencyMs ? latencyLine(r.requestLatencyMs) : '-'),
      row('errors', errorsLine(r.errors)),
      row('duplicates', n(r.duplicates)),
      row('cpu % of one core', cpuLine(r.cpu)),
    )
  }
  return [...lines, ...outcomeLines(r)]
}

function throughputSection(t: ThroughputResult): string[] {
  const s = t.settings
  return [
    `e2e throughput (${s.concurrency} clients x ${s.batch} events/request for ${s.postS} s, ${s.workers} workers, ${s.partitions} partitions, committed sampled every ${s.sampleEveryMs} ms)`,
    row('accepted', `${n(t.acceptedEvents)} in ${n(t.postedS, 1)} s (${n(t.ingestEventsPerSec)}/s), errors ${errorsLine(t.postErrors)}`),
    row('first post -> all committed', t.complete ? `${n(t.allCommittedS, 2)} s` : `NOT complete: ${n(t.committedEvents)} committed when the wait ended`),
    row('committed/s overall', n(t.overallCommittedPerSec)),
    row('committed/s steady (10-90%)', n(t.steadyCommittedPerSec)),
    row('committed/s while posting', n(t.committedPerSecWhilePosting)),
    row('committed/s after posting', n(t.committedPerSecAfterPosting)),
    row('committed/s peak 1 s', n(t.peak1sCommittedPerSec)),
    row('max backlog (events)', n(t.maxBacklogEvents)),
    row('late events', n(t.lateEvents)),
    row('drain commits/s (approx.)', `${n(t.drainCommitsPerSec, 1)}, ${n(t.eventsPerDrainCommit)} events each`),
    row('cpu % while posting', cpuLine(t.cpuWhilePosting)),
    row('cpu % after posting', cpuLine(t.cpuAfterPosting)),
  ]
}

function latencySection(l: LatencyResult): string[] {
  const s = l.settings
  return [
    `e2e latency (${s.subscribers} subscribers on ${s.metric} ${s.window} province topics, ${n(s.rate)} events/s every ${s.tickMs} ms for ${s.durationS} s, first ${s.warmupS} s left out)`,
    row('posted', `${n(l.postedEvents)} (${n(l.postedPerSec)}/s), accepted ${n(l.acceptedEvents)}, errors ${errorsLine(l.postErrors)}, late ticks ${l.lateTicks}`),
    row('ingest -> delta ms', latencyLine(l.latencyMs)),
    row(`ingest -> commit ms (+0-${s.commitPollMs})`, latencyLine(l.commitLatencyMs)),
    row('drain commits/s (approx.)', `${n(l.drainCommitsPerSec, 1)}, ${n(l.eventsPerDrainCommit)} events each`),
    row('deltas', `${n(l.deltas)} received, ${n(l.deltasMeasured)} measured, ${n(l.deltasInWarmup)} in warm-up, ${n(l.deltasUnmatched)} unmatched`),
    row('subscribers with final counts', `${l.subscribersComplete}/${s.subscribers}`),
    row('worst deltas', l.spikes.map((x) => `${n(x.ms)} ms at ${n(x.atS, 1)} s`).join(', ') || '-'),
    row('max ms per second', l.maxLatencyMsBySecond.join(' ')),
    row('problems', l.problems.length === 0 ? 'none' : `${l.problems.length}: ${l.problems.slice(0, 3).join('; ')}`),
    row('cpu % of one core', cpuLine(l.cpu)),
  ]
}

const kpiLine = (k: KpiFigures | ExpectedKpis): string =>
  `received ${n(k.received)}, resolved ${n(k.resolved)}, on time ${n(k.resolvedOnTime)} (${n(k.onTimeRate, 4)}), backlog ${n(k.backlog)}, overdue ${n(k.overdue)}, time to resolve p50 ${n(k.timeToResolveP50Sec)} s p90 ${n(k.timeToResolveP90Sec)} s`

function reportsSection(t: ReportsResult): string[] {
  const s = t.settings
  const db = t.database
  return [
    `reports (${n(s.cases)} dossiers dvc/48, ${n(s.lateCases)} resolved late, ${n(s.events)} events shuffled in ${n(s.requests)} requests of ${s.batch} (${n(s.bodyMiB, 1)} MiB), ${s.concurrency} clients, ${s.workers} workers, ${s.partitions} partitions)`,
    row('accepted', `${n(t.acceptedEvents)} in ${n(t.postedS, 1)} s (${n(t.ingestEventsPerSec)} events/s, ${n(t.ingestCasesPerSec)} cases/s), errors ${errorsLine(t.postErrors)}, lost ${n(t.lostEvents)}`),
    row('first post -> all committed', t.complete ? `${n(t.allCommittedS, 2)} s` : `NOT complete: ${n(t.committedEvents)} committed when the wait ended`),
    row('cases/s end to end', n(t.casesPerSecEndToEnd)),
    row('committed/s steady (10-90%)', `${n(t.steadyCommittedPerSec)} events, ${n(t.steadyCommittedCasesPerSec)} cases`),
    row('committed/s while posting', n(t.committedPerSecWhilePosting)),
    row('committed/s after posting', n(t.committedPerSecAfterPosting)),
    row('committed/s peak 1 s', n(t.peak1sCommittedPerSec)),
    row('max backlog (events)', n(t.maxBacklogEvents)),
    row('drain commits/s (approx.)', `${n(t.drainCommitsPerSec, 1)}, ${n(t.eventsPerDrainCommit)} events each`),
    row('cpu % while posting', cpuLine(t.cpuWhilePosting)),
    row('cpu % after posting', cpuLine(t.cpuAfterPosting)),
    row(`KPIs in ${n(t.kpiQueryMs)} ms`, t.kpis ? kpiLine(t.kpis) : '-'),
    row('KPIs expected', kpiLine(t.expected)),
    row('database', db ? `${n(db.cases)} cases, ${n(db.findings)} findings` : '-'),
    row('reproduced', t.reproduced ? 'yes, exactly' : `NO: ${t.mismatches.join('; ')}`),
  ]
}

function replaySection(t: ReplayResult): string[] {
  const s = t.settings
  const e = t.export
  const a = t.audit
  const v = t.verify
  const b = t.rebuild
  const lines = [
    `replay (${n(s.events)} metric events over ${s.series} series, ts up to ${s.spreadMin} min back, ${n(s.requests)} requests of ${s.batch} (${n(s.bodyMiB, 1)} MiB), ${s.concurrency} clients, ${s.workers} workers, ${s.partitions} partitions)`,
    row('accepted', `${n(t.acceptedEvents)} in ${n(t.postedS, 1)} s (${n(t.ingestEventsPerSec)}/s), duplicates ${n(t.duplicates)}, errors ${errorsLine(t.postErrors)}, lost ${n(t.lostEvents)}`),
    row('first post -> all committed', t.complete ? `${n(t.allCommittedS, 2)} s` : `NOT complete: ${n(t.committedEvents)} committed when the wait ended`),
    row('export (NDJSON)', e ? `${n(e.lines)} lines, ${n(e.bytes / 1e6, 1)} MB in ${n(e.s, 2)} s: ${n(e.eventsPerSec)} events/s, ${n(e.mbPerSec, 1)} MB/s` : '-'),
    row('re-derive (audit)', a ? `${n(a.eventsReplayed)} events, ${n(a.bucketsCompared)} buckets, ${n(a.casesCompared)} cases in ${n(a.s, 2)} s: ${n(a.eventsPerSec)} events/s` : '-'),
    row('audit mismatches', a ? (a.mismatches.length === 0 ? 'none' : `${a.mismatches.length}`) : '-'),
  ]
  for (const m of a?.mismatches.slice(0, 20) ?? []) lines.push(row('', `${m.what} ${m.key} ${m.field}: stored ${JSON.stringify(m.stored)}, derived ${JSON.stringify(m.derived)} (events ${m.eventIds.slice(0, 5).join(', ')}${m.eventIds.length > 5 ? ', ...' : ''})`))
  if (a && a.mismatches.length > 20) lines.push(row('', `... ${a.mismatches.length - 20} more in the JSON`))
  lines.push(
    row('verify (hash chains)', v ? `${n(v.checked)} events in ${n(v.s, 2)} s: ${n(v.eventsPerSec)} events/s, ${v.ok ? 'ok' : 'NOT ok'}` : '-'),
    row('rebuild (into a new db)', b ? `${n(b.events)} events in ${n(b.s, 2)} s: ${n(b.eventsPerSec)} events/s (CLI: ${n(b.reportedS, 1)} s, ${n(b.reportedPerSec)}/s), state ${b.stateMatches ? 'matches' : 'DIFFERS'}` : '-'),
    row('problems', t.problems.length === 0 ? 'none' : t.problems.join('; ')),
  )
  return lines
}

function importSection(t: ImportResult): string[] {
  const s = t.settings
  const j = t.job
  return [
    `import (${n(s.rows)} rows NDJSON, ${n(s.fileMiB, 1)} MiB, ${s.series} series, a sample every ${s.stepS} s from ${s.historyFrom} to ${s.historyTo}; ${s.workers} workers, ${s.partitions} partitions; live ${n(s.liveRate)} events/s alongside)`,
    row('CLI start -> all committed', `${n(t.wallS, 2)} s: ${n(t.eventsPerSec)} events/s (file written in ${n(t.generatedS, 1)} s, not counted)`),
    row('CLI start -> all in the log', t.appendedS === null ? '-' : `${n(t.appendedS, 2)} s`),
    row('by the job (run start -> done)', t.committedS === null ? '-' : `${n(t.committedS, 2)} s: ${n(t.eventsPerSecByJob)} events/s`),
    row('job', j ? `${j.status}: ${n(j.rowsRead)} rows, ${n(j.eventsAppended)} appended, ${n(j.duplicates)} duplicates, ${n(j.eventsCommitted)} committed, ${n(j.badRows)} bad rows` : '-'),
    row('daily buckets count', `${n(t.bucketEvents)} imported events; ${n(t.lateEvents)} late events anywhere`),
    row('live ingest -> commit ms, alone', `${latencyLine(t.live.baseline)} (${n(t.live.baseline.count)} samples)`),
    row('live ingest -> commit ms, import', `${latencyLine(t.live.duringImport)} (${n(t.live.duringImport.count)} samples)`),
    row('live events', `${n(t.live.postedEvents)} posted, ${n(t.live.acceptedEvents)} accepted, ${n(t.live.committedAtEnd)} committed, errors ${errorsLine(t.live.errors)}`),
    row('cpu % during the import', `${cpuLine(t.cpu)}; the import CLI ${n(t.cliCpuPct)}`),
    row('problems', t.problems.length === 0 ? 'none' : t.problems.join('; ')),
  ]
}

function mqttSection(t: MqttBenchResult): string[] {
  const s = t.settings
  const lines = [`mqtt (${n(s.messages)} messages per QoS from ${s.publishers} publishers to ${s.brokerUrl}, ${s.series} series, at most ${n(s.aheadLimit)} ahead of the connector, ${s.workers} workers, ${s.partitions} partitions)`]
  for (const p of t.phases) {
    const c = p.connector
    lines.push(
      row(`QoS ${p.qos}: published`, `${n(p.published)} in ${n(p.publishS, 1)} s (${n(p.publishedPerSec)}/s); connector received ${n(p.receivedPerSec)}/s while publishing`),
      row(`QoS ${p.qos}: publish -> committed`, p.complete ? `${n(p.allCommittedS, 2)} s: ${n(p.messagesPerSec)} messages/s` : `NOT complete: ${n(p.committed)} committed when the wait ended`),
      row(`QoS ${p.qos}: committed/s steady`, n(p.steadyCommittedPerSec)),
      row(`QoS ${p.qos}: connector`, `${n(c.messages)} messages, ${n(c.accepted)} accepted, ${n(c.duplicates)} duplicates, ${n(c.rejected)} rejected, ${n(c.appendFailures)} append failures; lost ${n(p.lost)}`),
      row(`QoS ${p.qos}: cpu % of one core`, cpuLine(p.cpu)),
    )
  }
  return lines
}

function outcomeLines(r: ScenarioOutcome): string[] {
  const lines: string[] = []
  if (r.error) lines.push(row('FAILED', r.error))
  for (const p of r.processes) {
    const { warnings, errors, otherLines } = p.log
    const exit = p.exit ? `, exited ${p.exit.signal ?? `code ${p.exit.code}`}` : ''
    lines.push(row(`server log ${p.name}`, `${warnings} warnings, ${errors} errors, ${otherLines} other lines${exit}`))
    for (const [message, count] of Object.entries(p.log.messages).slice(0, 3)) lines.push(row('', `${count} x ${message}`))
  }
  const c = r.cleanup
  lines.push(row('clean-up', `database ${c.database} ${c.databaseDropped ? 'dropped' : 'NOT dropped'}, ${n(c.keysDeleted)} keys deleted, ${c.keysLeft} left${c.problems.length ? `; ${c.problems.join('; ')}` : ''}`))
  return lines
}

export function renderTable(r: Report): string {
  const m = r.machine
  const lines = [`Lantern bench: ${m.cpus} cpus (${m.cpuModel}), ${m.memoryGiB} GiB, node ${m.node}, ${m.platform}, load average ${m.loadAverage1m} at start`, '']
  if (r.ingest) lines.push(...ingestSection(r.ingest), '')
  if (r.e2e) {
    if (r.e2e.throughput) lines.push(...throughputSection(r.e2e.throughput), '')
    if (r.e2e.latency) lines.push(...latencySection(r.e2e.latency), '')
    lines.push('e2e processes', ...outcomeLines(r.e2e), '')
  }
  if (r.reports) {
    if (r.reports.result) lines.push(...reportsSection(r.reports.result), '')
    lines.push('reports processes', ...outcomeLines(r.reports), '')
  }
  if (r.fanout) {
    if (r.fanout.result) lines.push(...fanoutSection(r.fanout.result), '')
    lines.push('fanout processes', ...outcomeLines(r.fanout), '')
  }
  if (r.replay) {
    if (r.replay.result) lines.push(...replaySection(r.replay.result), '')
    lines.push('replay processes', ...outcomeLines(r.replay), '')
  }
  if (r.import) {
    if (r.import.result) lines.push(...importSection(r.import.result), '')
    lines.push('import processes', ...outcomeLines(r.import), '')
  }
  if (r.mqtt) {
    if (r.mqtt.result) lines.push(...mqttSection(r.mqtt.result), '')
    lines.push('mqtt processes', ...outcomeLines(r.mqtt), '')
  }
  if (r.targets.length > 0) {
    lines.push('targets')
    for (const t of r.targets) lines.push(row(t.name, `${n(t.figure, t.figure !== null && t.figure < 1000 ? 1 : 0)} (target ${t.target}): ${t.met ? 'met' : 'MISSED'}`))
  }
  return lines.join('\n')
}
