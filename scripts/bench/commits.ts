import pg from 'pg'
import { sleep } from './util.js'

export interface Committed {
  /** Sum of drain_checkpoints.events: events committed into the aggregates. */
  events: number
  late: number
}

export async function openDb(databaseUrl: string): Promise<pg.Client> {
  const db = new pg.Client({ connectionString: databaseUrl, application_name: 'lantern-bench' })
  db.on('error', () => undefined)
  await db.connect()
  return db
}

export async function committedSoFar(db: pg.Client): Promise<Committed> {
  const { rows } = await db.query<{ events: string; late: string }>(
    'SELECT coalesce(sum(events), 0)::text AS events, coalesce(sum(late_events), 0)::text AS late FROM drain_checkpoints',
  )
  return { events: Number(rows[0]?.events ?? 0), late: Number(rows[0]?.late ?? 0) }
}

/**
 * Drain transactions so far: each moves one checkpoint row. From the statistics collector, which
 * backends update about once a second, so only good over several seconds.
 */
export async function drainCommits(db: pg.Client): Promise<number> {
  const { rows } = await db.query<{ n: string }>("SELECT coalesce(sum(n_tup_upd), 0)::text AS n FROM pg_stat_user_tables WHERE relname = 'drain_checkpoints'")
  return Number(rows[0]?.n ?? 0)
}

/**
 * Reads the committed count on a fixed schedule until stopped and hands each reading, with the
 * performance.now() at which it came back, to onSample.
 */
export class CommitPoller {
  latest: Committed | undefined
  private stopped = false
  private readonly loop: Promise<void>

  constructor(
    private readonly db: pg.Client,
    private readonly everyMs: number,
    private readonly onSample: (c: Committed, atMs: number) => void = () => undefined,
  ) {
    this.loop = this.run()
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.loop
  }

  private async run(): Promise<void> {
    for (let next = performance.now(); !this.stopped; next += this.everyMs) {
      await sleep(Math.max(0, next - performance.now()))
      const c = await committedSoFar(this.db)
      this.latest = c
      this.onSample(c, performance.now())
    }
  }
}
