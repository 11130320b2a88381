import type { RuleAggregate, RuleOp } from '../../schemas/alert-rule.js'
import type { Dims } from '../series-key.js'

export type RuleKind = 'threshold' | 'anomaly' | 'silence'

/** Silence rules watch each source's health series: this metric, dims {source}. */
export const SOURCE_METRIC = 'lantern.source'

/** A rule as the drain evaluates it. Anomaly rules aggregate flag scores with `max`. */
export interface Rule {
  id: number
  name: string
  kind: RuleKind
  metric: string
  dims: Record<string, string>
  aggregate: RuleAggregate
  windowS: number
  op: RuleOp
  value: number
  forS: number
  severity: string
  labels: Record<string, string>
  enabled: boolean
}

/** Whether a series falls under a rule: same metric, and every dim of the rule's filter present with its value ("*": any). */
export function ruleMatches(rule: Rule, metric: string, dims: Dims): boolean {
  if (rule.metric !== metric) return false
  for (const k in rule.dims) {
    const want = rule.dims[k]
    const have = dims[k]
    if (have === undefined || (want !== '*' && want !== have)) return false
  }
  return true
}

export function compare(a: number, op: RuleOp, b: number): boolean {
  switch (op) {
    case '>':
      return a > b
    case '>=':
      return a >= b
    case '<':
      return a < b
    case '<=':
      return a <= b
    case '==':
      return a === b
    case '!=':
      return a !== b
  }
}
