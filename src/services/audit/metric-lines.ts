/**
 * A fast reading of archived metric events for the audit's replay. An archived entry is NDJSON
 * that ingest wrote with JSON.stringify, so almost every line has one exact shape:
 *
 *   {"id":"…","source":"…","metric":"…","ts":<number>,"value":<number>,"dims":{"k":"v",…}}
 *
 * For such a line the replay needs only the time, the value and the series key, and the series
 * key (metric + JSON.stringify(dims)) is then a copy of the line's own text. scanMetricLine checks
 * every character of the line against that shape and hands back exactly what JSON.parse would
 * give; anything else (an escape, whitespace, another key order, a repeated or numeric dims key,
 * a hand-edited line) is refused, and the caller parses that entry with JSON.parse as before. The
 * fast path is an optimisation only: it never accepts a line whose parse would differ.
 */

/** One line read by scanMetricLine: offsets into the entry's text. */
export interface ScannedLine {
  ts: number
  value: number
  metricStart: number
  metricEnd: number
  /** The dims object's text, braces included: JSON.stringify of the parsed dims. */
  dimsStart: number
  dimsEnd: number
}

const ID = '{"id":"'
/** Each starts at the closing quote of the string before. */
const SOURCE = '","source":"'
const METRIC = '","metric":"'
const TS = '","ts":'
const VALUE = ',"value":'
const DIMS = ',"dims":{'
const KEY_END = '":"'

const QUOTE = 34
const PLUS = 43
const COMMA = 44
const MINUS = 45
const DOT = 46
const ZERO = 48
const NINE = 57
const UPPER_E = 69
const BACKSLASH = 92
const LOWER_E = 101
const CLOSE = 125

/** Powers of ten that are exact doubles. */
const POW10 = Array.from({ length: 16 }, (_, i) => 10 ** i)

/** True when s has `literal` at p. */
function at(s: string, p: number, literal: string): boolean {
  for (let i = 0; i < literal.length; i++) if (s.charCodeAt(p + i) !== literal.charCodeAt(i)) return false
  return true
}

/**
 * The closing quote of a JSON string whose text starts at p, on this line; -1 if there is none or
 * the string holds anything but plain characters: a backslash (an escape, whose decoded text
 * differs from the raw text), a raw control character (invalid JSON) or a UTF-16 surrogate
 * (JSON.stringify escapes lone ones). A plain string's value is its raw text.
 */
function stringEnd(s: string, p: number, end: number): number {
  for (; p < end; p++) {
    const c = s.charCodeAt(p)
    if (c > BACKSLASH) {
      if (c >= 0xd800 && c <= 0xdfff) return -1
    } else if (c === QUOTE) return p
    else if (c < 0x20 || c === BACKSLASH) return -1
  }
  return -1
}

/** The number scanNumber read last (a module variable: no allocation per number). */
let scanned = 0

/**
 * Reads a JSON number (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?) at p, not beyond end.
 * Returns the index after it and leaves its value in `scanned`, or returns -1. The value is the
 * one JSON.parse gives, the double nearest the decimal: with at most 15 digits and no exponent the
 * digits are an exact integer m, and m / 10^f (both exact doubles) is that double by IEEE
 * division's correct rounding; anything else goes through Number(), which rounds as JSON.parse does.
 */
function scanNumber(s: string, p: number, end: number): number {
  const start = p
  let c = s.charCodeAt(p)
  const negative = c === MINUS
  if (negative) c = s.charCodeAt(++p)
  if (c === ZERO) p++
  else if (c > ZERO && c <= NINE) {
    p++
    while (p < end && (c = s.charCodeAt(p)) >= ZERO && c <= NINE) p++
  } else return -1
  const integerEnd = p
  let fractionStart = p
  if (p < end && s.charCodeAt(p) === DOT) {
    fractionStart = ++p
    while (p < end && (c = s.charCodeAt(p)) >= ZERO && c <= NINE) p++
    if (p === fractionStart) return -1
  }
  const fractionEnd = p
  if (p < end && ((c = s.charCodeAt(p)) === LOWER_E || c === UPPER_E)) {
    p++
    if (p < end && ((c = s.charCodeAt(p)) === PLUS || c === MINUS)) p++
    const first = p
    while (p < end && (c = s.charCodeAt(p)) >= ZERO && c <= NINE) p++
    if (p === first) return -1
    scanned = Number(s.slice(start, p))
    return p
  }
  const digitsStart = negative ? start + 1 : start
  const fractionDigits = fractionEnd - fractionStart
  if (integerEnd - digitsStart + fractionDigits > 15) {
    scanned = Number(s.slice(start, p))
    return p
  }
  let m = 0
  for (let i = digitsStart; i < integerEnd; i++) m = m * 10 + (s.charCodeAt(i) - ZERO)
  for (let i = fractionStart; i < fractionEnd; i++) m = m * 10 + (s.charCodeAt(i) - ZERO)
  const v = fractionDigits === 0 ? m : m / (POW10[fractionDigits] as number)
  scanned = negative ? -v : v
  return p
}

/** True when the key s[a, aEnd) comes after the key s[b, bEnd) in code unit order (the order of canonical dims). */
function keyAfter(s: string, a: number, aEnd: number, b: number, bEnd: number): boolean {
  for (; a < aEnd && b < bEnd; a++, b++) {
    const d = s.charCodeAt(a) - s.charCodeAt(b)
    if (d !== 0) return d > 0
  }
  return a < aEnd
}

/**
 * Reads the line s[start, end) into out if it has the exact shape above. Returns false, with out
 * partly written, for any other line.
 */
export function scanMetricLine(s: string, start: number, end: number, out: ScannedLine): boolean {
  if (!at(s, start, ID)) return false
  let p = stringEnd(s, start + ID.length, end)
  if (p === -1 || !at(s, p, SOURCE)) return false
  p = stringEnd(s, p + SOURCE.length, end)
  if (p === -1 || !at(s, p, METRIC)) return false
  const metricStart = p + METRIC.length
  p = stringEnd(s, metricStart, end)
  if (p === -1 || !at(s, p, TS)) return false
  const metricEnd = p
  p = scanNumber(s, p + TS.length, end)
  if (p === -1 || !at(s, p, VALUE)) return false
  const ts = scanned
  p = scanNumber(s, p + VALUE.length, end)
  if (p === -1 || !at(s, p, DIMS)) return false
  const value = scanned
  const dimsStart = p + DIMS.length - 1
  p = dimsStart + 1
  if (s.charCodeAt(p) === CLOSE) p++
  else {
    let previous = -1
    let previousEnd = -1
    for (;;) {
      if (s.charCodeAt(p) !== QUOTE) return false
      const key = p + 1
      const keyEnd = stringEnd(s, key, end)
      if (keyEnd === -1 || !at(s, keyEnd, KEY_END)) return false
      // JSON.parse puts integer-like keys first and merges repeated ones; canonical dims are
      // sorted, so a key that starts with a digit or does not come after the one before is refused.
      const first = s.charCodeAt(key)
      if (first >= ZERO && first <= NINE) return false
      if (previous !== -1 && !keyAfter(s, key, keyEnd, previous, previousEnd)) return false
      previous = key
      previousEnd = keyEnd
      const valueEnd = stringEnd(s, keyEnd + KEY_END.length, end)
      if (valueEnd === -1) return false
      p = valueEnd + 1
      const c = s.charCodeAt(p)
      if (c === CLOSE) {
        p++
        break
      }
      if (c !== COMMA) return false
      p++
    }
  }
  if (p + 1 !== end || s.charCodeAt(p) !== CLOSE) return false
  out.ts = ts
  out.value = value
  out.metricStart = metricStart
  out.metricEnd = metricEnd
  out.dimsStart = dimsStart
  out.dimsEnd = p
  return true
}
