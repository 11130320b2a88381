/** MQTT topic filters: validation (MQTT 3.1.1 / 5 section 4.7) and matching, for the API and the tests. */

const MAX_FILTER_BYTES = 65_535

/** Why a topic filter is not valid, or null. `$share/<group>/<filter>` (MQTT 5 shared subscriptions) is accepted. */
export function topicFilterProblem(filter: string): string | null {
  if (filter.length === 0) return 'must not be empty'
  if (Buffer.byteLength(filter) > MAX_FILTER_BYTES) return `is longer than ${MAX_FILTER_BYTES} bytes`
  if (filter.includes('\u0000')) return 'must not contain NUL'
  const levels = stripShare(filter).split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '"#" must be a whole level and the last one'
    if (level.includes('+') && level !== '+') return '"+" must be a whole level'
  }
  return null
}

function stripShare(filter: string): string {
  const m = /^\$share\/[^/+#]+\/(.+)$/.exec(filter)
  return m ? (m[1] as string) : filter
}

/** Levels a matching topic always has (`fixed`), and whether it may have more (`multi`, a trailing `#`). */
export function topicFilterLevels(filter: string): { fixed: number; multi: boolean } {
  const levels = stripShare(filter).split('/')
  const multi = levels[levels.length - 1] === '#'
  // "a/#" also matches "a" itself, so # guarantees no level of its own.
  return { fixed: multi ? levels.length - 1 : levels.length, multi }
}

/** Whether a topic matches a filter; topics starting with "$" match no filter that starts with a wildcard. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = stripShare(filter).split('/')
  const t = topic.split('/')
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}
