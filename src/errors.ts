import { Type } from '@sinclair/typebox'

/** Every error code a client can receive, with its HTTP status. */
export const ERROR_CODES = {
  BAD_REQUEST: 400,
  INVALID_JSON: 400,
  INVALID_EVENTS: 400,
  EMPTY_BATCH: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  TOO_MANY_EVENTS: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  LOG_UNAVAILABLE: 503,
  DATABASE_UNAVAILABLE: 503,
  INTERNAL: 500,
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export interface EventError {
  /** Position of the event in the batch (0-based; the line number minus one for NDJSON). */
  index: number
  /** JSON pointer of the offending field inside the event, '' for the event itself. */
  path: string
  reason: string
}

export class AppError extends Error {
  override name = 'AppError'
  readonly statusCode: number
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly errors?: EventError[],
    readonly headers?: Record<string, string>,
  ) {
    super(message)
    this.statusCode = ERROR_CODES[code]
  }
}

export const ErrorBody = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.String(),
    error: Type.String(),
    message: Type.String(),
    errors: Type.Optional(
      Type.Array(Type.Object({ index: Type.Integer(), path: Type.String(), reason: Type.String() }), {
        description: 'one entry per bad event (at most 1000 listed; errorCount gives the total)',
      }),
    ),
    errorCount: Type.Optional(Type.Integer()),
  },
  { $id: 'Error' },
)
