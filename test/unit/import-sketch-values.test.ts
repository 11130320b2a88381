import t from 'tap'
import { addValue, emptyBucket, observeLast, storedOfValues, toStored } from '../../src/domain/bucket.js'

/** The import's direct path for new buckets gives the very bytes and bits of the sketch path. */
t.test('storedOfValues equals toStored of a bucket fed the same values', async (t) => {
  let x = 7
  const rnd = (): number => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648
  const sets: number[][] = [[0], [1e-300], [-1e-300], [42.5], [-3, 0, 3], [5, 5, 5], [1e9, -1e9, 0.001]]
  for (let i = 0; i < 300; i++) sets.push(Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => (rnd() < 0.1 ? 0 : (rnd() - 0.3) * 10 ** Math.floor(rnd() * 8 - 3))))
  let same = 0
  for (const values of sets) {
    const b = emptyBucket()
    for (const v of values) addValue(b, v)
    const lastTs = 1_700_000_000_000 + values.length
    observeLast(b, lastTs, values[values.length - 1] as number)
    const want = toStored(b)
    const got = storedOfValues(values, lastTs, values[values.length - 1] as number)
    if (Buffer.from(got.sketch).equals(Buffer.from(want.sketch)) && JSON.stringify({ ...got, sketch: 0 }) === JSON.stringify({ ...want, sketch: 0 })) same++
    else t.fail(`values ${JSON.stringify(values)}: ${JSON.stringify({ ...got, sketch: [...got.sketch] })} != ${JSON.stringify({ ...want, sketch: [...want.sketch] })}`)
  }
  t.equal(same, sets.length)
})
