import { sql, type RawBuilder } from 'kysely'
import type { Db } from '../infra/db.js'

export const KPI_DIMS = ['service', 'province', 'agency', 'category'] as const
export type KpiDim = (typeof KPI_DIMS)[number]
export type KpiFilter = Partial<Record<KpiDim, string>>

/** The KPI dims present in an object (a query, a body, a topic spec), as a filter. */
export const kpiFilterOf = (from: Partial<Record<KpiDim, unknown>>): KpiFilter =>
  Object.fromEntries(KPI_DIMS.flatMap((d) => (typeof from[d] === 'string' ? [[d, from[d]]] : [])))

export interface KpiQuery {
  filter: KpiFilter
  groupBy: readonly KpiDim[]
  /** The instant the figures describe: states are as of it, counts up to it. */
  asOfMs: number
  /** Counts of events (received, resolved, ...) only from this instant on; states ignore it. */
  fromMs: number | null
}

export interface KpiFigures {
  received: number
  resolved: number
  rejected: number
  processed: number
  pending: number
  inProgress: number
  backlog: number
  overdue: number
  resolvedOnTime: number
  onTimeRate: number | null
  timeToResolveP50Sec: number | null
  timeToResolveP90Sec: number | null
  rated: number
  satisfied: number
  satisfactionRate: number | null
  receivedLastHour: number
  resolvedLastHour: number
  backlog24hAgo: number
}

export interface KpiRow {
  key: Partial<Record<KpiDim, string | null>>
  kpis: KpiFigures
}

const iso = (ms: number): string => new Date(ms).toISOString()

/** WHERE clause of a filter; column names come from the fixed KPI_DIMS list, never from input. */
export function filterSql(filter: KpiFilter): RawBuilder<unknown> {
  const parts = KPI_DIMS.filter((d) => filter[d] !== undefined).map((d) => sql`${sql.ref(d)} = ${filter[d]}`)
  return parts.length === 0 ? sql`true` : sql.join(parts, sql` AND `)
}

/** Whether a case is open (received or started, not closed) at instant `t`. */
const openAt = (t: RawBuilder<unknown>) =>
  sql`((received_ts <= ${t} OR started_ts <= ${t}) AND (resolved_ts IS NULL OR resolved_ts > ${t}) AND (rejected_ts IS NULL OR rejected_ts > ${t}))`

/**
 * The case KPIs of DESIGN.md, as of an instant, over every case matching the filter, optionally
 * grouped. Computed from the derived case rows in one statement, so every figure of a row comes
 * from the same snapshot; `version` (the newest case version in the table at that snapshot) tells
 * which of two computations is fresher.
 */
export async function computeKpis(db: Db, q: KpiQuery): Promise<{ rows: KpiRow[]; version: number }> {
  const T = sql`${iso(q.asOfMs)}::timestamptz`
  const F = sql`${q.fromMs === null ? '-infinity' : iso(q.fromMs)}::timestamptz`
  const inPeriod = (col: string) => sql`(${sql.ref(col)} <= ${T} AND ${sql.ref(col)} >= ${F})`
  const resolvedIn = inPeriod('resolved_ts')
  const ratedIn = inPeriod('rated_ts')
  const groupCols = q.groupBy.map((d) => sql.ref(d))
  const select = groupCols.length > 0 ? sql`${sql.join(groupCols)},` : sql``
  const groupBy = groupCols.length > 0 ? sql`GROUP BY ${sql.join(groupCols)}` : sql``
  const ttr = (p: number) =>
    sql`percentile_cont(${p}) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_ts - received_ts)) FILTER (WHERE ${resolvedIn} AND received_ts IS NOT NULL)`
  const { rows } = await sql<Record<string, unknown>>`
    SELECT ${select}
      count(*) FILTER (WHERE ${inPeriod('received_ts')})::int AS received,
      count(*) FILTER (WHERE ${resolvedIn})::int AS resolved,
      count(*) FILTER (WHERE ${inPeriod('rejected_ts')})::int AS rejected,
      count(*) FILTER (WHERE ${openAt(T)} AND NOT coalesce(started_ts <= ${T}, false))::int AS pending,
      count(*) FILTER (WHERE ${openAt(T)} AND started_ts <= ${T})::int AS in_progress,
      count(*) FILTER (WHERE ${openAt(T)} AND due_ts < ${T})::int AS overdue,
      count(*) FILTER (WHERE ${resolvedIn} AND (due_ts IS NULL OR resolved_ts <= due_ts))::int AS resolved_on_time,
      count(*) FILTER (WHERE ${ratedIn})::int AS rated,
      count(*) FILTER (WHERE ${ratedIn} AND rating >= 4)::int AS satisfied,
      ${ttr(0.5)} AS ttr_p50,
      ${ttr(0.9)} AS ttr_p90,
      count(*) FILTER (WHERE received_ts <= ${T} AND received_ts > ${T} - interval '1 hour')::int AS received_last_hour,
      count(*) FILTER (WHERE resolved_ts <= ${T} AND resolved_ts > ${T} - interval '1 hour')::int AS resolved_last_hour,
      count(*) FILTER (WHERE ${openAt(sql`(${T} - interval '1 day')`)})::int AS backlog_24h_ago,
      (SELECT coalesce(max(version), 0) FROM cases) AS version
    FROM cases WHERE ${filterSql(q.filter)}
    ${groupBy}`.execute(db)
  let version = 0
  const out = rows.map((r) => {
    version = Math.max(version, Number(r.version))
    const n = (k: string): number => Number(r[k] ?? 0)
    const received = n('received')
    const resolved = n('resolved')
    const rejected = n('rejected')
    const pending = n('pending')
    const inProgress = n('in_progress')
    const rated = n('rated')
    const satisfied = n('satisfied')
    const resolvedOnTime = n('resolved_on_time')
    const key: Partial<Record<KpiDim, string | null>> = {}
    for (const d of q.groupBy) key[d] = (r[d] as string | null) ?? null
    return {
      key,
      kpis: {
        received,
        resolved,
        rejected,
        processed: resolved + rejected,
        pending,
        inProgress,
        backlog: pending + inProgress,
        overdue: n('overdue'),
        resolvedOnTime,
        onTimeRate: resolved > 0 ? resolvedOnTime / resolved : null,
        timeToResolveP50Sec: r.ttr_p50 === null ? null : Number(r.ttr_p50),
        timeToResolveP90Sec: r.ttr_p90 === null ? null : Number(r.ttr_p90),
        rated,
        satisfied,
        satisfactionRate: rated > 0 ? satisfied / rated : null,
        receivedLastHour: n('received_last_hour'),
        resolvedLastHour: n('resolved_last_hour'),
        backlog24hAgo: n('backlog_24h_ago'),
      },
    }
  })
  return { rows: out, version }
}

export type CaseListState = 'pending' | 'in_progress' | 'resolved' | 'rejected' | 'overdue' | 'received'

/** The cases behind a figure, as of the same instant, each with the ids of the events that made it: a KPI's provenance. */
export async function listCases(
  db: Db,
  filter: KpiFilter,
  state: CaseListState,
  asOfMs: number,
  fromMs: number | null,
  limit: number,
  after: { service: string; caseId: string } | null,
): Promise<{ service: string; caseId: string; state: string; receivedTs: Date | null; resolvedTs: Date | null; dueTs: Date | null; dims: Record<string, string>; eventIds: string[] }[]> {
  const T = sql`${iso(asOfMs)}::timestamptz`
  const F = sql`${fromMs === null ? '-infinity' : iso(fromMs)}::timestamptz`
  const cond = {
    received: sql`received_ts <= ${T} AND received_ts >= ${F}`,
    resolved: sql`resolved_ts <= ${T} AND resolved_ts >= ${F}`,
    rejected: sql`rejected_ts <= ${T} AND rejected_ts >= ${F}`,
    pending: sql`${openAt(T)} AND NOT coalesce(started_ts <= ${T}, false)`,
    in_progress: sql`${openAt(T)} AND started_ts <= ${T}`,
    overdue: sql`${openAt(T)} AND due_ts < ${T}`,
  }[state]
  const { rows } = await sql<{ service: string; case_id: string; state: string; received_ts: Date | null; resolved_ts: Date | null; due_ts: Date | null; dims: Record<string, string>; event_ids: string[] }>`
    SELECT service, case_id, state, received_ts, resolved_ts, due_ts, dims, ARRAY(SELECT e->>'id' FROM jsonb_array_elements(events) e) AS event_ids FROM cases
    WHERE ${filterSql(filter)} AND ${cond} AND (service, case_id) > (${after?.service ?? ''}, ${after?.caseId ?? ''})
    ORDER BY service, case_id LIMIT ${limit}`.execute(db)
  return rows.map((r) => ({ service: r.service, caseId: r.case_id, state: r.state, receivedTs: r.received_ts, resolvedTs: r.resolved_ts, dueTs: r.due_ts, dims: r.dims, eventIds: r.event_ids }))
}

export interface DailyKpis {
  day: string
  received: number
  resolved: number
  rejected: number
  resolvedOnTime: number
  rated: number
  satisfied: number
  backlogAtEnd: number
}

/** Per-day counts in [fromDay, toDay) (days start at `dayOffsetMs` past UTC midnight) plus the backlog at each day's end. */
export async function dailyKpis(db: Db, filter: KpiFilter, fromMs: number, toMs: number): Promise<DailyKpis[]> {
  const { rows } = await sql<Record<string, unknown>>`
    WITH days AS (
      SELECT d AS start, d + interval '1 day' AS stop
      FROM generate_series(${iso(fromMs)}::timestamptz, ${iso(toMs)}::timestamptz - interval '1 day', interval '1 day') AS d
    ), c AS (SELECT * FROM cases WHERE ${filterSql(filter)})
    SELECT days.start,
      (SELECT count(*) FROM c WHERE received_ts >= days.start AND received_ts < days.stop)::int AS received,
      (SELECT count(*) FROM c WHERE resolved_ts >= days.start AND resolved_ts < days.stop)::int AS resolved,
      (SELECT count(*) FROM c WHERE rejected_ts >= days.start AND rejected_ts < days.stop)::int AS rejected,
      (SELECT count(*) FROM c WHERE resolved_ts >= days.start AND resolved_ts < days.stop AND (due_ts IS NULL OR resolved_ts <= due_ts))::int AS on_time,
      (SELECT count(*) FROM c WHERE rated_ts >= days.start AND rated_ts < days.stop)::int AS rated,
      (SELECT count(*) FROM c WHERE rated_ts >= days.start AND rated_ts < days.stop AND rating >= 4)::int AS satisfied,
      (SELECT count(*) FROM c WHERE ${openAt(sql`(days.stop - interval '1 millisecond')`)})::int AS backlog
    FROM days ORDER BY days.start`.execute(db)
  return rows.map((r) => ({
    day: (r.start as Date).toISOString(),
    received: Number(r.received),
    resolved: Number(r.resolved),
    rejected: Number(r.rejected),
    resolvedOnTime: Number(r.on_time),
    rated: Number(r.rated),
    satisfied: Number(r.satisfied),
    backlogAtEnd: Number(r.backlog),
  }))
}
