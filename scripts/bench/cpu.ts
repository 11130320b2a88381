import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { round } from './util.js'

/** A group of processes measured together: fixed pids, or every process with this command name. */
export interface CpuTarget {
  name: string
  pids?: number[]
  comm?: string
}

interface Proc {
  comm: string
  ticks: number
}

interface Snapshot {
  atMs: number
  procs: Map<number, Proc>
  system: { busy: number; steal: number; total: number } | undefined
}

export interface CpuUsage {
  /** Per target, percent of one core (200 = two cores busy), like top. */
  processes: Record<string, number>
  /** Whole machine, percent of all cores. */
  machineBusyPct: number | null
  /** Time the hypervisor gave to other guests, percent of all cores: on a VM the cores are not all ours. */
  stealPct: number | null
  /** Busy time of everything else on the machine, percent of one core: load the bench did not start. */
  otherPct: number | null
  /** The busiest of those other processes. */
  topOthers: { name: string; pct: number }[]
}

const TOP_OTHERS = 3
const CLOCK_TICKS = clockTicks()

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
}

/** Command name and utime + stime of every process; the name may hold spaces, so fields count from its ')'. */
function readProcs(): Map<number, Proc> {
  const procs = new Map<number, Proc>()
  let entries: string[] = []
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e))
  } catch {
    return procs
  }
  for (const entry of entries) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      procs.set(Number(entry), { comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ticks: Number(fields[11]) + Number(fields[12]) })
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return procs
}

/** Machine-wide ticks; guest time is already inside user time, so it is left out of the total. */
function systemTicks(): Snapshot['system'] {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? ''
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = line.trim().split(/\s+/).slice(1).map(Number)
    return { busy: user + nice + system + irq + softirq, steal, total: user + nice + system + idle + iowait + irq + softirq + steal }
  } catch {
    return undefined
  }
}

const snapshot = (): Snapshot => ({ atMs: performance.now(), procs: readProcs(), system: systemTicks() })

/**
 * Average CPU use of the server processes, Redis, PostgreSQL and the bench itself over a phase,
 * and of whatever else ran on the machine meanwhile, from /proc (Linux only; elsewhere empty).
 */
export class CpuMeter {
  private start = snapshot()

  constructor(private readonly targets: CpuTarget[]) {}

  /** Usage since construction (or the previous call), then starts a new interval. */
  lap(): CpuUsage {
    const end = snapshot()
    const usage = this.between(this.start, end)
    this.start = end
    return usage
  }

  private targetOf(pid: number, p: Proc): string | undefined {
    return this.targets.find((t) => t.pids?.includes(pid) || (t.comm !== undefined && t.comm === p.comm))?.name
  }

  private between(a: Snapshot, b: Snapshot): CpuUsage {
    const seconds = (b.atMs - a.atMs) / 1000
    const pct = (ticks: number): number => (seconds > 0 ? round((ticks / CLOCK_TICKS / seconds) * 100) : 0)
    const byTarget = new Map<string, number>(this.targets.map((t) => [t.name, 0]))
    const others: { name: string; ticks: number }[] = []
    for (const [pid, p] of b.procs) {
      // A process born during the interval spent all its ticks inside it.
      const ticks = p.ticks - (a.procs.get(pid)?.ticks ?? 0)
      const target = this.targetOf(pid, p)
      if (target) byTarget.set(target, (byTarget.get(target) ?? 0) + ticks)
      else if (ticks > 0) others.push({ name: `${p.comm}(${pid})`, ticks })
    }
    const processes = Object.fromEntries([...byTarget].map(([name, ticks]) => [name, pct(ticks)]))
    const sa = a.system
    const sb = b.system
    const span = sa && sb && sb.total > sa.total ? sb.total - sa.total : 0
    const share = (x: number): number | null => (sa && sb && span > 0 ? x / span : null)
    const busy = sa && sb ? share(sb.busy - sa.busy) : null
    const steal = sa && sb ? share(sb.steal - sa.steal) : null
    const listed = Object.values(processes).reduce((x, y) => x + y, 0)
    return {
      processes,
      machineBusyPct: busy === null ? null : round(busy * 100),
      stealPct: steal === null ? null : round(steal * 100),
      otherPct: busy === null ? null : Math.max(0, round(busy * 100 * cpus().length - listed)),
      topOthers: others
        .sort((x, y) => y.ticks - x.ticks)
        .slice(0, TOP_OTHERS)
        .map((o) => ({ name: o.name, pct: pct(o.ticks) })),
    }
  }
}
