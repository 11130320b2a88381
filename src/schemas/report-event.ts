import { Type, type Static } from '@sinclair/typebox'
import { Dimensions, SOURCE_PATTERN, Timestamp } from './metric-event.js'

export const REPORT_STATUSES = ['received', 'assigned', 'in_progress', 'resolved', 'rejected', 'rated'] as const
export type ReportStatus = (typeof REPORT_STATUSES)[number]

export const SERVICE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'

export const reportEventSchema = (maxDims: number, maxValueLength: number) =>
  Type.Object(
    {
      id: Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\u0000-\\u001f]+$', description: 'idempotency key, unique per source' }),
      source: Type.String({ pattern: SOURCE_PATTERN }),
      service: Type.String({ pattern: SERVICE_PATTERN, description: 'e.g. paht (citizen field reports), dvc (one-stop dossiers)' }),
      case: Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\u0000-\\u001f]+$', description: 'case id, unique within the service' }),
      status: Type.Union(REPORT_STATUSES.map((s) => Type.Literal(s))),
      ts: Timestamp,
      due: Type.Optional(Timestamp),
      rating: Type.Optional(Type.Integer({ minimum: 1, maximum: 5, description: 'with status rated: 4 and 5 count as satisfied' })),
      dims: Type.Optional(Dimensions(maxDims, maxValueLength)),
    },
    { additionalProperties: false, $id: 'ReportEvent' },
  )

export type ReportEventInput = Static<ReturnType<typeof reportEventSchema>>

/** A report event as the log holds it: times in epoch ms, dims canonical. */
export interface ReportEvent {
  id: string
  source: string
  service: string
  case: string
  status: ReportStatus
  ts: number
  due?: number
  rating?: number
  dims: Record<string, string>
}

export const caseKey = (service: string, caseId: string): string => `${service}\u0000${caseId}`
