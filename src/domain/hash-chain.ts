import { createHash } from 'node:crypto'

export const HASH_BYTES = 32
export const GENESIS = Buffer.alloc(HASH_BYTES)

/** Each link covers the previous hash and the event's canonical JSON text. */
export function link(prev: Uint8Array, eventText: string): Buffer {
  return createHash('sha256').update(prev).update(eventText).digest()
}

/** Hashes of a run of events following `prev`, concatenated, and the new head. */
export function chain(prev: Buffer, texts: readonly string[]): { hashes: Buffer; head: Buffer } {
  const hashes = Buffer.alloc(texts.length * HASH_BYTES)
  let head = prev
  texts.forEach((text, i) => {
    head = link(head, text)
    head.copy(hashes, i * HASH_BYTES)
  })
  return { hashes, head }
}

export interface ArchivedEntry {
  partition: number
  firstSeq: number
  count: number
  entryId: string
  events: string
  hashes: Buffer
}

export type Break =
  | { kind: 'removed'; partition: number; seq: number; detail: string }
  | { kind: 'inserted'; partition: number; seq: number; entryId: string; detail: string }
  | { kind: 'changed'; partition: number; seq: number; entryId: string; index: number; eventId: string | null; detail: string }

/**
 * Walks one partition's archive in sequence order from a known link (`prevHash` before
 * `expectedSeq`) and reports the first break: a gap in the sequence (events removed), an overlap
 * or a count that disagrees with the stored hashes (events inserted or removed inside an entry),
 * or an event whose recomputed hash differs from the stored one (changed). The stored hashes
 * are checked against each other too, so rewriting one event's hash breaks the next link.
 */
export function verifyEntries(entries: readonly ArchivedEntry[], expectedSeq: number, prevHash: Buffer): { ok: true; head: Buffer; nextSeq: number } | { ok: false; break: Break } {
  let seq = expectedSeq
  let prev = prevHash
  for (const e of entries) {
    if (e.firstSeq > seq) return { ok: false, break: { kind: 'removed', partition: e.partition, seq, detail: `events ${seq} to ${e.firstSeq - 1} are missing` } }
    if (e.firstSeq < seq) return { ok: false, break: { kind: 'inserted', partition: e.partition, seq: e.firstSeq, entryId: e.entryId, detail: `entry ${e.entryId} overlaps events already chained up to ${seq - 1}` } }
    let texts: string[]
    try {
      texts = (JSON.parse(e.events) as unknown[]).map((ev) => JSON.stringify(ev))
    } catch {
      return { ok: false, break: { kind: 'changed', partition: e.partition, seq, entryId: e.entryId, index: 0, eventId: null, detail: `entry ${e.entryId} is no longer valid JSON` } }
    }
    const stored = e.hashes.length / HASH_BYTES
    if (texts.length !== e.count || stored !== e.count) {
      const kind = texts.length > stored ? 'inserted' : 'removed'
      return { ok: false, break: { kind, partition: e.partition, seq, entryId: e.entryId, detail: `entry ${e.entryId} holds ${texts.length} events but ${stored} were chained` } as Break }
    }
    for (let i = 0; i < texts.length; i++) {
      const h = link(prev, texts[i] as string)
      if (!h.equals(e.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES))) {
        const eventId = (JSON.parse(texts[i] as string) as { id?: string }).id ?? null
        return { ok: false, break: { kind: 'changed', partition: e.partition, seq: seq + i, entryId: e.entryId, index: i, eventId, detail: `event ${eventId ?? `#${i}`} of entry ${e.entryId} does not match its hash` } }
      }
      prev = h
    }
    seq += e.count
  }
  return { ok: true, head: prev, nextSeq: seq }
}
