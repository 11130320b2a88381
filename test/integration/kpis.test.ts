import t, { type Test } from 'tap'
import { startTestApp } from '../helpers/context.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'
import { caseEvents, shuffle, type CasePlan, type FieldPlan, type ReportIn } from '../helpers/cases.js'
import { Client } from '../helpers/ws-client.js'
import { markNewlyOverdue } from '../../src/repositories/cases.repository.js'

const HOUR = 3_600_000
const T0 = Date.parse('2026-10-01T00:00:00Z')
const AGENCIES = ['power-company', 'water-supply', 'urban-order', 'environment']

/**
 * The provincial field-report figures the product must show exactly: 11,743 received, 11,182
 * processed (resolved or rejected), 390 in progress (so 171 not yet assigned), and 7,300 of 9,000
 * ratings satisfied (81.1%). A few cases carry impossible events that must become findings.
 */
function fieldReports(): FieldPlan {
  const cases: CasePlan[] = []
  const end = (i: number): CasePlan['end'] => (i < 11_000 ? 'resolved' : i < 11_182 ? 'rejected' : i < 11_572 ? 'in_progress' : 'pending')
  for (let i = 0; i < 11_743; i++) {
    const c: CasePlan = {
      caseId: `PA-${i}`,
      agency: AGENCIES[i % 4] as string,
      category: i % 3 === 0 ? 'electrical-safety' : 'environment',
      receivedTs: T0 + i * 3 * 60_000,
      end: end(i),
    }
    if (c.end === 'resolved') {
      c.late = i % 50 === 7
      if (i < 9_000) c.rating = i < 7_300 ? 4 + (i % 2) : 1 + (i % 3)
      if (i % 1000 === 3) c.bad = 'closed_twice'
    }
    if (c.end === 'in_progress' && i % 30 === 0) c.bad = 'rated_before_resolved'
    cases.push(c)
  }
  return { service: 'paht', province: '46', cases }
}

async function setup(t: Test, overrides: Record<string, string> = {}) {
  const { app, api, worker, wsUrl: url } = await startTestApp(
    t,
    { LANTERN_PARTITIONS: '4', LANTERN_ALLOWED_LATENESS_SEC: '60', LANTERN_LIVE_TICK_MS: '20', ...overrides },
    { listen: true },
  )
  const post = async (events: ReportIn[]): Promise<void> => {
    for (let i = 0; i < events.length; i += 5000) {
      const res = await app.inject({ method: 'POST', url: '/v1/reports', payload: events.slice(i, i + 5000) })
      if (res.statusCode !== 202) throw new Error(`ingest refused: ${res.body}`)
    }
  }
  return { app, api, worker, url, post }
}

t.test('the field figures are reproduced to the unit from shuffled, repeated, racing events', async (t) => {
  const { app, worker, post } = await setup(t)
  const plan = fieldReports()
  const events = shuffle(plan.cases.flatMap((c) => caseEvents(plan, c)), 11)
  await post(events)
  // The same events again (a source retrying), and two drainers racing as after a lost lease.
  await post(events.slice(0, 4000))
  await Promise.all([drainAll(makeDrainers(worker)), drainAll(makeDrainers(worker))])

  const res = await app.inject({ url: '/v1/kpis?service=paht&province=46' })
  t.equal(res.statusCode, 200, res.body)
  const k = res.json().groups[0].kpis
  t.equal(k.received, 11_743)
  t.equal(k.processed, 11_182)
  t.equal(k.resolved, 11_000)
  t.equal(k.rejected, 182)
  t.equal(k.inProgress, 390)
  t.equal(k.pending, 171)
  t.equal(k.backlog, 561)
  t.equal(k.rated, 9_000)
  t.equal(k.satisfied, 7_300)
  t.ok(k.satisfactionRate > 0.8, `over 80% satisfied (${k.satisfactionRate})`)
  const late = plan.cases.filter((c) => c.end === 'resolved' && c.late).length
  t.equal(k.resolvedOnTime, 11_000 - late)
  t.equal(k.timeToResolveP50Sec, 90 * 60, 'median time to resolve')

  const findings = (await app.inject({ url: '/v1/findings?service=paht&limit=10000' })).json().findings as { kind: string; eventId: string }[]
  const want = plan.cases.filter((c) => c.bad)
  t.equal(findings.length, want.length, 'every impossible event is a finding')
  t.ok(findings.every((f) => /-(x|c2)$/.test(f.eventId)), 'findings name the offending event')

  const byAgency = (await app.inject({ url: '/v1/kpis?service=paht&group_by=agency' })).json().groups as { key: { agency: string }; kpis: { received: number } }[]
  t.same(
    byAgency.map((g) => g.kpis.received).reduce((a, b) => a + b, 0),
    11_743,
    'roll-ups across agencies add up',
  )
  const cases = (await app.inject({ url: '/v1/cases?service=paht&figure=in_progress&limit=10000' })).json().cases as { caseId: string; eventIds: string[] }[]
  t.equal(cases.length, 390, 'the cases behind the in-progress figure')
  t.ok(cases.every((c) => c.eventIds.includes(`${c.caseId}-r`) && c.eventIds.includes(`${c.caseId}-a`)), 'each with the events that made it')
})

t.test('KPIs as of a past instant are what the screen showed then', async (t) => {
  const { app, worker, post } = await setup(t)
  const plan: FieldPlan = {
    service: 'dvc',
    province: '48',
    cases: Array.from({ length: 40 }, (_, i) => ({ caseId: `D-${i}`, agency: 'land', category: 'permit', receivedTs: T0 + i * HOUR, end: 'resolved' as const })),
  }
  await post(plan.cases.flatMap((c) => caseEvents(plan, c)))
  await drainAll(makeDrainers(worker))
  // At T0 + 10h30: cases 0..10 received; case i resolves at i h + 90 min, so 0..9 are resolved
  // (9 at that very instant) and 10 is assigned, in progress.
  const asOf = T0 + 10 * HOUR + 30 * 60_000
  const k = (await app.inject({ url: `/v1/kpis?service=dvc&as_of=${asOf}` })).json().groups[0].kpis
  t.match(k, { received: 11, resolved: 10, inProgress: 1, pending: 0 })
  const period = (await app.inject({ url: `/v1/kpis?service=dvc&from=${T0 + 5 * HOUR}&as_of=${asOf}` })).json().groups[0].kpis
  // From T0 + 5h: received 5..10; resolved 4..9 (case 4 resolves at 5h30).
  t.match(period, { received: 6, resolved: 6 }, 'counts limited to the period')
})

t.test('agencies are ranked by on-time rate', async (t) => {
  const { app, worker, post } = await setup(t)
  const cases: CasePlan[] = []
  AGENCIES.forEach((agency, a) => {
    for (let i = 0; i < 10; i++) cases.push({ caseId: `${agency}-${i}`, agency, category: 'c', receivedTs: T0 + i * HOUR, end: 'resolved', late: i < a * 2 })
  })
  const plan: FieldPlan = { service: 'paht', province: '79', cases }
  await post(plan.cases.flatMap((c) => caseEvents(plan, c)))
  await drainAll(makeDrainers(worker))
  const r = (await app.inject({ url: '/v1/kpis/ranking?by=onTimeRate&province=79' })).json()
  t.same(
    r.agencies.map((x: { agency: string; value: number }) => [x.agency, x.value]),
    [
      ['power-company', 1],
      ['water-supply', 0.8],
      ['urban-order', 0.6],
      ['environment', 0.4],
    ],
  )
})

t.test('a KPI screen sees new cases within the tick and overdue cases without any new event', async (t) => {
  const { worker, url, post, api } = await setup(t)
  const drainers = makeDrainers(worker)
  const c = new Client(url)
  t.teardown(() => c.ws.terminate())
  await c.opened()
  c.send({ type: 'subscribe', topic: { kind: 'kpi', service: 'paht', province: '92' } })
  const snap = await c.next((m) => m.type === 'snapshot')
  t.match(snap.kpis, { received: 0, overdue: 0 })
  c.send({ type: 'subscribe', topic: { kind: 'ranking', by: 'backlog', province: '92' } })
  t.same((await c.next((m) => m.type === 'snapshot')).agencies, [])

  const now = Date.now()
  await post([
    { id: 'n1', source: 'app', service: 'paht', case: 'N-1', status: 'received', ts: now - 1000, due: now + 1500, dims: { province: '92', agency: 'water-supply' } },
    { id: 'n2', source: 'app', service: 'paht', case: 'N-2', status: 'received', ts: now - 1000, due: now + 86_400_000, dims: { province: '93', agency: 'water-supply' } },
  ])
  await drainAll(drainers)
  const d1 = await c.next((m) => m.type === 'delta' && m.kpis !== undefined)
  t.match(d1.kpis, { received: 1, pending: 1, overdue: 0 }, 'only the case of the watched province counts')
  const ranking = await c.next((m) => m.type === 'delta' && m.agencies !== undefined)
  t.match(ranking.agencies, [{ rank: 1, agency: 'water-supply', value: 1 }], 'the ranking topic follows')

  await new Promise((r) => setTimeout(r, 2000))
  const groups = await markNewlyOverdue(worker.db, Date.now())
  t.same(groups.map((g) => g.province), ['92'])
  await api.redis.publish(api.keys.changesChannel, JSON.stringify({ partition: -1, metrics: {}, cases: groups }))
  const d2 = await c.next((m) => m.type === 'delta' && (m.kpis as { overdue: number } | undefined)?.overdue === 1)
  t.ok((d2.seq as number) > (d1.seq as number))
  t.same(await markNewlyOverdue(worker.db, Date.now()), [], 'a case goes overdue once')
})
