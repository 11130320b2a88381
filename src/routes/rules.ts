import type { FastifyPluginAsync } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { RuleBody } from '../schemas/alert-rule.js'
import { durationSeconds } from '../schemas/duration.js'
import { createRule, deleteRule, getRule, listRules, updateRule, type RuleDef } from '../repositories/rules.repository.js'
import { listAlerts } from '../repositories/alerts.repository.js'
import { bumpConfigVersion } from '../services/alerting-config.js'
import { SOURCE_METRIC } from '../domain/alerting/rule.js'

const DEFAULT_WINDOW_S = 300
const DEFAULT_MIN_SCORE = 0.5

/** A rule body with its defaults filled in; what cannot apply to the rule's kind is a 400. */
export function ruleDef(b: RuleBody): RuleDef {
  const kind = b.kind ?? 'threshold'
  if (kind === 'silence') return silenceRuleDef(b)
  if (b.metric === undefined) throw new AppError('BAD_REQUEST', `metric is required for ${kind} rules`)
  if (kind === 'anomaly') {
    if (b.aggregate !== undefined) throw new AppError('BAD_REQUEST', 'aggregate does not apply to anomaly rules: they read the highest flag score in the window')
    if (b.value !== undefined && (b.value < 0 || b.value > 1)) throw new AppError('BAD_REQUEST', `value of an anomaly rule is the least flag score, from 0 to 1, got ${b.value}`)
  } else if (b.value === undefined) {
    throw new AppError('BAD_REQUEST', 'value is required: the threshold the aggregate is compared with')
  }
  const windowS = b.window === undefined ? DEFAULT_WINDOW_S : durationSeconds(b.window, 'window')
  if (windowS < 1) throw new AppError('BAD_REQUEST', 'window must be at least 1 second')
  return {
    name: b.name,
    kind,
    metric: b.metric,
    dims: b.dims ?? {},
    aggregate: kind === 'anomaly' ? 'max' : (b.aggregate ?? 'last'),
    windowS,
    op: b.op ?? (kind === 'anomaly' ? '>=' : '>'),
    value: b.value ?? DEFAULT_MIN_SCORE,
    forS: b.for === undefined ? 0 : durationSeconds(b.for, 'for'),
    severity: b.severity ?? 'warning',
    labels: b.labels ?? {},
    enabled: b.enabled ?? true,
  }
}

function silenceRuleDef(b: RuleBody): RuleDef {
  for (const field of ['metric', 'aggregate', 'window', 'op', 'value'] as const) {
    if (b[field] !== undefined) throw new AppError('BAD_REQUEST', `${field} does not apply to silence rules: they watch dims.source for \`for\` without data`)
  }
  const extra = Object.keys(b.dims ?? {}).filter((k) => k !== 'source')
  if (extra.length > 0) throw new AppError('BAD_REQUEST', `silence rules filter on dims.source only, got ${extra.join(', ')}`)
  if (b.for === undefined) throw new AppError('BAD_REQUEST', 'for is required for silence rules: how long a source may send nothing')
  const forS = durationSeconds(b.for, 'for')
  if (forS < 10) throw new AppError('BAD_REQUEST', 'for of a silence rule must be at least 10 seconds')
  return {
    name: b.name,
    kind: 'silence',
    metric: SOURCE_METRIC,
    dims: { source: b.dims?.source ?? '*' },
    aggregate: 'last',
    windowS: forS,
    op: '>=',
    value: forS,
    forS,
    severity: b.severity ?? 'warning',
    labels: b.labels ?? {},
    enabled: b.enabled ?? true,
  }
}

const IdParam = Type.Object({ id: Type.Integer({ minimum: 1 }) })

export const ruleRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { db } = rt
  const changed = () => bumpConfigVersion(rt.redis, rt.keys)

  app.post(
    '/v1/rules',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Create an alert rule (threshold on a windowed aggregate, or on anomaly flags)',
        description:
          'Evaluated in the drain on event time, per matching series, from the next batch on: pending when the condition starts to hold, firing once it has held for `for`, resolved when it stops (a pending alert that clears is cancelled). One open alert per rule and series.',
        body: RuleBody,
        response: { 201: Type.Unknown(), 400: ErrorBody },
      },
    },
    async (req, reply) => {
      const rule = await createRule(db, ruleDef(req.body as RuleBody))
      await changed()
      req.log.info({ ruleId: rule.id, metric: rule.metric, kind: rule.kind }, 'alert rule created')
      return reply.code(201).send(rule)
    },
  )

  app.get('/v1/rules', { schema: { tags: ['alerts'], summary: 'Every rule' } }, async () => ({ rules: await listRules(db) }))

  app.get('/v1/rules/:id', { schema: { tags: ['alerts'], summary: 'One rule and its open alerts', params: IdParam, response: { 404: ErrorBody } } }, async (req) => {
    const { id } = req.params as { id: number }
    const rule = await getRule(db, id)
    if (!rule) throw new AppError('NOT_FOUND', `no rule ${id}`)
    return { ...rule, open: await listAlerts(db, { status: ['pending', 'firing'], ruleId: id, metric: null, limit: 1000, before: null }) }
  })

  app.put(
    '/v1/rules/:id',
    {
      schema: {
        tags: ['alerts'],
        summary: 'Replace a rule',
        description: 'Each series starts a fresh window under the new condition; open alerts stay open until it stops holding. Disabling a rule resolves its open alerts.',
        params: IdParam,
        body: RuleBody,
        response: { 400: ErrorBody, 404: ErrorBody },
      },
    },
    async (req) => {
      const { id } = req.params as { id: number }
      const rule = await updateRule(db, id, ruleDef(req.body as RuleBody))
      if (!rule) throw new AppError('NOT_FOUND', `no rule ${id}`)
      await changed()
      req.log.info({ ruleId: id, enabled: rule.enabled }, 'alert rule changed')
      return rule
    },
  )

  app.delete(
    '/v1/rules/:id',
    { schema: { tags: ['alerts'], summary: 'Delete a rule: its open alerts resolve, its history stays', params: IdParam, response: { 204: Type.Null(), 404: ErrorBody } } },
    async (req, reply) => {
      const { id } = req.params as { id: number }
      if (!(await deleteRule(db, id))) throw new AppError('NOT_FOUND', `no rule ${id}`)
      await changed()
      req.log.info({ ruleId: id }, 'alert rule deleted')
      return reply.code(204).send()
    },
  )
}
