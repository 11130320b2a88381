import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { startTestApp } from '../helpers/context.js'
import type { Runtime } from '../../src/infra/runtime.js'

/** Every metric event in the log, across partitions, as ingest wrote it. */
async function logEvents(rt: Runtime): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = []
  for (let p = 0; p < rt.config.partitions; p++) {
    const entries = await rt.redis.xrange(rt.keys.stream(p), '-', '+')
    for (const [, fields] of entries) {
      const e = fields[fields.indexOf('e') + 1] as string
      for (const line of e.split('\n')) out.push(JSON.parse(line) as Record<string, unknown>)
    }
  }
  return out.sort((a, b) => `${a.metric}|${JSON.stringify(a.dims)}`.localeCompare(`${b.metric}|${JSON.stringify(b.dims)}`))
}

const strip = (events: Record<string, unknown>[]) => events.map(({ id: _id, ...rest }) => rest)

async function notify(app: FastifyInstance, url: string, body: unknown, contentType = 'application/json') {
  const res = await app.inject({ method: 'POST', url, payload: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': contentType } })
  return { status: res.statusCode, body: res.json() }
}

t.test('NGSI-v2 notifications from Orion: normalized and keyValues', async (t) => {
  const { app, api } = await startTestApp(t)
  // The shape Orion sends for an IoT Agent entity: attribute metadata TimeInstant, an entity TimeInstant, text and structured attributes.
  const normalized = {
    subscriptionId: '5b991dfa12f473cee6651cb1',
    data: [
      {
        id: 'urn:ngsi-ld:AirQualityObserved:hue-S12',
        type: 'AirQualityObserved',
        pm25: { type: 'Number', value: 41.2, metadata: { TimeInstant: { type: 'DateTime', value: '2026-11-22T08:00:00.000Z' }, unitCode: { type: 'Text', value: 'GQ' } } },
        pm10: { type: 'Number', value: '63', metadata: { TimeInstant: { type: 'DateTime', value: '2026-11-22T08:00:00.000Z' } } },
        NO2: { type: 'Number', value: 22, metadata: {} },
        stationCode: { type: 'Text', value: 'S12', metadata: {} },
        airQualityLevel: { type: 'Text', value: 'moderate', metadata: {} },
        location: { type: 'geo:json', value: { type: 'Point', coordinates: [107.59, 16.46] }, metadata: {} },
        TimeInstant: { type: 'DateTime', value: '2026-11-22T08:01:00.000Z', metadata: {} },
      },
      {
        id: 'Room1',
        type: 'Room',
        temperature: { value: 28.5, type: 'Float', metadata: {} },
        pressure: { value: 720, type: 'Integer', metadata: {} },
      },
    ],
  }
  const before = Date.now()
  const r = await notify(app, '/v1/ngsi/v2/notify?metric_prefix=air&source=orion-hue&dims.province=46&dim_attrs=stationCode&metric.temperature=room.temp', normalized)
  const after = Date.now()
  t.equal(r.status, 202, JSON.stringify(r.body))
  t.match(r.body, { accepted: 5, duplicates: 0, events: 5, skippedCount: 2 })
  t.same(r.body.skipped, [
    { entity: 'urn:ngsi-ld:AirQualityObserved:hue-S12', attribute: 'airQualityLevel', reason: 'not a number (text "moderate")' },
    { entity: 'urn:ngsi-ld:AirQualityObserved:hue-S12', attribute: 'location', reason: 'not a number (a structured value)' },
  ])
  const aq = { entity_id: 'urn:ngsi-ld:AirQualityObserved:hue-S12', entity_type: 'AirQualityObserved', province: '46', stationCode: 'S12' }
  const room = { entity_id: 'Room1', entity_type: 'Room', province: '46' }
  const events = await logEvents(api)
  const roomTs = events.filter((e) => (e.dims as Record<string, string>).entity_id === 'Room1').map((e) => e.ts as number)
  t.ok(roomTs.every((ts) => ts >= before && ts <= after), 'no time in the entity: arrival time')
  t.same(strip(events).map((e) => ((e.dims as Record<string, string>).entity_id === 'Room1' ? { ...e, ts: 'arrival' } : e)), [
    { source: 'orion-hue', metric: 'air.NO2', ts: Date.parse('2026-11-22T08:01:00Z'), value: 22, dims: aq },
    { source: 'orion-hue', metric: 'air.pm10', ts: Date.parse('2026-11-22T08:00:00Z'), value: 63, dims: aq },
    { source: 'orion-hue', metric: 'air.pm25', ts: Date.parse('2026-11-22T08:00:00Z'), value: 41.2, dims: aq },
    { source: 'orion-hue', metric: 'air.pressure', ts: 'arrival', value: 720, dims: room },
    { source: 'orion-hue', metric: 'room.temp', ts: 'arrival', value: 28.5, dims: room },
  ])

  // Orion re-sends a notification (e.g. after a timeout): the timed attributes are counted once.
  const again = await notify(app, '/v1/ngsi/v2/notify?metric_prefix=air&source=orion-hue&dims.province=46&dim_attrs=stationCode&metric.temperature=room.temp', { ...normalized, data: [normalized.data[0]] })
  t.match(again.body, { accepted: 0, duplicates: 3 })

  // attrsFormat keyValues: plain values; the entity's dateObserved is the time; numeric text is not a number here.
  const keyValues = {
    subscriptionId: '5b991dfa12f473cee6651cb2',
    data: [{ id: 'WaterLevel-Huong-1', type: 'WaterObserved', height: 3.12, flow: 41, dateObserved: '2026-11-22T09:30:00+07:00', code: '0042', alarm: true }],
  }
  const kv = await notify(app, '/v1/ngsi/v2/notify?metric_prefix=river&source=orion-hue&attrs=height,flow,code,alarm', keyValues)
  t.equal(kv.status, 202, JSON.stringify(kv.body))
  t.same(kv.body.skipped, [
    { entity: 'WaterLevel-Huong-1', attribute: 'code', reason: 'not a number (text "0042")' },
    { entity: 'WaterLevel-Huong-1', attribute: 'alarm', reason: 'not a number (boolean true)' },
  ])
  const river = (await logEvents(api)).filter((e) => String(e.metric).startsWith('river.'))
  t.same(strip(river), [
    { source: 'orion-hue', metric: 'river.flow', ts: Date.parse('2026-11-22T02:30:00Z'), value: 41, dims: { entity_id: 'WaterLevel-Huong-1', entity_type: 'WaterObserved' } },
    { source: 'orion-hue', metric: 'river.height', ts: Date.parse('2026-11-22T02:30:00Z'), value: 3.12, dims: { entity_id: 'WaterLevel-Huong-1', entity_type: 'WaterObserved' } },
  ])
})

t.test('NGSI-LD notifications: normalized, concise, keyValues and multi-attributes', async (t) => {
  const { app, api } = await startTestApp(t)
  const normalized = {
    id: 'urn:ngsi-ld:Notification:5fd0fa684eb81930c97005f3',
    type: 'Notification',
    subscriptionId: 'urn:ngsi-ld:Subscription:5fd0f69b4eb81930c97005db',
    notifiedAt: '2026-11-22T08:05:12.193Z',
    data: [
      {
        id: 'urn:ngsi-ld:AirQualityObserved:hue-S12',
        type: 'AirQualityObserved',
        pm25: { type: 'Property', value: 41.2, unitCode: 'GQ', observedAt: '2026-11-22T08:00:00.000Z' },
        temperature: [
          { type: 'Property', value: 24.5, observedAt: '2026-11-22T08:00:00.000Z', datasetId: 'urn:ngsi-ld:Dataset:sensor-a' },
          { type: 'Property', value: 24.9, observedAt: '2026-11-22T08:00:00.000Z', datasetId: 'urn:ngsi-ld:Dataset:sensor-b' },
        ],
        no2: { type: 'Property', value: 18 },
        refDevice: { type: 'Relationship', object: 'urn:ngsi-ld:Device:aq-12' },
        location: { type: 'GeoProperty', value: { type: 'Point', coordinates: [107.59, 16.46] } },
        name: { type: 'Property', value: 'Hue S12' },
      },
    ],
  }
  const r = await notify(app, '/v1/ngsi/ld/notify?metric_prefix=air&source=orion-ld', normalized, 'application/ld+json')
  t.equal(r.status, 202, JSON.stringify(r.body))
  t.match(r.body, { accepted: 4, duplicates: 0, events: 4, skippedCount: 2 })
  t.same(r.body.skipped, [
    { entity: 'urn:ngsi-ld:AirQualityObserved:hue-S12', attribute: 'refDevice', reason: 'a relationship' },
    { entity: 'urn:ngsi-ld:AirQualityObserved:hue-S12', attribute: 'name', reason: 'not a number (text "Hue S12")' },
  ])
  const dims = { entity_id: 'urn:ngsi-ld:AirQualityObserved:hue-S12', entity_type: 'AirQualityObserved' }
  t.same(strip(await logEvents(api)), [
    { source: 'orion-ld', metric: 'air.no2', ts: Date.parse('2026-11-22T08:05:12.193Z'), value: 18, dims },
    { source: 'orion-ld', metric: 'air.pm25', ts: Date.parse('2026-11-22T08:00:00Z'), value: 41.2, dims },
    { source: 'orion-ld', metric: 'air.temperature', ts: Date.parse('2026-11-22T08:00:00Z'), value: 24.5, dims: { ...dims, dataset_id: 'urn:ngsi-ld:Dataset:sensor-a' } },
    { source: 'orion-ld', metric: 'air.temperature', ts: Date.parse('2026-11-22T08:00:00Z'), value: 24.9, dims: { ...dims, dataset_id: 'urn:ngsi-ld:Dataset:sensor-b' } },
  ])

  // Concise (type omitted) and keyValues (plain values), with a type list and an @context.
  const concise = {
    id: 'urn:ngsi-ld:Notification:2',
    type: 'Notification',
    subscriptionId: 'urn:ngsi-ld:Subscription:2',
    notifiedAt: '2026-11-22T08:10:00Z',
    data: [
      { id: 'urn:ngsi-ld:Animal:cow002', type: ['Animal', 'Cow'], '@context': 'https://example.org/ctx.jsonld', heartRate: { value: 51, unitCode: '5K', observedAt: '2026-11-22T08:09:00Z', providedBy: { object: 'urn:ngsi-ld:Device:cow002' } }, weight: 612, sex: 'female' },
    ],
  }
  const c = await notify(app, '/v1/ngsi/ld/notify?metric_prefix=farm&source=orion-ld&dims.farm=f1', concise)
  t.equal(c.status, 202, JSON.stringify(c.body))
  const farm = (await logEvents(api)).filter((e) => String(e.metric).startsWith('farm.'))
  const cow = { entity_id: 'urn:ngsi-ld:Animal:cow002', entity_type: 'Animal,Cow', farm: 'f1' }
  t.same(strip(farm), [
    { source: 'orion-ld', metric: 'farm.heartRate', ts: Date.parse('2026-11-22T08:09:00Z'), value: 51, dims: cow },
    { source: 'orion-ld', metric: 'farm.weight', ts: Date.parse('2026-11-22T08:10:00Z'), value: 612, dims: cow },
  ])
  t.same(c.body.skipped, [{ entity: 'urn:ngsi-ld:Animal:cow002', attribute: 'sex', reason: 'not a number (text "female")' }])
})

t.test('invalid notifications: 400 with a clear message, nothing written', async (t) => {
  const { app, api } = await startTestApp(t)
  const cases: [string, unknown, RegExp][] = [
    ['/v1/ngsi/v2/notify', { subscriptionId: 'x' }, /^not an NGSI-v2 notification: \/data must be an array of entities; nothing was written$/],
    ['/v1/ngsi/v2/notify', { subscriptionId: 'x', data: [] }, /\/data holds no entities/],
    ['/v1/ngsi/v2/notify', [1, 2], /body the notification must be a JSON object with a "data" array/],
    ['/v1/ngsi/v2/notify', { data: [{ type: 'Room', temperature: 1 }, 'x'] }, /\/data\/0\/id must be a non-empty string; \/data\/1 must be an entity object/],
    ['/v1/ngsi/ld/notify', { type: 'Subscription', data: [{ id: 'a', type: 'T', v: 1 }] }, /\/type must be "Notification"/],
    // One bad time spoils the notification: nothing of it is written.
    [
      '/v1/ngsi/ld/notify',
      { type: 'Notification', notifiedAt: '2026-11-22T08:00:00Z', data: [{ id: 'a', type: 'T', ok: { type: 'Property', value: 1 }, bad: { type: 'Property', value: 2, observedAt: '22/11/2026 08:00' } }] },
      /1 of 2 attributes make invalid events \(first: \/data\/0\/bad\/observedAt time must be ISO-8601 with a time zone/,
    ],
    ['/v1/ngsi/v2/notify?metric_prefx=air', { data: [{ id: 'a', type: 'T', v: 1 }] }, /unknown query parameter "metric_prefx"/],
    ['/v1/ngsi/v2/notify?metric.v=bad name', { data: [{ id: 'a', type: 'T', v: 1 }] }, /metric\.v: "bad name" is not a metric name/],
  ]
  for (const [url, body, message] of cases) {
    const r = await notify(app, url, body)
    t.equal(r.status, 400, `${url} ${JSON.stringify(body).slice(0, 60)}`)
    t.match(r.body.message, message)
  }
  const bad = await notify(app, '/v1/ngsi/ld/notify', cases[5]?.[1])
  t.same(bad.body.errors, [{ index: 1, path: '/data/0/bad/observedAt', reason: 'time must be ISO-8601 with a time zone, e.g. 2026-11-22T08:00:00Z, or epoch milliseconds' }])
  const notJson = await notify(app, '/v1/ngsi/ld/notify', '{"data": [', 'application/ld+json')
  t.equal(notJson.status, 400)
  t.match(notJson.body, { code: 'INVALID_JSON' })
  t.same(await logEvents(api), [], 'nothing was written')
})
