/** Kinds of event the log carries; one log entry holds events of one kind. */
export const EVENT_KINDS = { metric: 'm', report: 'r' } as const
export type EventKind = (typeof EVENT_KINDS)[keyof typeof EVENT_KINDS]
