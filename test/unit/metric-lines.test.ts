import t from 'tap'
import { scanMetricLine, type ScannedLine } from '../../src/services/audit/metric-lines.js'
import { seriesKey } from '../../src/domain/series-key.js'

const scan = (line: string): ScannedLine | null => {
  const out: ScannedLine = { ts: 0, value: 0, metricStart: 0, metricEnd: 0, dimsStart: 0, dimsEnd: 0 }
  return scanMetricLine(line, 0, line.length, out) ? out : null
}

/** What the audit needs from a line, by the slow path: JSON.parse. */
function parsed(line: string): { ts: number; value: number; key: string } {
  const e = JSON.parse(line) as { ts: number; value: number; metric: string; dims: Record<string, string> }
  return { ts: e.ts, value: e.value, key: seriesKey(e.metric, e.dims) }
}

t.test('a line as ingest writes it is read exactly as JSON.parse reads it', async (t) => {
  const values = [0, -0.5, 41.2, 1e21, 123456789.123456, -7, 0.1 + 0.2, 5e-324, 1.7976931348623157e308, 3.14159265358979]
  for (const value of values) {
    for (const dims of [{}, { province: '46' }, { district: '474', province: '46', station: 'S12' }, { 'a.b': 'ẩm', z: 'Thừa Thiên Huế' }]) {
      const line = JSON.stringify({ id: 'gw7-1', source: 'hue-env', metric: 'air.pm25', ts: 1763798400123, value, dims })
      const s = scan(line)
      if (!s) {
        t.fail(`refused ${line}`)
        continue
      }
      const want = parsed(line)
      t.same({ ts: s.ts, value: s.value, key: line.slice(s.metricStart, s.metricEnd) + line.slice(s.dimsStart, s.dimsEnd) }, want, line)
    }
  }
})

t.test('any other shape is refused, so the caller parses it the slow way', async (t) => {
  const refused = [
    '{"id":"a","source":"s","metric":"m","ts":1,"value":2,"dims":{"b":"1","a":"2"}}', // unsorted dims
    '{"id":"a","source":"s","metric":"m","ts":1,"value":2,"dims":{"a":"1","a":"2"}}', // repeated key
    '{"id":"a","source":"s","metric":"m","ts":1,"value":2,"dims":{"1":"x"}}', // integer-like key: JSON.parse reorders
    '{"id":"a","source":"s","metric":"m\\u0041","ts":1,"value":2,"dims":{}}', // an escape
    '{"id":"a", "source":"s","metric":"m","ts":1,"value":2,"dims":{}}', // whitespace
    '{"source":"s","id":"a","metric":"m","ts":1,"value":2,"dims":{}}', // key order
    '{"id":"a","source":"s","metric":"m","ts":"1","value":2,"dims":{}}', // a string time
    '{"id":"a","source":"s","metric":"m","ts":1,"value":2,"dims":{"z":"🌊"}}', // a surrogate pair
    '{"id":"a","source":"s","metric":"m","ts":1,"value":2,"dims":{}}x', // trailing text
    '{"id":"a","source":"s","metric":"m","ts":1,"value":2}', // no dims
  ]
  for (const line of refused) t.equal(scan(line), null, line)
})
