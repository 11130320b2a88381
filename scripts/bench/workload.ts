/**
 * What the bench posts: readings of stations grouped by province, about 500 series, timestamped
 * now. Full-speed bodies are serialized once, before timing, as templates whose request tag (in
 * every id) and timestamp are then patched in place per request: ids stay unique and times
 * current while the client does no JSON work in the timed loop.
 */

export interface Series {
  metric: string
  province: string
  station: string
}

export const PROVINCES = 25
export const SOURCE = 'bench'
const TAG_WIDTH = 8
const TS_WIDTH = 13

const pad = (n: number, width: number): string => String(n).padStart(width, '0')
export const provinceCode = (i: number): string => pad(i + 1, 2)

export function seriesGrid(metrics: readonly string[], stationsPerProvince: number): Series[] {
  const out: Series[] = []
  for (const metric of metrics)
    for (let p = 0; p < PROVINCES; p++)
      for (let s = 0; s < stationsPerProvince; s++) out.push({ metric, province: provinceCode(p), station: `st${pad(p * stationsPerProvince + s + 1, 4)}` })
  return out
}

/** A plausible reading for event i of a series: a level per series plus noise. */
export function readingOf(seriesIndex: number, i: number): number {
  const level = 20 + (seriesIndex % 17) * 3
  const noise = ((i * 2654435761 + seriesIndex * 40503) % 1000) / 100
  return Math.round((level + noise) * 100) / 100
}

export interface BodyTemplate {
  readonly bytes: Buffer
  readonly events: number
  readonly tagOffsets: Uint32Array
  readonly tsOffsets: Uint32Array
}

const TAG_HOLDER = '0'.repeat(TAG_WIDTH)
const TS_HOLDER = '0'.repeat(TS_WIDTH)

/** One JSON array of `events` events over `series`, round-robin from `firstSeries`. */
export function buildTemplate(series: readonly Series[], events: number, firstSeries: number): BodyTemplate {
  const digits = String(events - 1).length
  const tagOffsets = new Uint32Array(events)
  const tsOffsets = new Uint32Array(events)
  const parts: string[] = ['[']
  let offset = 1
  for (let i = 0; i < events; i++) {
    const index = (firstSeries + i) % series.length
    const s = series[index] as Series
    const head = `${i > 0 ? ',' : ''}{"id":"`
    const middle = `-${pad(i, digits)}","source":"${SOURCE}","metric":"${s.metric}","ts":`
    const tail = `,"value":${readingOf(index, firstSeries + i)},"dims":{"province":"${s.province}","station":"${s.station}"}}`
    tagOffsets[i] = offset + head.length
    tsOffsets[i] = offset + head.length + TAG_WIDTH + middle.length
    parts.push(head, TAG_HOLDER, middle, TS_HOLDER, tail)
    offset += head.length + TAG_WIDTH + middle.length + TS_WIDTH + tail.length
  }
  parts.push(']')
  const bytes = Buffer.from(parts.join(''), 'latin1')
  if (bytes.length !== offset + 1) throw new Error('template offsets are off: series names must be ASCII')
  return { bytes, events, tagOffsets, tsOffsets }
}

export function cloneTemplate(t: BodyTemplate): BodyTemplate {
  return { ...t, bytes: Buffer.from(t.bytes) }
}

/** Request tags are unique per run: the request number in base 36, fixed width. */
export function requestTag(n: number): string {
  return n.toString(36).padStart(TAG_WIDTH, '0')
}

/** Patches the template in place and returns its bytes; the previous request must have been sent. */
export function stamp(t: BodyTemplate, tag: string, ts: number): Buffer {
  const tagBytes = Buffer.from(tag, 'latin1')
  const tsBytes = Buffer.from(String(ts), 'latin1')
  if (tagBytes.length !== TAG_WIDTH || tsBytes.length !== TS_WIDTH) throw new Error(`tag ${tag} or time ${ts} does not fit the template`)
  for (let i = 0; i < t.events; i++) {
    tagBytes.copy(t.bytes, t.tagOffsets[i])
    tsBytes.copy(t.bytes, t.tsOffsets[i])
  }
  return t.bytes
}
