const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/

const daysInMonth = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate()

/**
 * Parses an ISO-8601 instant that names its zone; returns epoch ms or a reason. Calendar-invalid
 * dates (2026-02-30) are refused rather than rolled over as Date.parse would.
 */
export function parseIsoInstant(text: string): number | string {
  const m = ISO_8601.exec(text)
  if (!m) return 'must be ISO-8601 with a time zone, e.g. 2026-11-22T08:00:00Z, or epoch milliseconds'
  const [, y, mo, d, h, mi, s] = m
  const year = Number(y)
  const month = Number(mo)
  const day = Number(d)
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return `is not a calendar date: ${text}`
  if (Number(h) > 23 || Number(mi) > 59 || (s !== undefined && Number(s) > 59)) return `is not a time of day: ${text}`
  const ms = Date.parse(text)
  return Number.isNaN(ms) ? `cannot be read as an instant: ${text}` : ms
}
