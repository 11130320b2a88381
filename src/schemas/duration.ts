import { Type } from '@sinclair/typebox'
import { AppError } from '../errors.js'

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const PATTERN = '^[0-9]{1,7}(s|m|h|d)$'

export const Duration = (description: string) =>
  Type.Union([Type.Integer({ minimum: 0, maximum: 31 * 86400, description: `${description} (seconds)` }), Type.String({ pattern: PATTERN, description: `${description} ("90s", "5m", "1h", "1d")` })])

/** Seconds of a duration given as seconds or as "5m"-style text; `field` names it in the 400. */
export function durationSeconds(raw: number | string, field: string): number {
  if (typeof raw === 'number') return raw
  const m = new RegExp(PATTERN).exec(raw)
  if (!m) throw new AppError('BAD_REQUEST', `${field} must be seconds or a duration like "5m", got "${raw}"`)
  const s = (Number(raw.slice(0, -1)) * (UNIT_MS[m[1] as string] as number)) / 1000
  if (s > 31 * 86400) throw new AppError('BAD_REQUEST', `${field} must be at most 31 days, got "${raw}"`)
  return s
}
