import { createHash } from 'node:crypto'
import { stableHash } from './series-key.js'

export const HASH_BYTES = 32
export const GENESIS = Buffer.alloc(HASH_BYTES)
const FINGERPRINT_BYTES = 4

/**
 * One link per log entry: SHA-256 of the previous link and the entry's events (NDJSON, exactly as
 * appended). Tamper evidence comes from this chain alone. The per-event fingerprints (FNV-1a)
 * are not a defence, only a pointer: when an entry's link breaks they say which event differs.
 * One SHA-256 per entry instead of per event keeps the drain fast.
 */
export function link(prev: Uint8Array, eventsText: string, importId: number | null = null): Buffer {
  const h = createHash('sha256').update(prev)
  // An entry of the import lane is folded without the lateness judgment, so its lane (and job)
  // is part of what the link covers: flipping it in the archive breaks the chain.
  if (importId !== null) h.update(`import ${importId}\n`)
  return h.update(eventsText).digest()
}

export function fingerprints(texts: readonly string[]): Buffer {
  const out = Buffer.alloc(texts.length * FINGERPRINT_BYTES)
  texts.forEach((t, i) => out.writeUInt32BE(stableHash(t), i * FINGERPRINT_BYTES))
  return out
}

export interface ArchivedEntry {
  partition: number
  firstSeq: number
  count: number
  entryId: string
  /** The entry's events, one JSON text per line, exactly as appended. */
  events: string
  hash: Buffer
  fingerprints: Buffer
  /** The import job of an import-lane entry; null (or absent) for live traffic. */
  importId?: number | null
}

export type Break =
  | { kind: 'removed'; partition: number; seq: number; detail: string }
  | { kind: 'inserted'; partition: number; seq: number; entryId: string; detail: string }
  | { kind: 'changed'; partition: number; seq: number; entryId: string; index: number; eventId: string | null; detail: string }

const idOf = (text: string): string | null => {
  try {
    return (JSON.parse(text) as { id?: string }).id ?? null
  } catch {
    return null
  }
}

/**
 * Walks one partition's archive in sequence order from a known link (`prevHash` before
 * `expectedSeq`) and reports the first break: a gap in the sequence (events removed), an overlap
 * (inserted), an entry whose event count no longer matches its fingerprints (events inserted or
 * removed inside it), or an entry whose recomputed link differs (an event changed: the
 * fingerprints name it, or the stored hash itself was edited).
 */
export function verifyEntries(entries: readonly ArchivedEntry[], expectedSeq: number, prevHash: Buffer): { ok: true; head: Buffer; nextSeq: number } | { ok: false; break: Break } {
  let seq = expectedSeq
  let prev = prevHash
  for (const e of entries) {
    if (e.firstSeq > seq) return { ok: false, break: { kind: 'removed', partition: e.partition, seq, detail: `events ${seq} to ${e.firstSeq - 1} are missing` } }
    if (e.firstSeq < seq) return { ok: false, break: { kind: 'inserted', partition: e.partition, seq: e.firstSeq, entryId: e.entryId, detail: `entry ${e.entryId} overlaps events already chained up to ${seq - 1}` } }
    const texts = e.events === '' ? [] : e.events.split('\n')
    const stored = e.fingerprints.length / FINGERPRINT_BYTES
    if (texts.length !== e.count || stored !== e.count) {
      const kind = texts.length > stored ? 'inserted' : 'removed'
      return { ok: false, break: { kind, partition: e.partition, seq, entryId: e.entryId, detail: `entry ${e.entryId} holds ${texts.length} events but ${stored} were chained` } as Break }
    }
    const h = link(prev, e.events, e.importId ?? null)
    if (!h.equals(e.hash)) {
      const now = fingerprints(texts)
      let i = 0
      while (i < texts.length && now.readUInt32BE(i * FINGERPRINT_BYTES) === e.fingerprints.readUInt32BE(i * FINGERPRINT_BYTES)) i++
      if (i === texts.length) {
        return { ok: false, break: { kind: 'changed', partition: e.partition, seq, entryId: e.entryId, index: -1, eventId: null, detail: `entry ${e.entryId} does not match its link (its stored hash or fingerprints were edited)` } }
      }
      const eventId = idOf(texts[i] as string)
      return { ok: false, break: { kind: 'changed', partition: e.partition, seq: seq + i, entryId: e.entryId, index: i, eventId, detail: `event ${eventId ?? `#${i}`} of entry ${e.entryId} was changed` } }
    }
    prev = h
    seq += e.count
  }
  return { ok: true, head: prev, nextSeq: seq }
}
