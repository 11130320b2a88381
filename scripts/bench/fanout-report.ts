import type { CpuUsage } from './cpu.js'
import type { FanoutResult, FanoutSide } from './fanout.js'
import type { CleanupReport, ProcessReport } from './stack.js'

export interface FanoutOutcome {
  result?: FanoutResult
  error?: string
  processes: ProcessReport[]
  cleanup: CleanupReport
}

/** A run failed if the scenario or any round did, or a round lost sockets or messages. */
export function fanoutFailed(o: FanoutOutcome): boolean {
  return (
    o.error !== undefined ||
    (o.result?.rounds ?? []).some((r) => r.error !== undefined || [r.lantern, r.socketio].some((s) => s !== undefined && (s.connected < s.sockets || Object.keys(s.closes).length > 0)))
  )
}

const n = (v: number | null | undefined, digits = 0): string =>
  v === null || v === undefined ? '-' : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })

const WIDTH = 28
const cols = (label: string, a: string, b: string, r = ''): string => `  ${label.padEnd(30)} ${a.padEnd(WIDTH)} ${b.padEnd(WIDTH)} ${r}`.trimEnd()

const cpuLine = (c: CpuUsage): string => {
  const ours = Object.entries(c.processes).map(([name, pct]) => `${name} ${pct}`)
  const top = c.topOthers.length > 0 ? ` (${c.topOthers.map((o) => `${o.name} ${o.pct}`).join(', ')})` : ''
  return `${ours.join(', ')}, other ${c.otherPct ?? '-'}${top}; machine ${c.machineBusyPct ?? '-'}% busy, ${c.stealPct ?? '-'}% stolen`
}

const rssLine = (s: FanoutSide): string => {
  const r = s.serverRssMiB
  const growth = r.peak !== null && r.start !== null ? ` (+${n(r.peak - r.start)})` : ''
  return `${n(r.start)} / ${n(r.connected)} / ${n(r.peak)}${growth}`
}

const endings = (s: FanoutSide): string => {
  const closes = Object.entries(s.closes).map(([k, v]) => `${v} x ${k}`)
  const failed = Object.entries(s.connectFailures).map(([k, v]) => `${v} x connect: ${k}`)
  const all = [...failed, ...closes, ...(s.problemCount > 0 ? [`${s.problemCount} problems: ${s.problems.slice(0, 2).join('; ')}`] : [])]
  return all.length === 0 ? 'none' : all.join('; ')
}

export function fanoutSection(f: FanoutResult): string[] {
  const s = f.settings
  const lines = [
    `fanout (${s.topics} aggregate topics ${s.metric} ${s.window} by province, a batch of ${s.eventsPerBatch} events per topic every ${n(s.intervalMs, 1)} ms (${n(s.perTopicRate, 1)}/s per topic), ${s.durationS} s of sending, first ${s.warmupS} s left out; open-files limit ${s.openFilesLimit ?? '-'})`,
  ]
  for (const r of f.rounds) {
    lines.push(cols(`${n(r.sockets)} sockets`, 'Lantern', 'Socket.IO', 'Lantern / Socket.IO'))
    if (r.error) lines.push(cols('FAILED', r.error, ''))
    const l = r.lantern
    const o = r.socketio
    const ratio = (k: string): string => n(r.ratios?.[k], 2)
    const both = (label: string, f: (x: FanoutSide) => string, k = ''): void => {
      lines.push(cols(label, l ? f(l) : '-', o ? f(o) : '-', k ? ratio(k) : ''))
    }
    both('subscribed (connect time)', (x) => `${n(x.connected)}/${n(x.sockets)} (${n(x.connectS, 1)} s)`)
    both('deltas published/s', (x) => n(x.publishedPerSec, 1), 'publishedPerSec')
    both('messages delivered/s', (x) => n(x.deliveredPerSec), 'deliveredPerSec')
    both('delivered / expected (all)', (x) => n(x.deliveredRatio, 4))
    both('latency p50 ms', (x) => n(x.latencyMs.p50, 1), 'latencyP50')
    both('latency p99 ms', (x) => n(x.latencyMs.p99, 1), 'latencyP99')
    both('latency max ms', (x) => n(x.latencyMs.max, 1))
    both('mean message bytes', (x) => n(x.meanMessageBytes))
    lines.push(cols('server RSS MiB start/conn/peak', l ? rssLine(l) : '-', o ? rssLine(o) : '-', `${ratio('serverRssPeak')} peak, ${ratio('serverRssGrowth')} growth`))
    both('server cpu % of one core', (x) => n(x.serverCpuPct), 'serverCpu')
    both('bench cpu % (all clients)', (x) => n(x.cpu.processes.bench))
    both('bench loop delay p99/max ms', (x) => `${n(x.benchLoopDelayMs.p99, 1)} / ${n(x.benchLoopDelayMs.max, 1)}`)
    both('sends late by > 1 interval', (x) => `${n(x.lateSends)} of ${n(x.sent)}`)
    both('sockets with final value', (x) => `${n(x.socketsComplete)}/${n(x.connected)}${x.settleS !== null ? ` (${n(x.settleS, 1)} s after sending)` : ''}`)
    both('bench kept up', (x) => (x.benchSaturated ? 'NO: saturated' : 'yes'))
    if (l?.benchSaturated || o?.benchSaturated) {
      lines.push('    the bench fell behind its schedule or its event loop stalled: these figures are the limit of this machine (server + clients), not of the server alone')
    }
    lines.push(cols('closes, failures, problems', '', ''))
    if (l) lines.push(`    Lantern: ${endings(l)}`)
    if (o) lines.push(`    Socket.IO: ${endings(o)}`)
    if (l?.hub) {
      const h = l.hub
      const postErrors = Object.entries(l.sendErrors).map(([k, v]) => `${v} x ${k}`)
      lines.push(`    Lantern hub counters: ${n(h.deltasPublishedPerSec, 1)} deltas/s, ${n(h.messagesSentPerSec)} messages sent/s, ${h.slowClosed} closed as too slow (4008); post errors ${postErrors.length > 0 ? postErrors.join('; ') : '0'}`)
    }
    if (l) lines.push(`    cpu % Lantern: ${cpuLine(l.cpu)}`)
    if (o) lines.push(`    cpu % Socket.IO: ${cpuLine(o.cpu)}`)
  }
  lines.push(`  note: ${f.note}`)
  return lines
}
