import { Readable } from 'node:stream'
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import type { Runtime } from '../infra/runtime.js'
import { AppError, ErrorBody } from '../errors.js'
import { DIM_KEY_PATTERN, MAX_EPOCH_MS, METRIC_PATTERN } from '../schemas/metric-event.js'
import { SERVICE_PATTERN } from '../schemas/report-event.js'
import { EVENT_KINDS } from '../schemas/log-entry.js'
import { dimsFromQuery, instantParam } from '../schemas/query.js'
import { canonicalDims, dimsMatch, partitionOf, seriesKey } from '../domain/series-key.js'
import { WINDOWS, WINDOW_MS, bucketStart, type WindowName } from '../domain/windows.js'
import type { MetricEvent } from '../schemas/metric-event.js'
import { archiveEstimate, archivePage } from '../repositories/archive.repository.js'
import { verifyPartition } from '../services/archive-verify.js'
import { auditRange } from '../services/audit.js'

const PAGE = 200

const ExportQuery = Type.Object(
  {
    kind: Type.Optional(Type.Union([Type.Literal('metric'), Type.Literal('report')])),
    from: Type.Optional(Type.String({ description: 'event time, ISO-8601 or epoch ms (inclusive)' })),
    to: Type.Optional(Type.String({ description: 'event time (exclusive)' })),
    metric: Type.Optional(Type.String({ pattern: METRIC_PATTERN })),
    service: Type.Optional(Type.String({ pattern: SERVICE_PATTERN })),
  },
  { additionalProperties: false, patternProperties: { [`^dims\\.${DIM_KEY_PATTERN.slice(1, -1)}$`]: Type.String({ minLength: 1, maxLength: 1024 }) } },
)
type ExportQuery = Static<typeof ExportQuery> & Record<string, unknown>

interface ArchivedEvent {
  ts: number
  metric?: string
  service?: string
  dims: Record<string, string>
}

export const archiveRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app, { rt }) => {
  const { db, config } = rt

  app.get(
    '/v1/export',
    {
      schema: {
        tags: ['audit'],
        summary: 'Stream archived raw events as NDJSON (every event ever acknowledged and drained, as appended)',
        description:
          'Filters: kind, event-time range, metric or service, dims.<name>=<value>. Events come in (partition, sequence) order, one JSON object per line, with `partition` and `seq` added (the position in the partition hash chain). The response streams: memory stays flat whatever the range.',
        querystring: ExportQuery,
        response: { 400: ErrorBody },
      },
    },
    async (req, reply) => {
      const q = req.query as ExportQuery
      const fromMs = instantParam('from', q.from, 0)
      const toMs = instantParam('to', q.to, MAX_EPOCH_MS)
      const dims = dimsFromQuery(q)
      const kind = q.kind === undefined ? null : EVENT_KINDS[q.kind]
      const keep = (e: ArchivedEvent): boolean =>
        e.ts >= fromMs && e.ts < toMs && (q.metric === undefined || e.metric === q.metric) && (q.service === undefined || e.service === q.service) && dimsMatch(e.dims, dims)
      async function* lines(): AsyncGenerator<string> {
        let after = { partition: -1, firstSeq: -1 }
        for (;;) {
          const page = await archivePage(db, kind, fromMs, toMs, after, PAGE)
          if (page.length === 0) return
          let chunk = ''
          for (const row of page) {
            const events = row.events.split('\n').map((line) => JSON.parse(line) as ArchivedEvent)
            events.forEach((e, i) => {
              if (keep(e)) chunk += `${JSON.stringify({ partition: row.partition, seq: row.firstSeq + i, ...e })}\n`
            })
          }
          if (chunk) yield chunk
          const last = page[page.length - 1] as (typeof page)[number]
          after = { partition: last.partition, firstSeq: last.firstSeq }
        }
      }
      req.log.info({ filter: { kind: q.kind, fromMs, toMs, metric: q.metric, service: q.service, dims } }, 'export started')
      return reply.type('application/x-ndjson').send(Readable.from(lines()))
    },
  )

  app.get(
    '/v1/export/estimate',
    {
      schema: {
        tags: ['audit'],
        summary: 'How many events an export with these filters reads at most (for progress and ETA)',
        querystring: ExportQuery,
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as ExportQuery
      const kind = q.kind === undefined ? null : EVENT_KINDS[q.kind]
      return { events: await archiveEstimate(db, kind, instantParam('from', q.from, 0), instantParam('to', q.to, MAX_EPOCH_MS)) }
    },
  )

  app.get(
    '/v1/provenance/bucket',
    {
      schema: {
        tags: ['audit'],
        summary: 'The events that built one aggregate bucket of one series: their ids and places in the log',
        description: 'For a roll-up over several series, ask per series (GET /v1/series lists them). For a KPI figure, GET /v1/cases lists the cases and each case row names its events.',
        querystring: Type.Object(
          { metric: Type.String({ pattern: METRIC_PATTERN }), window: Type.Union(WINDOWS.map((w) => Type.Literal(w))), start: Type.String() },
          { additionalProperties: false, patternProperties: { [`^dims\\.${DIM_KEY_PATTERN.slice(1, -1)}$`]: Type.String({ minLength: 1, maxLength: 1024 }) } },
        ),
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as { metric: string; window: WindowName; start: string } & Record<string, unknown>
      const dims = canonicalDims(dimsFromQuery(q))
      const startMs = bucketStart(instantParam('start', q.start, 0), q.window, config.dayOffsetMin * 60_000)
      const endMs = startMs + WINDOW_MS[q.window]
      const partition = partitionOf(seriesKey(q.metric, dims), config.partitions)
      const events: { id: string; source: string; ts: number; value: number; partition: number; seq: number }[] = []
      let after = { partition: partition - 1, firstSeq: Number.MAX_SAFE_INTEGER }
      for (;;) {
        const page = (await archivePage(db, EVENT_KINDS.metric, startMs, endMs, after, PAGE)).filter((r) => r.partition === partition)
        if (page.length === 0) break
        for (const row of page) {
          row.events.split('\n').forEach((line, i) => {
            const e = JSON.parse(line) as MetricEvent
            if (e.metric === q.metric && e.ts >= startMs && e.ts < endMs && JSON.stringify(e.dims) === JSON.stringify(dims)) {
              events.push({ id: e.id, source: e.source, ts: e.ts, value: e.value, partition: row.partition, seq: row.firstSeq + i })
            }
          })
        }
        const last = page[page.length - 1] as (typeof page)[number]
        after = { partition: last.partition, firstSeq: last.firstSeq }
      }
      return {
        metric: q.metric,
        dims,
        window: q.window,
        start: new Date(startMs).toISOString(),
        note: 'every archived event of the series in the bucket; events judged late at ingest are listed too but are not in the bucket (GET /v1/series counts them)',
        events,
      }
    },
  )

  app.get(
    '/v1/audit',
    {
      schema: {
        tags: ['audit'],
        summary: 'Re-derive aggregates and case states for a time range from the raw log alone, and list every difference from what is stored',
        description:
          'Each mismatch gives the bucket (series, window, start) or case, the field, the stored and the re-derived figure, and the ids of the events behind it. An empty list proves the stored figures are what the events give.',
        querystring: Type.Object({ from: Type.String(), to: Type.String() }, { additionalProperties: false }),
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as { from: string; to: string }
      const fromMs = instantParam('from', q.from, 0)
      const toMs = instantParam('to', q.to, MAX_EPOCH_MS)
      if (toMs <= fromMs) throw new AppError('BAD_REQUEST', '`to` must be after `from`')
      const report = await auditRange(db, fromMs, toMs, { latenessMs: config.allowedLatenessSec * 1000, dayOffsetMs: config.dayOffsetMin * 60_000 })
      req.log.info({ fromMs, toMs, events: report.eventsReplayed, mismatches: report.mismatches.length }, 'audit finished')
      return report
    },
  )

  app.get(
    '/v1/archive/verify',
    {
      schema: {
        tags: ['audit'],
        summary: 'Re-walk the archive hash chains and report the first broken link per partition',
        description: 'A changed event, a removed or inserted one, or rewritten hashes: each is reported with the partition, sequence number, entry and event id.',
        querystring: Type.Object(
          {
            partition: Type.Optional(Type.Integer({ minimum: 0 })),
            from_seq: Type.Integer({ minimum: 0, default: 0 }),
            to_seq: Type.Optional(Type.Integer({ minimum: 1, description: 'exclusive; default: to the end, which also checks the head committed by the drain' })),
          },
          { additionalProperties: false },
        ),
        response: { 400: ErrorBody },
      },
    },
    async (req) => {
      const q = req.query as { partition?: number; from_seq: number; to_seq?: number }
      const partitions = q.partition === undefined ? Array.from({ length: config.partitions }, (_, p) => p) : [q.partition]
      const verdicts = []
      for (const p of partitions) verdicts.push(await verifyPartition(db, p, q.from_seq, q.to_seq))
      req.log.info({ partitions: partitions.length, ok: verdicts.every((v) => v.ok) }, 'archive verified')
      return { ok: verdicts.every((v) => v.ok), partitions: verdicts }
    },
  )
}
