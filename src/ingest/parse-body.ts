import { AppError } from '../errors.js'

export const NDJSON_TYPES = ['application/x-ndjson', 'application/ndjson', 'application/jsonl', 'application/x-jsonlines']

/**
 * Turns a request body into a list of items: a JSON object is one event, a JSON array a batch,
 * NDJSON one event per non-blank line (blank lines do not count in event indexes). An NDJSON line
 * that is not JSON is reported by its index with the other bad events, so the client sees every
 * problem at once.
 */
export function parseEventBody(body: string, ndjson: boolean, maxEvents: number): unknown[] {
  const items = ndjson ? parseNdjson(body) : parseJson(body)
  if (items.length === 0) throw new AppError('EMPTY_BATCH', 'the request holds no events')
  if (items.length > maxEvents) {
    throw new AppError('TOO_MANY_EVENTS', `the request holds ${items.length} events; at most ${maxEvents} are accepted in one request`)
  }
  return items
}

function parseJson(body: string): unknown[] {
  let value: unknown
  try {
    value = JSON.parse(body)
  } catch (err) {
    throw new AppError('INVALID_JSON', `body is not valid JSON: ${(err as Error).message}`)
  }
  if (Array.isArray(value)) return value
  if (value !== null && typeof value === 'object') return [value]
  throw new AppError('INVALID_EVENTS', 'body must be an event object, an array of events, or NDJSON')
}

/** Stands in for an NDJSON line that is not JSON, so validation reports it with the rest. */
export class UnparsableLine {
  constructor(readonly reason: string) {}
}

function parseNdjson(body: string): unknown[] {
  const items: unknown[] = []
  for (const line of body.split('\n')) {
    const text = line.trim()
    if (text === '') continue
    try {
      items.push(JSON.parse(text))
    } catch (err) {
      items.push(new UnparsableLine(`line is not valid JSON: ${(err as Error).message}`))
    }
  }
  return items
}
