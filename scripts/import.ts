import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, promises as fs } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Transform } from 'node:stream'
import { parseArgs } from 'node:util'
import { SingleBar, Presets } from 'cli-progress'
import { loadConfig } from '../src/config.js'
import { openRuntime, startRuntime } from '../src/infra/runtime.js'
import { findOrCreateImport, type BadRow, type ImportFormat, type ImportKind, type ImportRow, type OnError } from '../src/repositories/imports.repository.js'
import { ImportBusy, runImport, type ImportInput, type ImportPhase } from '../src/import/run-import.js'
import { ImportFileError } from '../src/import/rows.js'

/**
 * History import: metric or report events from a CSV or NDJSON file (or standard input) into the
 * partitions' import lanes, then waits until the drain has committed them all. Talks to Redis
 * and PostgreSQL directly (REDIS_URL, DATABASE_URL), like the workers.
 *
 *   npm run import -- history.ndjson
 *   npm run import -- reports-2025.csv --kind report --on-error skip
 *   zcat old.ndjson.gz | npm run import -- - --format ndjson --kind metric
 *
 * Exit code 0: every row imported and committed (or the file was imported before); 1: stopped
 * on a bad row (on-error stop); 3: done, but bad rows were skipped (on-error skip); 2: the
 * import could not run (usage, unreadable file, services away, the file being imported by
 * another process). Run the same command again after any interruption: it resumes.
 */
const USAGE = `npm run import -- <file|-> [--format csv|ndjson] [--kind metric|report] [--on-error stop|skip] [--name NAME] [--no-wait]

  <file|->        the file, or - for standard input (spooled to a temporary file first)
  --format        csv or ndjson (default: from the file name: .csv, .ndjson/.jsonl; - needs it)
  --kind          metric or report (default: from the first row: a metric or a case field)
  --on-error      stop (default): a bad row stops the import before its chunk of ${'5,000'} rows;
                  skip: bad rows are left out; either way every bad row is reported
  --name          the name the job shows (default: the file's name)
  --no-wait       return once every row is in the log, without waiting for the drain to commit it
`

const EXIT = { ok: 0, stopped: 1, failed: 2, skipped: 3 } as const
/** Bad rows printed at the end; the job (GET /v1/imports/:id) keeps the first 1000, and counts all. */
const PRINTED_BAD_ROWS = 1000

function fail(message: string, code: number = EXIT.failed): never {
  process.stderr.write(`import: ${message}\n`)
  process.exit(code)
}

let args: ReturnType<typeof parse>
function parse() {
  return parseArgs({
    allowPositionals: true,
    options: {
      format: { type: 'string' },
      kind: { type: 'string' },
      'on-error': { type: 'string', default: 'stop' },
      name: { type: 'string' },
      'no-wait': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
}
try {
  args = parse()
} catch (err) {
  fail(`${(err as Error).message}\n\n${USAGE}`)
}
const { values, positionals } = args
if (values.help) {
  process.stdout.write(USAGE)
  process.exit(0)
}
if (positionals.length !== 1) fail(`name one file (or - for standard input)\n\n${USAGE}`)
const target = positionals[0] as string
const onError = values['on-error'] as OnError
if (onError !== 'stop' && onError !== 'skip') fail(`--on-error is stop or skip, got "${onError}"`)

const formatOf = (file: string): ImportFormat | undefined => {
  const ext = path.extname(file).toLowerCase()
  return ext === '.csv' ? 'csv' : ext === '.ndjson' || ext === '.jsonl' || ext === '.json' ? 'ndjson' : undefined
}
const format = (values.format as ImportFormat | undefined) ?? (target === '-' ? undefined : formatOf(target))
if (format !== 'csv' && format !== 'ndjson') fail(values.format ? `--format is csv or ndjson, got "${values.format}"` : 'say --format csv or --format ndjson')

/** Standard input goes to a temporary file first: a file can be hashed, read again and resumed. */
async function spoolStdin(): Promise<string> {
  const file = path.join(os.tmpdir(), `lantern-import-${randomBytes(6).toString('hex')}.${format}`)
  await pipeline(process.stdin, createWriteStream(file))
  return file
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(
    createReadStream(file, { highWaterMark: 1 << 20 }),
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk)
        done()
      },
    }),
  )
  return hash.digest('hex')
}

/** The kind from the first row: a CSV header or NDJSON object with `metric`, or with `case`. */
async function kindOf(file: string): Promise<ImportKind> {
  const handle = await fs.open(file, 'r')
  try {
    const buf = Buffer.alloc(64 * 1024)
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0)
    const first = buf.subarray(0, bytesRead).toString('utf8').split('\n').find((l) => l.trim() !== '') ?? ''
    if (format === 'csv') {
      const cols = first.replace(/^\uFEFF/, '').split(',').map((c) => c.trim().replace(/^"|"$/g, ''))
      if (cols.includes('metric')) return 'metric'
      if (cols.includes('case')) return 'report'
    } else {
      try {
        const o = JSON.parse(first) as Record<string, unknown>
        if ('metric' in o) return 'metric'
        if ('case' in o) return 'report'
      } catch {
        // The import reports the line; the kind has to be given.
      }
    }
  } finally {
    await handle.close()
  }
  return fail('cannot tell metric from report rows by the first row: say --kind metric or --kind report')
}

const n = (v: number): string => v.toLocaleString('en-US')

async function main(): Promise<number> {
  const spooled = target === '-' ? await spoolStdin() : null
  const file = spooled ?? target
  try {
    const stat = await fs.stat(file).catch(() => fail(`cannot read ${file}`))
    if (!stat.isFile()) fail(`${file} is not a file`)
    const kind = (values.kind as ImportKind | undefined) ?? (await kindOf(file))
    if (kind !== 'metric' && kind !== 'report') fail(`--kind is metric or report, got "${String(kind)}"`)
    const sha256 = await sha256Of(file)

    const config = loadConfig()
    const rt = openRuntime(config, { role: 'worker', poolSize: 3, failFastRedis: false })
    rt.log.level = process.env.LOG_LEVEL ?? 'warn'
    try {
      await startRuntime(rt)
      const name = values.name ?? (spooled ? 'stdin' : path.basename(file))
      const { job, created } = await findOrCreateImport(rt.db, { sha256, name, format: format as ImportFormat, kind, onError, origin: 'cli', status: 'queued', bytesTotal: stat.size })
      if (job.status === 'done') {
        process.stderr.write(
          `import: already imported as import ${job.id} (${job.name}, ${job.finishedAt ?? job.updatedAt}): ${n(job.eventsCommitted)} events committed; nothing to do\n`,
        )
        return EXIT.ok
      }
      if (!created) process.stderr.write(`import: resuming import ${job.id} (${job.status}) after row ${n(job.rowsSent)} of ${job.name}\n`)
      else process.stderr.write(`import: import ${job.id}: ${job.name}, ${n(stat.size)} bytes of ${kind} ${format}, on error ${onError}\n`)

      let fileStream: ReturnType<typeof createReadStream> | null = null
      const input: ImportInput = {
        bytesTotal: stat.size,
        bytesRead: () => fileStream?.bytesRead ?? 0,
        open: () => (fileStream = createReadStream(file, { highWaterMark: 1 << 20 })),
      }
      const bad: BadRow[] = []
      let badSeen = 0
      const show = progressView(job, stat.size)
      let final: ImportRow
      try {
        final = await runImport(rt, job.id, input, {
          onError,
          noWait: values['no-wait'],
          onProgress: show.update,
          onBadRow: (b) => {
            badSeen++
            if (bad.length < PRINTED_BAD_ROWS) bad.push(b)
          },
        })
      } finally {
        show.stop()
      }
      for (const b of bad) process.stderr.write(`import: bad row ${b.row}${b.path ? ` ${b.path}` : ''}: ${b.reason}\n`)
      if (badSeen > bad.length) process.stderr.write(`import: ... and ${n(badSeen - bad.length)} more bad rows\n`)
      const figures = `${n(final.rowsRead)} rows read, ${n(final.eventsAppended)} events appended (${n(final.duplicates)} duplicates left out), ${n(final.eventsCommitted)} committed, ${n(final.badRows)} bad rows`
      if (final.status === 'stopped') {
        process.stderr.write(`import: import ${final.id} STOPPED at a bad row: ${final.error}\nimport: ${figures}\nimport: fix the file and run again (rows already imported are recognised by their ids), or run again with --on-error skip to leave bad rows out\n`)
        return EXIT.stopped
      }
      process.stderr.write(`import: import ${final.id} ${final.status}: ${figures}\n`)
      return final.badRows > 0 ? EXIT.skipped : EXIT.ok
    } finally {
      await rt.close()
    }
  } catch (err) {
    if (err instanceof ImportBusy) return fail(`${err.message}: it resumes from there; wait for it or stop it first`)
    if (err instanceof ImportFileError) return fail(`${err.message}; nothing was imported`)
    return fail((err as Error).message)
  } finally {
    if (spooled) await fs.rm(spooled, { force: true })
  }
}

/** A progress bar with rate and ETA on a terminal; a line every few seconds otherwise. */
function progressView(job: ImportRow, bytesTotal: number): { update: (p: ImportRow, phase: ImportPhase) => void; stop: () => void } {
  const started = Date.now()
  const tty = process.stderr.isTTY === true
  let bar: SingleBar | null = null
  let phase: ImportPhase | null = null
  let lastLine = 0
  // Rows per second over the last few seconds of rows actually imported (not those a resumed run skips).
  const window: { at: number; rows: number }[] = []
  const rate = (p: ImportRow): number => {
    const now = Date.now()
    const rows = Math.max(p.rowsSent, 0)
    window.push({ at: now, rows })
    while (window.length > 2 && now - (window[0] as { at: number }).at > 5000) window.shift()
    const first = window[0] as { at: number; rows: number }
    return now - first.at < 200 ? 0 : Math.round((rows - first.rows) / ((now - first.at) / 1000))
  }
  return {
    update(p, now) {
      if (tty) {
        if (phase !== now && now !== 'finished') {
          bar?.stop()
          bar =
            now === 'reading'
              ? new SingleBar({ format: 'import   |{bar}| {percentage}% | {rows} rows | {rate} rows/s | ETA {eta_formatted} | {appended} appended, {committed} committed, {bad} bad', stream: process.stderr, etaBuffer: 30, hideCursor: true }, Presets.shades_classic)
              : new SingleBar({ format: 'commit   |{bar}| {percentage}% | {value}/{total} events committed | ETA {eta_formatted}', stream: process.stderr, etaBuffer: 30, hideCursor: true }, Presets.shades_classic)
          if (now === 'reading') bar.start(bytesTotal, 0, { rows: n(p.rowsRead), rate: '0', appended: n(p.eventsAppended), committed: n(p.eventsCommitted), bad: n(p.badRows) })
          else bar.start(Math.max(1, p.eventsAppended), p.eventsCommitted)
          phase = now
        }
        // The file is read ahead of the appends: the bar follows the bytes of the rows in the log.
        const done = p.rowsRead > 0 ? Math.round((p.bytesRead * p.rowsSent) / p.rowsRead) : 0
        if (now === 'reading') bar?.update(done, { rows: n(p.rowsRead), rate: n(rate(p)), appended: n(p.eventsAppended), committed: n(p.eventsCommitted), bad: n(p.badRows) })
        else if (now === 'committing') bar?.update(p.eventsCommitted)
        return
      }
      if (Date.now() - lastLine < 2000 && now !== 'finished') return
      lastLine = Date.now()
      const done = p.rowsRead > 0 ? (p.bytesRead * p.rowsSent) / p.rowsRead : 0
      const pct = bytesTotal > 0 ? Math.floor((100 * done) / bytesTotal) : 100
      const r = rate(p)
      const eta = now === 'reading' && done > 0 ? ` ETA ${Math.round(((bytesTotal - done) / done) * ((Date.now() - started) / 1000))} s,` : ''
      process.stderr.write(`import: ${now} ${pct}% ${n(p.rowsRead)} rows (${n(r)}/s),${eta} ${n(p.eventsAppended)} appended, ${n(p.eventsCommitted)} committed, ${n(p.badRows)} bad rows\n`)
    },
    stop() {
      bar?.stop()
    },
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => fail((err as Error).message),
)
