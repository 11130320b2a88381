import type { BucketState } from '../../src/domain/bucket.js'

export const bucketCacheKey = (seriesId: number, widthS: number, startMs: number): string => `${seriesId}:${widthS}:${startMs}`

/**
 * Hot bucket states of one partition, least recently touched first. Valid only while the
 * partition's checkpoint is the one it was built at: the drainer clears it on any failure.
 */
export class BucketCache {
  private readonly entries = new Map<string, { state: BucketState; endMs: number }>()

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.entries.size
  }

  get(key: string): BucketState | undefined {
    return this.entries.get(key)?.state
  }

  set(key: string, state: BucketState, endMs: number): void {
    this.entries.delete(key)
    this.entries.set(key, { state, endMs })
  }

  /** Drops buckets no on-time event can reach any more, then the least recently touched. */
  evict(closedBeforeMs: number): void {
    for (const [key, e] of this.entries) if (e.endMs < closedBeforeMs) this.entries.delete(key)
    let excess = this.entries.size - this.maxEntries
    for (const key of this.entries.keys()) {
      if (excess-- <= 0) break
      this.entries.delete(key)
    }
  }

  clear(): void {
    this.entries.clear()
  }
}
