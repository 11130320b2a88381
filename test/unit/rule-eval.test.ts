import t from 'tap'
import { evaluate, initialRuleState, MAX_WINDOW_SAMPLES, type WindowSample } from '../../src/domain/alerting/rule-eval.js'
import { ruleMatches, type Rule } from '../../src/domain/alerting/rule.js'

const rule = (over: Partial<Rule> = {}): Rule => ({
  id: 1, name: 'r', kind: 'threshold', metric: 'm', dims: {}, aggregate: 'mean', windowS: 300, op: '>', value: 10, forS: 0, severity: 'warning', labels: {}, enabled: true, ...over,
})
const MIN = 60_000

function run(r: Rule, values: number[], stepMs = MIN): { status: string; at: number; value: number }[] {
  const s = initialRuleState()
  let next = 0
  return values.flatMap((v, i) => {
    const tr = evaluate(r, s, [i * stepMs, v, `e${i}`, v] as WindowSample, () => --next)
    return tr ? [{ status: tr.status, at: i, value: tr.value }] : []
  })
}

t.test('the window is a sliding one on event time, ending at each sample', async (t) => {
  // mean over 5 minutes of 0,0,0,0,0,60 = 12 at minute 5 (minute 0 has left the window (t-5m, t]).
  t.same(run(rule(), [0, 0, 0, 0, 0, 60]), [{ status: 'firing', at: 5, value: 12 }])
  t.same(run(rule({ aggregate: 'count', value: 3, windowS: 120 }), [1, 1, 1, 1]), [], 'count over (t-2m, t] is 2 at most')
  t.same(run(rule({ aggregate: 'sum', value: 25, windowS: 180 }), [10, 10, 10]), [{ status: 'firing', at: 2, value: 30 }])
  t.same(run(rule({ aggregate: 'min', op: '<', value: 1, windowS: 60 }), [5, 0.5, 5]), [{ status: 'firing', at: 1, value: 0.5 }, { status: 'resolved', at: 2, value: 5 }])
})

t.test('pending, firing after the for-duration, resolved; a short breach is cancelled', async (t) => {
  const r = rule({ aggregate: 'last', forS: 180 })
  t.same(run(r, [0, 20, 20, 20, 20, 0]).map((x) => [x.status, x.at]), [['pending', 1], ['firing', 4], ['resolved', 5]])
  t.same(run(r, [0, 20, 20, 0, 20]).map((x) => [x.status, x.at]), [['pending', 1], ['cancelled', 3], ['pending', 4]])
})

t.test('samples not newer than the last one seen change nothing', async (t) => {
  const s = initialRuleState()
  const r = rule({ aggregate: 'last' })
  t.equal(evaluate(r, s, [MIN, 20, 'a', 20], () => -1)?.status, 'firing')
  t.equal(evaluate(r, s, [MIN, 0, 'b', 0], () => -2), null, 'same time')
  t.equal(evaluate(r, s, [0, 0, 'c', 0], () => -3), null, 'older')
  t.equal(s.status, 'firing')
})

t.test('a window holds a bounded number of samples', async (t) => {
  const s = initialRuleState()
  const r = rule({ aggregate: 'count', op: '>', value: 1e9, windowS: 86_400 })
  for (let i = 0; i < MAX_WINDOW_SAMPLES + 100; i++) evaluate(r, s, [i, 1, String(i), 1], () => -1)
  t.equal(s.window.length, MAX_WINDOW_SAMPLES)
})

t.test('a rule matches series by metric and dims, "*" needing the dim present', async (t) => {
  const r = rule({ metric: 'water.level', dims: { province: '46', station: '*' } })
  t.ok(ruleMatches(r, 'water.level', { province: '46', station: 'a' }))
  t.notOk(ruleMatches(r, 'water.level', { province: '46' }))
  t.notOk(ruleMatches(r, 'water.level', { province: '48', station: 'a' }))
  t.notOk(ruleMatches(r, 'air.pm25', { province: '46', station: 'a' }))
})
