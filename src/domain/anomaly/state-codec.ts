/**
 * Little-endian binary writer and reader for detector state. Numbers that take part in detection
 * are written with the same precision they have in memory (float64, or float32 for values the
 * detectors keep in a Float32Array), so a decoded detector continues bit for bit like the original.
 */

export class AnomalyStateError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'AnomalyStateError'
  }
}

export class StateWriter {
  private buf: ArrayBuffer
  private view: DataView
  private pos = 0

  constructor(initial = 1024) {
    this.buf = new ArrayBuffer(initial)
    this.view = new DataView(this.buf)
  }

  private room(bytes: number): void {
    if (this.pos + bytes <= this.buf.byteLength) return
    let size = this.buf.byteLength * 2
    while (size < this.pos + bytes) size *= 2
    const next = new ArrayBuffer(size)
    new Uint8Array(next).set(new Uint8Array(this.buf, 0, this.pos))
    this.buf = next
    this.view = new DataView(next)
  }

  u8(v: number): void {
    this.room(1)
    this.view.setUint8(this.pos, v)
    this.pos += 1
  }

  u16(v: number): void {
    this.room(2)
    this.view.setUint16(this.pos, v, true)
    this.pos += 2
  }

  i32(v: number): void {
    this.room(4)
    this.view.setInt32(this.pos, v, true)
    this.pos += 4
  }

  f32(v: number): void {
    this.room(4)
    this.view.setFloat32(this.pos, v, true)
    this.pos += 4
  }

  f64(v: number): void {
    this.room(8)
    this.view.setFloat64(this.pos, v, true)
    this.pos += 8
  }

  f64s(values: ArrayLike<number>): void {
    this.room(values.length * 8)
    for (let i = 0; i < values.length; i++) {
      this.view.setFloat64(this.pos, values[i]!, true)
      this.pos += 8
    }
  }

  f32s(values: ArrayLike<number>): void {
    this.room(values.length * 4)
    for (let i = 0; i < values.length; i++) {
      this.view.setFloat32(this.pos, values[i]!, true)
      this.pos += 4
    }
  }

  i32s(values: ArrayLike<number>): void {
    this.room(values.length * 4)
    for (let i = 0; i < values.length; i++) {
      this.view.setInt32(this.pos, values[i]!, true)
      this.pos += 4
    }
  }

  u16s(values: ArrayLike<number>): void {
    this.room(values.length * 2)
    for (let i = 0; i < values.length; i++) {
      this.view.setUint16(this.pos, values[i]!, true)
      this.pos += 2
    }
  }

  u8s(values: ArrayLike<number>): void {
    this.room(values.length)
    for (let i = 0; i < values.length; i++) this.view.setUint8(this.pos++, values[i]!)
  }

  done(): Buffer {
    return Buffer.from(this.buf, 0, this.pos)
  }
}

export class StateReader {
  private readonly view: DataView
  private pos = 0

  constructor(buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  get remaining(): number {
    return this.view.byteLength - this.pos
  }

  private need(bytes: number): void {
    if (this.pos + bytes > this.view.byteLength) throw new AnomalyStateError('truncated anomaly detector state')
  }

  u8(): number {
    this.need(1)
    return this.view.getUint8(this.pos++)
  }

  u16(): number {
    this.need(2)
    const v = this.view.getUint16(this.pos, true)
    this.pos += 2
    return v
  }

  i32(): number {
    this.need(4)
    const v = this.view.getInt32(this.pos, true)
    this.pos += 4
    return v
  }

  f32(): number {
    this.need(4)
    const v = this.view.getFloat32(this.pos, true)
    this.pos += 4
    return v
  }

  f64(): number {
    this.need(8)
    const v = this.view.getFloat64(this.pos, true)
    this.pos += 8
    return v
  }

  f64s(into: Float64Array | number[], count: number): void {
    this.need(count * 8)
    for (let i = 0; i < count; i++) {
      into[i] = this.view.getFloat64(this.pos, true)
      this.pos += 8
    }
  }

  f32s(into: Float32Array, count: number): void {
    this.need(count * 4)
    for (let i = 0; i < count; i++) {
      into[i] = this.view.getFloat32(this.pos, true)
      this.pos += 4
    }
  }

  i32s(into: Int32Array, count: number): void {
    this.need(count * 4)
    for (let i = 0; i < count; i++) {
      into[i] = this.view.getInt32(this.pos, true)
      this.pos += 4
    }
  }

  u16s(into: Uint16Array, count: number): void {
    this.need(count * 2)
    for (let i = 0; i < count; i++) {
      into[i] = this.view.getUint16(this.pos, true)
      this.pos += 2
    }
  }

  u8s(into: Uint8Array, count: number): void {
    this.need(count)
    for (let i = 0; i < count; i++) into[i] = this.view.getUint8(this.pos++)
  }

  skip(bytes: number): void {
    this.need(bytes)
    this.pos += bytes
  }
}
