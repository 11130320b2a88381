export type Dims = Readonly<Record<string, string>>

/** Dims with keys in code-point order: the one spelling of a series' dims. */
export function canonicalDims(dims: Dims): Record<string, string> {
  const keys = Object.keys(dims).sort()
  const out: Record<string, string> = {}
  for (const k of keys) out[k] = dims[k] as string
  return out
}

/** A series is its metric plus its canonical dims; dims must already be canonical. */
export function seriesKey(metric: string, canonical: Dims): string {
  return `${metric}${JSON.stringify(canonical)}`
}

/**
 * FNV-1a over UTF-16 code units. Stable across processes and releases: changing it would move
 * series between partitions and break their ordering, so it is frozen.
 */
export function stableHash(text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

export function partitionOf(key: string, partitions: number): number {
  return stableHash(key) % partitions
}

/** True when every pair of `filter` is in `dims` (an empty filter matches every series). */
export function dimsMatch(dims: Dims, filter: Dims): boolean {
  for (const k in filter) if (dims[k] !== filter[k]) return false
  return true
}
