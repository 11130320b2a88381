import { pino, type Logger } from 'pino'

export type { Logger }

export function makeLogger(level: string, role: string): Logger {
  return pino({ level, base: { role, pid: process.pid } })
}
