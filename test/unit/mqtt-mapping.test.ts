import t from 'tap'
import { compileMapping, mapMessage, messageDigest, MappingError, type MqttMessage } from '../../src/connectors/mqtt/mapping.js'
import { topicFilterProblem, topicMatches } from '../../src/connectors/mqtt/topic.js'

const limits = { maxDims: 16 }
const at = Date.parse('2026-11-22T08:00:30Z')
const msg = (topic: string, payload: unknown): MqttMessage => ({
  topic,
  payload: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)),
  receivedAt: at,
})

t.test('topic levels captured by position, payload paths, ts formats', async (t) => {
  const c = compileMapping(
    { metric: '$.type', value: '$.reading.value', ts: '$.time', tsFormat: 'iso', dims: { province: 'topic[1]', station: 'topic[2]', unit: '$.reading["unit.name"]' } },
    ['env/+/+/air'],
    limits,
  )
  const m = msg('env/46/S12/air', { type: 'air.pm25', reading: { value: 41.2, 'unit.name': 'ug/m3' }, time: '2026-11-22T08:00:00Z' })
  const r = mapMessage(c, '7', m)
  t.same(r, {
    ok: true,
    events: [
      {
        id: `mqtt:7:${messageDigest(m.topic, m.payload)}`,
        metric: 'air.pm25',
        value: 41.2,
        ts: '2026-11-22T08:00:00Z',
        dims: { province: '46', station: 'S12', unit: 'ug/m3' },
      },
    ],
  })

  const epoch = (tsFormat: string, ts: unknown) =>
    mapMessage(compileMapping({ metric: 'm', value: '$.v', ts: '$.t', tsFormat }, ['a/#'], limits), '1', msg('a/b', { v: 1, t: ts }))
  t.match(epoch('epoch_s', 1795334400), { ok: true, events: [{ ts: 1795334400000 }] })
  t.match(epoch('epoch_s', '1795334400.5'), { ok: true, events: [{ ts: 1795334400500 }] })
  t.match(epoch('epoch_ms', 1795334400123), { ok: true, events: [{ ts: 1795334400123 }] })
  t.match(epoch('auto', 1795334400123), { ok: true, events: [{ ts: 1795334400123 }] })
  t.match(epoch('auto', '2026-11-22T08:00:00+07:00'), { ok: true, events: [{ ts: '2026-11-22T08:00:00+07:00' }] })
  t.match(epoch('iso', 1795334400123), { ok: false, reason: /ts: \$\.t is 1795334400123, not ISO-8601/ })
  t.match(epoch('epoch_s', 'yesterday'), { ok: false, reason: /not epoch seconds/ })
})

t.test('templates, constants, last level, a bare number payload, arrival time', async (t) => {
  const c = compileMapping({ metric: 'env.{topic[-1]}', value: '$', dims: { site: 'site-{topic[1]}', literal: '{{x}}' } }, ['plant/+/temp', 'plant/+/hum'], limits)
  const m = msg('plant/7/temp', '21.5')
  const r = mapMessage(c, '3', m)
  t.same(r, { ok: true, events: [{ id: `mqtt:3:${messageDigest(m.topic, m.payload)}:${at}`, metric: 'env.temp', value: 21.5, ts: at, dims: { site: 'site-7', literal: '{x}' } }] })
  t.notOk(c.timeFromMessage, 'without ts or id a redelivered message would get a new id')
  // Booleans and numeric text are numbers; a constant value counts messages.
  t.match(mapMessage(compileMapping({ metric: 'door.open', value: '$.open' }, ['d/#'], limits), '1', msg('d/1', { open: true })), { ok: true, events: [{ value: 1 }] })
  t.match(mapMessage(compileMapping({ metric: 'm', value: '$.v' }, ['d/#'], limits), '1', msg('d/1', { v: ' 12.5 ' })), { ok: true, events: [{ value: 12.5 }] })
  t.match(mapMessage(compileMapping({ metric: 'messages', value: 1 }, ['d/#'], limits), '1', msg('d/1', 'not json at all')), { ok: true, events: [{ value: 1 }] })
})

t.test('a list of mappings: one event each, optional ones skipped, ids from the payload', async (t) => {
  const c = compileMapping(
    [
      { metric: 'air.pm25', value: '$.pm25', ts: '$.ts', tsFormat: 'epoch_ms', dims: { station: 'topic[1]' }, id: '{$.seq}' },
      { metric: 'air.pm10', value: '$.pm10', ts: '$.ts', tsFormat: 'epoch_ms', dims: { station: 'topic[1]' }, id: '{$.seq}', optional: true },
    ],
    ['st/+'],
    limits,
  )
  t.ok(c.timeFromMessage)
  t.same(mapMessage(c, '1', msg('st/S1', { pm25: 3, pm10: 9, ts: 1795334400000, seq: 'g7-1' })), {
    ok: true,
    events: [
      { id: 'g7-1:0', metric: 'air.pm25', value: 3, ts: 1795334400000, dims: { station: 'S1' } },
      { id: 'g7-1:1', metric: 'air.pm10', value: 9, ts: 1795334400000, dims: { station: 'S1' } },
    ],
  })
  t.match(mapMessage(c, '1', msg('st/S1', { pm25: 3, ts: 1795334400000, seq: 'g7-2' })), { ok: true, events: [{ metric: 'air.pm25' }] })
  t.match(mapMessage(c, '1', msg('st/S1', { pm10: 3, ts: 1795334400000, seq: 'g7-3' })), { ok: false, reason: 'mapping[0].value: $.pm25 is missing from the payload' })
})

t.test('bad payloads say why', async (t) => {
  const c = compileMapping({ metric: 'm', value: '$.v', ts: '$.t', dims: { s: '$.s' } }, ['a/+'], limits)
  t.match(mapMessage(c, '1', msg('a/b', '{"v": 1,')), { ok: false, reason: /^payload is not JSON/ })
  t.match(mapMessage(c, '1', msg('a/b', { v: 'high', t: 1, s: 'x' })), { ok: false, reason: 'value: $.v is "high", not a number' })
  t.match(mapMessage(c, '1', msg('a/b', { v: 1, s: 'x' })), { ok: false, reason: 'ts: $.t is missing from the payload' })
  t.match(mapMessage(c, '1', msg('a/b', { v: 1, t: 1, s: { deep: 1 } })), { ok: false, reason: 'dims.s: $.s is an object, not text or a number' })
  const deep = compileMapping({ metric: 'm', value: 1, dims: { s: 'topic[3]' } }, ['a/#'], limits)
  t.match(mapMessage(deep, '1', msg('a/b', {})), { ok: false, reason: 'dims.s: topic[3]: the topic has 2 levels' })
})

t.test('a mapping is checked at creation, every problem named', async (t) => {
  const problems = (raw: unknown, filters = ['a/+/b']): string[] => {
    try {
      compileMapping(raw, filters, limits)
      return []
    } catch (err) {
      if (!(err instanceof MappingError)) throw err
      return err.problems.map((p) => `${p.path}: ${p.reason}`)
    }
  }
  t.same(problems({ metric: 'm', value: '$.v' }), [])
  t.same(problems('nope'), ['mapping: must be an object with at least "metric" and "value"'])
  t.same(problems({ value: '$.v' }), ['mapping.metric: is required'])
  t.same(problems({ metric: 'm', value: '$.v', extra: 1 }), ['mapping: unknown field "extra" (allowed: metric, value, ts, tsFormat, dims, id, optional)'])
  t.same(problems({ metric: 'bad name!', value: '$.v' }), ['mapping.metric: "bad name!" is not a metric name (^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$)'])
  t.same(problems({ metric: 'm', value: 'v' }), ['mapping.value: must be one reference ($.path or topic[n]) or a number, not a template'])
  t.same(problems({ metric: 'm', value: '$..v' }), ['mapping.value: "$..v": a name must follow "." at position 1'])
  t.same(problems({ metric: 'm', value: '$.v', ts: '$.t', tsFormat: 'unix' }), ['mapping.tsFormat: must be one of auto, iso, epoch_ms, epoch_s'])
  t.same(problems({ metric: 'm', value: '$.v', dims: { station: 'topic[3]' } }), ['mapping.dims.station: topic[3] is past the last level of topic filter(s) "a/+/b" (levels count from 0)'])
  t.same(problems({ metric: 'm', value: '$.v', dims: { station: 'topic[3]' } }, ['a/+/b/#']), [], '# allows deeper levels')
  t.same(problems({ metric: 'm.{$.x', value: '$.v' }), ['mapping.metric: "{" at position 2 is not closed (write {{ for a literal brace)'])
  t.same(problems({ metric: 'm', value: '$.v', dims: { 'bad key': '$.x', ok: 5 } }), [
    'mapping.dims: "bad key" is not a dimension name (^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$)',
    'mapping.dims.ok: must be a string: a reference ($.path, topic[n]) or a template ("air.{topic[2]}")',
  ])
  t.same(problems([{ metric: 'm', value: '$.v' }, { metric: 'n' }]), ['mapping[1].value: is required'])
  t.same(problems([]), ['mapping: must hold 1 to 32 mappings, got 0'])
})

t.test('topic filters', async (t) => {
  t.equal(topicFilterProblem('a/+/b/#'), null)
  t.equal(topicFilterProblem('$share/g/a/+'), null)
  t.equal(topicFilterProblem('a/b#'), '"#" must be a whole level and the last one')
  t.equal(topicFilterProblem('a/#/b'), '"#" must be a whole level and the last one')
  t.equal(topicFilterProblem('a/x+/b'), '"+" must be a whole level')
  t.equal(topicFilterProblem(''), 'must not be empty')
  t.ok(topicMatches('a/+/c', 'a/b/c'))
  t.notOk(topicMatches('a/+/c', 'a/b/c/d'))
  t.ok(topicMatches('a/#', 'a'))
  t.ok(topicMatches('a/#', 'a/b/c'))
  t.notOk(topicMatches('#', '$SYS/x'))
})
