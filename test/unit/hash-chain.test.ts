import t from 'tap'
import { GENESIS, fingerprints, link, verifyEntries, type ArchivedEntry } from '../../src/domain/hash-chain.js'

const entry = (prev: Buffer, firstSeq: number, texts: string[], entryId: string): ArchivedEntry => {
  const events = texts.join('\n')
  return { partition: 0, firstSeq, count: texts.length, entryId, events, hash: link(prev, events), fingerprints: fingerprints(texts) }
}

function build(): ArchivedEntry[] {
  const a = entry(GENESIS, 0, ['{"id":"a1","value":1}', '{"id":"a2","value":2}'], '1-0')
  const b = entry(a.hash, 2, ['{"id":"b1","value":3}'], '2-0')
  const c = entry(b.hash, 3, ['{"id":"c1","value":4}', '{"id":"c2","value":5}'], '3-0')
  return [a, b, c]
}

t.test('an untouched chain verifies to its head', async (t) => {
  const entries = build()
  const v = verifyEntries(entries, 0, GENESIS)
  t.ok(v.ok)
  if (v.ok) t.same([v.nextSeq, v.head.equals((entries[2] as ArchivedEntry).hash)], [5, true])
})

t.test('each kind of tampering is named', async (t) => {
  const changed = build()
  ;(changed[2] as ArchivedEntry).events = '{"id":"c1","value":4}\n{"id":"c2","value":50}'
  t.match(verifyEntries(changed, 0, GENESIS), { ok: false, break: { kind: 'changed', seq: 4, eventId: 'c2' } })

  const removed = build()
  removed.splice(1, 1)
  t.match(verifyEntries(removed, 0, GENESIS), { ok: false, break: { kind: 'removed', seq: 2 } })

  const inserted = build()
  ;(inserted[1] as ArchivedEntry).events += '\n{"id":"x","value":9}'
  t.match(verifyEntries(inserted, 0, GENESIS), { ok: false, break: { kind: 'inserted', seq: 2, entryId: '2-0' } })

  const rehashed = build()
  ;(rehashed[0] as ArchivedEntry).hash = Buffer.alloc(32, 1)
  t.match(verifyEntries(rehashed, 0, GENESIS), { ok: false, break: { kind: 'changed', index: -1 } })
})
