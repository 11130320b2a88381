import type { StateReader, StateWriter } from './state-codec.js'

/**
 * A periodic function of time learned from samples: `size` knots evenly spread over the period,
 * linearly interpolated between knot centres, positioned by timestamp (so gaps in the data just
 * leave knots untouched). Each knot counts the cycles (days, weeks) in which it received data, so
 * a caller can ask how many earlier cycles stand behind the value at a time.
 *
 * Learning is a gradient step of the interpolated value towards a target, with per-knot rates
 * 1/n over the first samples (a running mean) and a floor of 1/cap after that (an exponential
 * average over about cap samples).
 */
export class PeriodicKnots {
  readonly size: number
  readonly periodMs: number
  readonly knotMs: number
  readonly value: Float64Array | Float32Array
  readonly weight: Float32Array
  readonly cycles: Uint8Array
  /** Cycle number (mod 2^16) of each knot's latest data. */
  readonly lastCycle: Uint16Array
  /** Position of the last locate(): the two knots around the time, the weight of the second, and
   * the cycle each knot's neighbourhood belongs to (they differ from the time's cycle across the
   * wrap: just after midnight the left knot is yesterday's 23:45). */
  k0 = 0
  k1 = 0
  w1 = 0
  cycle0 = 0
  cycle1 = 0

  /** `single`: keep the values as float32 (half the state, for corrections that need no more). */
  constructor(size: number, periodMs: number, single = false) {
    this.size = size
    this.periodMs = periodMs
    this.knotMs = periodMs / size
    this.value = single ? new Float32Array(size) : new Float64Array(size)
    this.weight = new Float32Array(size)
    this.cycles = new Uint8Array(size)
    this.lastCycle = new Uint16Array(size)
  }

  locate(ts: number): void {
    const cycle = Math.floor(ts / this.periodMs)
    const u = (ts - cycle * this.periodMs) / this.knotMs - 0.5
    let k0 = Math.floor(u)
    this.w1 = u - k0
    this.cycle0 = cycle
    this.cycle1 = cycle
    if (k0 < 0) {
      k0 += this.size
      this.cycle0 = cycle - 1
    }
    this.k0 = k0
    if (k0 + 1 === this.size) {
      this.k1 = 0
      if (this.cycle0 === cycle) this.cycle1 = cycle + 1
    } else this.k1 = k0 + 1
  }

  /** Earlier cycles (before `cycle`) in which knot k had data. */
  prior(k: number, cycle: number): number {
    const n = this.cycles[k]!
    return n > 0 && this.lastCycle[k] === (cycle & 0xffff) ? n - 1 : n
  }

  /** prior() for the two located knots. */
  prior0(): number {
    return this.prior(this.k0, this.cycle0)
  }

  prior1(): number {
    return this.prior(this.k1, this.cycle1)
  }

  /** Whether any of the two located knots has data. */
  known(): boolean {
    return this.cycles[this.k0]! > 0 || this.cycles[this.k1]! > 0
  }

  /** Interpolated value at the located time from the knots that have data. */
  at(): number {
    const c0 = this.cycles[this.k0]! > 0
    const c1 = this.cycles[this.k1]! > 0
    if (c0 && c1) return this.value[this.k0]! + this.w1 * (this.value[this.k1]! - this.value[this.k0]!)
    if (c0) return this.value[this.k0]!
    if (c1) return this.value[this.k1]!
    return NaN
  }

  /** Interpolated value counting only knots with data from at least `minPrior` earlier cycles (others as 0). */
  atReady(minPrior: number): number {
    const v0 = this.prior0() >= minPrior ? this.value[this.k0]! : 0
    const v1 = this.prior1() >= minPrior ? this.value[this.k1]! : 0
    return v0 + this.w1 * (v1 - v0)
  }

  /** Earlier cycles behind the located value: the minimum over the two knots (0 if one has none). */
  priorCycles(): number {
    return Math.min(this.prior0(), this.w1 > 0 ? this.prior1() : Infinity)
  }

  /**
   * Moves the located value towards `target`: `err` is the (possibly winsorized) difference
   * target - current value; a knot without data starts at `target`.
   */
  learn(target: number, err: number, cap: number): void {
    this.learnKnot(this.k0, 1 - this.w1, this.cycle0, target, err, cap)
    this.learnKnot(this.k1, this.w1, this.cycle1, target, err, cap)
  }

  private learnKnot(k: number, w: number, cycle: number, target: number, err: number, cap: number): void {
    if (!(w > 0)) return
    const seen = this.cycles[k]!
    const cyc = cycle & 0xffff
    if (seen === 0) {
      this.cycles[k] = 1
      this.lastCycle[k] = cyc
      this.value[k] = target
      this.weight[k] = w
      return
    }
    if (this.lastCycle[k] !== cyc) {
      if (seen < 255) this.cycles[k] = seen + 1
      this.lastCycle[k] = cyc
    }
    let n = this.weight[k]! + w
    if (n > cap) n = cap
    this.weight[k] = n
    this.value[k] = this.value[k]! + (w / n) * err
  }

  encode(w: StateWriter): void {
    if (this.value instanceof Float32Array) w.f32s(this.value)
    else w.f64s(this.value)
    w.f32s(this.weight)
    w.u8s(this.cycles)
    w.u16s(this.lastCycle)
  }

  decode(r: StateReader): void {
    if (this.value instanceof Float32Array) r.f32s(this.value, this.size)
    else r.f64s(this.value, this.size)
    r.f32s(this.weight, this.size)
    r.u8s(this.cycles, this.size)
    r.u16s(this.lastCycle, this.size)
  }
}
