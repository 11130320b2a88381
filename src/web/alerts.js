/**
 * The alert feed's model. The `alerts` topic's snapshot holds alert rows (AlertView: the alert's
 * current state, `open` and recent `events`), its deltas hold state changes (AlertEvent, with
 * `alertId`, the rule and the condition). Both become one shape, one entry per alert, the latest
 * change winning:
 * { id, status, severity, rule: {id, name, kind}, metric, dims, value, op, threshold, at, since, reason }
 * `at` is the event time of the latest change (epoch ms), `since` when the condition started to
 * hold (the alert went pending; a firing alert shows it when it had to hold for a while). Alert rows carry no condition, so `op` and `threshold` come from the rules (GET /v1/rules).
 */

const TIME_OF = { pending: 'pendingAt', firing: 'firingAt', resolved: 'resolvedAt', cancelled: 'resolvedAt' }
const closed = (status) => status === 'resolved' || status === 'cancelled'

/** An alert row (snapshot) in the feed's shape; `rules` maps rule id (string) to the rule. */
export function fromView(a, rules) {
  const rule = rules.get(String(a.rule.id))
  return {
    id: String(a.id),
    change: null,
    status: a.status,
    severity: a.severity,
    rule: { id: String(a.rule.id), name: a.rule.name, kind: a.rule.kind },
    metric: a.series.metric,
    dims: a.series.dims ?? {},
    // A closed row keeps the value that made it fire; the change that closed it quotes the value then.
    value: closed(a.status) ? (a.resolution?.value ?? a.value) : a.value,
    op: rule?.op ?? null,
    threshold: rule?.value ?? null,
    at: Date.parse(a[TIME_OF[a.status]] ?? a.updatedAt),
    since: Date.parse(a.pendingAt),
    reason: a.resolution?.reason ?? null,
  }
}

/** A state change (delta) in the feed's shape. */
export function fromEvent(e) {
  return {
    id: String(e.alertId),
    change: Number(e.id),
    status: e.status,
    severity: e.rule.severity,
    rule: { id: String(e.rule.id), name: e.rule.name, kind: e.rule.kind },
    metric: e.series.metric,
    dims: e.series.dims ?? {},
    value: e.value,
    op: e.condition?.op ?? null,
    threshold: e.condition?.value ?? null,
    at: Date.parse(e.at),
    since: Date.parse(e.pendingAt),
    reason: e.reason ?? null,
  }
}

const isChange = (x) => x !== null && typeof x === 'object' && 'alertId' in x

/** Rule ids the rows refer to that `rules` does not know (their thresholds are missing). */
export const unknownRules = (rows, rules) => rows.filter((r) => !isChange(r) && !rules.has(String(r.rule.id))).map((r) => String(r.rule.id))

/**
 * One entry per alert from the snapshot's open alerts and the topic's events (rows and changes,
 * oldest first), newest change first.
 */
export function alertFeed(open, events, rules) {
  const byId = new Map()
  for (const x of [...open, ...events]) {
    const item = isChange(x) ? fromEvent(x) : fromView(x, rules)
    const held = byId.get(item.id)
    // Changes of one alert come in id order; a re-delivered older one must not win.
    if (held?.change != null && item.change != null && held.change > item.change) continue
    byId.set(item.id, { ...item, op: item.op ?? held?.op ?? null, threshold: item.threshold ?? held?.threshold ?? null })
  }
  return [...byId.values()].sort((a, b) => b.at - a.at || Number(b.id) - Number(a.id))
}

/** Whether an alert belongs on a screen showing `province` ('' = national: all of them). */
export const inProvince = (alert, province) => !province || alert.dims.province === undefined || alert.dims.province === province
