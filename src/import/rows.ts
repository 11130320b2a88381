import type { Readable } from 'node:stream'
import { parse as parseCsv, type CsvError, type Options as CsvOptions } from 'csv-parse'
import { UnparsableLine } from '../ingest/parse-body.js'
import type { ImportFormat, ImportKind } from '../repositories/imports.repository.js'

/** One record of an import file: its line (1-based, where it ends) and what it holds. */
export interface RawRow {
  row: number
  /** An event object to validate, or an UnparsableLine saying why the row is not one. */
  item: unknown
}

/** The file cannot be read as the format says (a CSV header naming unknown columns, say): nothing is imported. */
export class ImportFileError extends Error {
  override name = 'ImportFileError'
}

/** CSV columns besides `dims.<name>`; the first ones of each list are required. */
export const CSV_COLUMNS: Record<ImportKind, { required: string[]; optional: string[] }> = {
  metric: { required: ['id', 'source', 'metric', 'ts', 'value'], optional: [] },
  report: { required: ['id', 'source', 'service', 'case', 'status', 'ts'], optional: ['due', 'rating'] },
}
const DIM_PREFIX = 'dims.'

/**
 * The records of an import file, in file order, a batch at a time (never the whole file): NDJSON
 * one JSON object per non-blank line; CSV a header row naming the columns, then one event per
 * record. Blank lines are not records but count in line numbers.
 */
export function readRows(input: Readable, format: ImportFormat, kind: ImportKind): AsyncGenerator<RawRow[]> {
  return format === 'csv' ? csvRows(input, kind) : ndjsonRows(input)
}

async function* ndjsonRows(input: Readable): AsyncGenerator<RawRow[]> {
  input.setEncoding('utf8')
  let rest = ''
  let line = 0
  const rowOf = (text: string): RawRow | null => {
    line++
    const t = text.trim()
    if (t === '') return null
    try {
      return { row: line, item: JSON.parse(t) as unknown }
    } catch (err) {
      return { row: line, item: new UnparsableLine(`line is not valid JSON: ${(err as Error).message}`) }
    }
  }
  for await (const chunk of input as AsyncIterable<string>) {
    const text = rest === '' ? chunk : rest + chunk
    const rows: RawRow[] = []
    let start = 0
    for (let nl = text.indexOf('\n', start); nl !== -1; nl = text.indexOf('\n', start)) {
      const r = rowOf(text.slice(start, nl))
      if (r) rows.push(r)
      start = nl + 1
    }
    rest = text.slice(start)
    if (rows.length > 0) yield rows
  }
  const last = rest === '' ? null : rowOf(rest)
  if (last) yield [last]
}

/** A decimal number as CSV holds it; anything else stays text, for validation to name. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/
const DIGITS = /^\d+$/

interface CsvRecord {
  line: number
  cells?: string[]
  error?: string
}

async function* csvRows(input: Readable, kind: ImportKind): AsyncGenerator<RawRow[]> {
  const options: CsvOptions<CsvRecord, string[]> = {
    bom: true,
    relax_column_count: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    // A malformed record (a quote never closed, say) is reported in its place among the rows.
    on_skip: (err: CsvError | undefined) => {
      parser.push({ line: Number((err as { lines?: number } | undefined)?.lines ?? 0), error: err?.message ?? 'malformed CSV record' } satisfies CsvRecord)
      return undefined
    },
    on_record: (cells, ctx) => ({ line: ctx.lines, cells }),
  }
  const parser = parseCsv(options as unknown as CsvOptions)
  input.on('error', (err) => parser.destroy(err))
  input.pipe(parser)
  let header: ((cells: string[]) => unknown) | null = null
  let columns = 0
  let batch: RawRow[] = []
  for await (const rec of parser as AsyncIterable<CsvRecord>) {
    if (!header) {
      if (!rec.cells) throw new ImportFileError(`line ${rec.line}: the header row cannot be read: ${rec.error}`)
      header = csvMapper(rec.cells, kind)
      columns = rec.cells.length
      continue
    }
    if (rec.error !== undefined || !rec.cells) batch.push({ row: rec.line, item: new UnparsableLine(`not a CSV record: ${rec.error}`) })
    else if (rec.cells.length !== columns) batch.push({ row: rec.line, item: new UnparsableLine(`has ${rec.cells.length} fields, the header has ${columns}`) })
    else batch.push({ row: rec.line, item: header(rec.cells) })
    if (batch.length >= 1000) {
      yield batch
      batch = []
    }
  }
  if (!header) throw new ImportFileError('the file is empty: a CSV import starts with a header row')
  if (batch.length > 0) yield batch
}

/**
 * Turns the header into a record mapper. Unknown or repeated columns and missing required ones
 * refuse the whole file before anything is imported. Empty cells are absent fields; numbers are
 * read for value, rating and epoch-millisecond times (ISO-8601 times stay text).
 */
function csvMapper(names: string[], kind: ImportKind): (cells: string[]) => unknown {
  const known = CSV_COLUMNS[kind]
  const seen = new Set<string>()
  const problems: string[] = []
  for (const raw of names) {
    const name = raw.trim()
    if (seen.has(name)) problems.push(`column "${name}" appears twice`)
    seen.add(name)
    if (!name.startsWith(DIM_PREFIX) && !known.required.includes(name) && !known.optional.includes(name)) problems.push(`unknown column "${name}"`)
    if (name.startsWith(DIM_PREFIX) && name.length === DIM_PREFIX.length) problems.push('a dims column needs a name: dims.<name>')
  }
  for (const r of known.required) if (!seen.has(r)) problems.push(`missing column "${r}"`)
  if (problems.length > 0) {
    throw new ImportFileError(
      `line 1 (header): ${problems.join('; ')}. ${kind} columns: ${[...known.required, ...known.optional].join(', ')}, and dims.<name> for each dimension`,
    )
  }
  const fields = names.map((raw) => {
    const name = raw.trim()
    if (name.startsWith(DIM_PREFIX)) return { dim: name.slice(DIM_PREFIX.length), name }
    return { dim: null, name }
  })
  return (cells) => {
    const item: Record<string, unknown> = {}
    let dims: Record<string, string> | undefined
    for (let i = 0; i < fields.length; i++) {
      const cell = cells[i] as string
      if (cell === '') continue
      const f = fields[i] as { dim: string | null; name: string }
      if (f.dim !== null) {
        ;(dims ??= {})[f.dim] = cell
        continue
      }
      switch (f.name) {
        case 'value':
          item.value = DECIMAL.test(cell) ? Number(cell) : cell
          break
        case 'ts':
        case 'due':
        case 'rating':
          item[f.name] = DIGITS.test(cell) ? Number(cell) : cell
          break
        default:
          item[f.name] = cell
      }
    }
    if (dims) item.dims = dims
    return item
  }
}
