/** An archived entry's NDJSON as events: one parse of the whole entry is cheaper than one per line. */
export const parseEntry = <T>(text: string): T[] => JSON.parse(`[${text.replaceAll('\n', ',')}]`) as T[]
