import t from 'tap'
import { startTestApp } from '../helpers/context.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'
import { caseEvents, type FieldPlan } from '../helpers/cases.js'
import { Client } from '../helpers/ws-client.js'

t.test('targets: the national portal share and the budget revenue of 2020', async (t) => {
  // Indicator values of a past year arrive out of time order: the lateness must cover them.
  const { app, worker } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_DAY_OFFSET_MIN: '420', LANTERN_ALLOWED_LATENESS_SEC: String(400 * 86400) })

  const ev = (id: string, metric: string, ts: string, value: number) => ({ id, source: 'mic', metric, ts, value, dims: { scope: 'national' } })
  const months = Array.from({ length: 12 }, (_, m) => ev(`rev-${m}`, 'budget.revenue', `2020-${String(m + 1).padStart(2, '0')}-15T00:00:00+07:00`, 3755))
  const res = await app.inject({
    method: 'POST',
    url: '/v1/metrics',
    payload: [
      ...months,
      ev('p1', 'portal.services_on_portal', '2020-06-30T00:00:00+07:00', 400),
      ev('o1', 'portal.services_online', '2020-06-30T00:00:00+07:00', 1500),
      ev('p2', 'portal.services_on_portal', '2020-12-20T00:00:00+07:00', 518),
      ev('o2', 'portal.services_online', '2020-12-20T00:00:00+07:00', 1552),
    ],
  })
  t.equal(res.statusCode, 202, res.body)
  await drainAll(makeDrainers(worker))

  const period = { from: '2020-01-01T00:00:00+07:00', to: '2021-01-01T00:00:00+07:00' }
  const share = await app.inject({
    method: 'POST',
    url: '/v1/targets',
    payload: {
      name: 'Online public services on the national portal',
      indicator: { metric: 'portal.services_on_portal', dims: { scope: 'national' }, aggregate: 'last' },
      denominator: { metric: 'portal.services_online', dims: { scope: 'national' }, aggregate: 'last' },
      operator: '>=',
      target: 30,
      unit: '%',
      period,
    },
  })
  t.equal(share.statusCode, 201, share.body)
  const s = share.json().status
  t.equal(Math.round(s.value * 10) / 10, 33.4, '518 of 1,552 is 33.4%')
  t.equal(s.met, true)
  t.ok(Math.abs(s.completionPct - (518 / 1552 / 0.3) * 100) < 1e-9)

  const revenue = await app.inject({
    method: 'POST',
    url: '/v1/targets',
    payload: { name: 'Budget revenue', indicator: { metric: 'budget.revenue', aggregate: 'sum' }, target: 45_060, unit: 'bn VND', period },
  })
  t.match(revenue.json().status, { value: 45_060, completionPct: 100, met: true })
  t.equal(revenue.json().status.points.length, 12, 'one point per month with data')

  t.equal((await app.inject({ url: '/v1/targets' })).json().targets.length, 2)
  t.equal((await app.inject({ method: 'POST', url: '/v1/targets', payload: { name: 'x', indicator: { metric: 'm', aggregate: 'median' }, target: 1, period } })).statusCode, 400)
  t.equal((await app.inject({ method: 'DELETE', url: `/v1/targets/${revenue.json().id}` })).statusCode, 204)
  t.equal((await app.inject({ url: `/v1/targets/${revenue.json().id}` })).statusCode, 404)
})

t.test('a cross-check finds the beautified figure, names the cases behind it and raises a live event', async (t) => {
  const { app, worker, wsUrl } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_LIVE_TICK_MS: '20' }, { listen: true })
  const c = new Client(wsUrl)
  t.teardown(() => c.ws.terminate())

  const T0 = Date.parse('2026-11-01T00:00:00Z')
  const ends = ['resolved', 'resolved', 'resolved', 'resolved', 'resolved', 'resolved', 'in_progress', 'in_progress', 'pending', 'pending'] as const
  const plan: FieldPlan = { service: 'paht', province: '46', cases: ends.map((end, i) => ({ caseId: `X-${i}`, agency: 'a', category: 'c', receivedTs: T0 + i * 3_600_000, end })) }
  await app.inject({ method: 'POST', url: '/v1/reports', payload: plan.cases.flatMap((x) => caseEvents(plan, x)) })
  await drainAll(makeDrainers(worker))

  await c.opened()
  c.send({ type: 'subscribe', topic: { kind: 'discrepancies' } })
  t.same((await c.next((m) => m.type === 'snapshot')).crosschecks, [])
  c.send({ type: 'subscribe', topic: { kind: 'targets' } })
  t.same((await c.next((m) => m.type === 'snapshot')).targets, [])
  const created = await app.inject({
    method: 'POST',
    url: '/v1/targets',
    payload: { name: 'Cases resolved', indicator: { metric: 'cases.resolved', aggregate: 'sum' }, target: 10, period: { from: '2026-11-01T00:00:00Z', to: '2026-12-01T00:00:00Z' } },
  })
  t.equal(created.statusCode, 201)
  const targets = await c.next((m) => m.type === 'delta' && m.targets !== undefined)
  t.match(targets.targets, [{ name: 'Cases resolved', status: { value: null } }], 'a new target reaches the targets topic')

  const res = await app.inject({
    method: 'POST',
    url: '/v1/crosschecks',
    payload: { source: 'province-46', service: 'paht', province: '46', period: { from: '2026-11-01T00:00:00Z', to: '2026-11-08T00:00:00Z' }, reported: { received: 10, resolved: 8, inProgress: 2 } },
  })
  t.equal(res.statusCode, 201, res.body)
  const check = res.json()
  t.same(check.computed, { received: 10, resolved: 6, inProgress: 2 })
  t.equal(check.discrepancies.length, 1)
  t.match(check.discrepancies[0], { figure: 'resolved', reported: 8, computed: 6, difference: 2 })
  const behind = await app.inject({ url: check.discrepancies[0].cases[0] })
  t.equal(behind.json().cases.length, 6, 'the link lists the six cases the events resolve')

  const live = await c.next((m) => m.type === 'delta' && m.crosscheck !== undefined)
  t.equal((live.crosscheck as { id: number }).id, check.id)

  const honest = await app.inject({
    method: 'POST',
    url: '/v1/crosschecks',
    payload: { service: 'paht', province: '46', period: { from: '2026-11-01T00:00:00Z', to: '2026-11-08T00:00:00Z' }, reported: { received: 10, processed: 6, backlog: 4 } },
  })
  t.same(honest.json().discrepancies, [], 'matching figures record no discrepancy')
  t.equal((await app.inject({ url: '/v1/crosschecks?discrepant=true' })).json().crosschecks.length, 1)
  t.equal((await app.inject({ method: 'POST', url: '/v1/crosschecks', payload: { service: 'paht', period: { from: 'x', to: 'y' }, reported: { received: 1 } } })).statusCode, 400)
})
