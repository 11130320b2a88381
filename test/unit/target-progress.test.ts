import t from 'tap'
import { targetProgress } from '../../src/domain/target-progress.js'

const DAY = 86_400_000

t.test('completion and a least-squares projection to the end of the period', async (t) => {
  const points = [10, 20, 30].map((value, i) => ({ atMs: i * DAY, value }))
  const p = targetProgress(points, '>=', 100, 9 * DAY)
  t.equal(p.value, 30)
  t.equal(p.completionPct, 30)
  t.equal(p.met, false)
  t.ok(Math.abs((p.projected as number) - 100) < 1e-9, `projected ${p.projected}`)
  t.equal(p.onTrack, true)
  t.equal(targetProgress(points, '>=', 101, 9 * DAY).onTrack, false)
})

t.test('an upper bound: completion is full while the value stays under it', async (t) => {
  const p = targetProgress([{ atMs: 0, value: 4 }], '<=', 5, DAY)
  t.match(p, { completionPct: 100, met: true, projected: 4, onTrack: true })
  t.equal(targetProgress([{ atMs: 0, value: 10 }], '<=', 5, DAY).completionPct, 50)
})

t.test('no data: no value and no verdict', async (t) => {
  t.same(targetProgress([], '>=', 30, DAY), { value: null, completionPct: null, met: false, projected: null, onTrack: null })
})
