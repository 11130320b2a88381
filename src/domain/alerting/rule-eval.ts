import { compare, type Rule } from './rule.js'

/** One sample in a rule's window: event time, the value the rule reads (the flag score for anomaly rules), the event id, the raw value. */
export type WindowSample = [ts: number, x: number, eventId: string, raw: number]

/** Where one rule stands on one series; persisted with the drain checkpoint. */
export interface RuleSeriesState {
  lastTs: number
  window: WindowSample[]
  status: 'ok' | 'pending' | 'firing'
  /** The open alert (pending or firing); a negative number is a placeholder for an alert created in this batch. */
  alertId: number | null
  pendingAt: number | null
  firingAt: number | null
}

export type TransitionStatus = 'pending' | 'firing' | 'resolved' | 'cancelled'

export interface Transition {
  status: TransitionStatus
  alertId: number
  at: number
  value: number
  pendingAt: number
  firingAt: number | null
  samples: WindowSample[]
}

/** Samples kept per rule and series: a window holds at most this many, the oldest dropped first. */
export const MAX_WINDOW_SAMPLES = 5000
/** Samples quoted in an alert as its cause. */
export const CAUSE_SAMPLES = 50

export const initialRuleState = (): RuleSeriesState => ({ lastTs: -Infinity, window: [], status: 'ok', alertId: null, pendingAt: null, firingAt: null })

function aggregate(rule: Rule, w: readonly WindowSample[]): number {
  const last = w[w.length - 1] as WindowSample
  switch (rule.kind === 'anomaly' ? 'max' : rule.aggregate) {
    case 'last':
      return last[1]
    case 'count':
      return w.length
    case 'sum':
      return w.reduce((s, x) => s + x[1], 0)
    case 'mean':
      return w.reduce((s, x) => s + x[1], 0) / w.length
    case 'max':
      return w.reduce((m, x) => (x[1] > m ? x[1] : m), -Infinity)
    case 'min':
      return w.reduce((m, x) => (x[1] < m ? x[1] : m), Infinity)
  }
  return last[1]
}

/**
 * Feeds one sample (in event-time order) to a rule on one series and returns the lifecycle change
 * it causes, if any: ok -> pending when the condition starts to hold (straight to firing when the
 * rule has no for-duration), pending -> firing once it has held for the for-duration, firing ->
 * resolved and pending -> cancelled when it stops holding. A sample not newer than the last one
 * seen changes nothing: rules, like detectors, read each series forward in event time.
 * `newAlertId` hands out an id for an alert that opens here.
 */
export function evaluate(rule: Rule, s: RuleSeriesState, sample: WindowSample, newAlertId: () => number): Transition | null {
  const ts = sample[0]
  if (ts <= s.lastTs) return null
  s.lastTs = ts
  s.window.push(sample)
  const from = ts - rule.windowS * 1000
  let drop = 0
  while (drop < s.window.length && (s.window[drop] as WindowSample)[0] <= from) drop++
  if (s.window.length - drop > MAX_WINDOW_SAMPLES) drop = s.window.length - MAX_WINDOW_SAMPLES
  if (drop > 0) s.window.splice(0, drop)

  const value = aggregate(rule, s.window)
  const holds = compare(value, rule.op, rule.value)
  const change = (status: TransitionStatus): Transition => ({
    status,
    alertId: s.alertId as number,
    at: ts,
    value,
    pendingAt: s.pendingAt as number,
    firingAt: s.firingAt,
    samples: s.window.slice(-CAUSE_SAMPLES),
  })

  if (holds) {
    if (s.status === 'ok') {
      s.alertId = newAlertId()
      s.pendingAt = ts
      if (rule.forS > 0) {
        s.status = 'pending'
        return change('pending')
      }
      s.status = 'firing'
      s.firingAt = ts
      return change('firing')
    }
    if (s.status === 'pending' && ts - (s.pendingAt as number) >= rule.forS * 1000) {
      s.status = 'firing'
      s.firingAt = ts
      return change('firing')
    }
    return null
  }
  if (s.status === 'ok') return null
  const t = change(s.status === 'firing' ? 'resolved' : 'cancelled')
  s.status = 'ok'
  s.alertId = null
  s.pendingAt = null
  s.firingAt = null
  return t
}
