/**
 * The last `capacity` values of a series, kept twice: in arrival order (a ring) and sorted (kept
 * sorted by moving the few elements between the removed and the inserted value's positions). So
 * the median and any quantile are O(1), the MAD is one O(n) two-pointer walk out from the median,
 * and no sample ever costs a full sort.
 */
export class RollingWindow {
  readonly capacity: number
  private readonly ring: Float64Array
  private readonly sorted: Float64Array
  private n = 0
  /** Next write position in the ring; when full, also the position of the oldest value. */
  private pos = 0

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`window capacity must be a positive integer, got ${capacity}`)
    this.capacity = capacity
    this.ring = new Float64Array(capacity)
    this.sorted = new Float64Array(capacity)
  }

  get size(): number {
    return this.n
  }

  /** Adds a (finite) value, evicting the oldest one when the window is full. */
  push(x: number): void {
    const s = this.sorted
    if (this.n < this.capacity) {
      let j = this.n
      while (j > 0 && s[j - 1]! > x) {
        s[j] = s[j - 1]!
        j--
      }
      s[j] = x
      this.ring[this.pos] = x
      this.n++
      this.pos = this.pos + 1 === this.capacity ? 0 : this.pos + 1
      return
    }
    const old = this.ring[this.pos]!
    this.ring[this.pos] = x
    this.pos = this.pos + 1 === this.capacity ? 0 : this.pos + 1
    if (old === x) return
    let j = this.lowerBound(old)
    const n = this.n
    if (x > old) {
      while (j + 1 < n && s[j + 1]! < x) {
        s[j] = s[j + 1]!
        j++
      }
    } else {
      while (j > 0 && s[j - 1]! > x) {
        s[j] = s[j - 1]!
        j--
      }
    }
    s[j] = x
  }

  /** Index of the first sorted value >= x. */
  private lowerBound(x: number): number {
    const s = this.sorted
    let lo = 0
    let hi = this.n
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (s[mid]! < x) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Index of the first sorted value > x. */
  private upperBound(x: number): number {
    const s = this.sorted
    let lo = 0
    let hi = this.n
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (s[mid]! <= x) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** How many values in the window are >= x. */
  countAtLeast(x: number): number {
    return this.n - this.lowerBound(x)
  }

  /** How many values in the window are <= x. */
  countAtMost(x: number): number {
    return this.upperBound(x)
  }

  median(): number {
    const n = this.n
    if (n === 0) return NaN
    const h = n >>> 1
    return n % 2 === 1 ? this.sorted[h]! : (this.sorted[h - 1]! + this.sorted[h]!) / 2
  }

  /** Quantile q in [0, 1] with linear interpolation between order statistics. */
  quantile(q: number): number {
    const n = this.n
    if (n === 0) return NaN
    const p = q * (n - 1)
    const i = Math.floor(p)
    if (i >= n - 1) return this.sorted[n - 1]!
    const f = p - i
    const a = this.sorted[i]!
    return f === 0 ? a : a + (this.sorted[i + 1]! - a) * f
  }

  /**
   * Median absolute deviation from `med` (the window's median): the distances of the values below
   * and above the median each grow monotonically outwards, so merging the two runs from the middle
   * reaches the middle distance after n/2 steps.
   */
  mad(med: number): number {
    const n = this.n
    if (n === 0) return NaN
    const s = this.sorted
    let r = this.lowerBound(med)
    let l = r - 1
    const k = (n - 1) >>> 1 // rank of the (lower) middle distance
    let prev = 0
    for (let i = 0; ; i++) {
      let d: number
      const dl = l >= 0 ? med - s[l]! : Infinity
      const dr = r < n ? s[r]! - med : Infinity
      if (dl <= dr) {
        d = dl
        l--
      } else {
        d = dr
        r++
      }
      if (i === k) {
        if (n % 2 === 1) return d
        prev = d
      } else if (i === k + 1) {
        return (prev + d) / 2
      }
    }
  }

  /** The values in arrival order, oldest first. */
  values(): number[] {
    const out = new Array<number>(this.n)
    const start = this.n < this.capacity ? 0 : this.pos
    for (let i = 0; i < this.n; i++) out[i] = this.ring[(start + i) % this.capacity]!
    return out
  }

  /** Replaces the content with `values` (oldest first); keeps only the newest `capacity` of them. */
  load(values: readonly number[]): void {
    this.n = 0
    this.pos = 0
    const from = Math.max(0, values.length - this.capacity)
    for (let i = from; i < values.length; i++) this.push(values[i]!)
  }
}
