import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import type { Readable } from 'node:stream'

/** Lines of a child's output echoed to stderr; the rest are only counted, so a noisy server cannot flood the run. */
const ECHOED_LINES = 20
/** Distinct problem messages counted per child; later new ones fall under "other". */
const KEPT_MESSAGES = 10
const ECHO_WIDTH = 300

export interface ChildExit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface ChildLog {
  warnings: number
  errors: number
  /** Output lines that are not pino JSON: stack traces, loader errors. */
  otherLines: number
  /** Warning and error lines by message (pino msg plus err.message). */
  messages: Record<string, number>
}

/**
 * One server process (API or worker) run with tsx. In its own process group, so a terminal's
 * Ctrl-C reaches only the bench, which then stops every child in order; with an IPC channel, so
 * that should the bench die without cleaning up, the child sees the channel close and stops by
 * itself (src/infra/supervised.ts).
 */
export class Child {
  readonly proc: ChildProcess
  readonly exited: Promise<ChildExit>
  readonly log: ChildLog = { warnings: 0, errors: 0, otherLines: 0, messages: {} }
  private echoed = 0
  private stopping = false

  constructor(
    readonly name: string,
    script: string,
    env: NodeJS.ProcessEnv,
    cwd: string,
  ) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true })
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })))
    this.watch(this.proc.stdout)
    this.watch(this.proc.stderr)
  }

  get pid(): number | undefined {
    return this.proc.pid
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null
  }

  /** Resolves when the child exits without having been asked to. */
  unexpectedExit(): Promise<ChildExit> {
    return this.exited.then((exit) => (this.stopping ? new Promise<never>(() => undefined) : exit))
  }

  async stop(graceMs: number): Promise<ChildExit> {
    this.stopping = true
    if (this.running) {
      this.proc.kill('SIGTERM')
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs)
      const exit = await this.exited
      clearTimeout(timer)
      return exit
    }
    return this.exited
  }

  private watch(stream: Readable | null): void {
    if (!stream) return
    createInterface({ input: stream }).on('line', (line) => this.onLine(line))
  }

  private onLine(line: string): void {
    if (line.trim() === '') return
    const entry = pinoEntry(line)
    if (entry === undefined) this.log.otherLines++
    else if (entry.level >= 50) this.log.errors++
    else if (entry.level >= 40) this.log.warnings++
    else return
    if (entry) this.countMessage(entry.message)
    if (this.echoed++ < ECHOED_LINES) process.stderr.write(`[${this.name}] ${line.slice(0, ECHO_WIDTH)}\n`)
  }

  private countMessage(message: string): void {
    const messages = this.log.messages
    const key = message in messages || Object.keys(messages).length < KEPT_MESSAGES ? message : 'other'
    messages[key] = (messages[key] ?? 0) + 1
  }
}

function pinoEntry(line: string): { level: number; message: string } | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const entry = JSON.parse(line) as { level?: unknown; msg?: unknown; err?: { message?: unknown } }
    if (typeof entry.level !== 'number') return undefined
    const cause = typeof entry.err?.message === 'string' ? `: ${entry.err.message}` : ''
    return { level: entry.level, message: `${String(entry.msg ?? '')}${cause}`.slice(0, 200) }
  } catch {
    return undefined
  }
}
