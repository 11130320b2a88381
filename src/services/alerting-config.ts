import type { Db } from '../infra/db.js'
import type { Redis } from '../infra/redis.js'
import type { Keys } from '../infra/keys.js'
import type { Rule } from '../domain/alerting/rule.js'
import { listRules } from '../repositories/rules.repository.js'
import { allAnomalySettings } from '../repositories/anomaly-settings.repository.js'
import type { AnomalySettings } from '../schemas/anomaly-settings.js'

export interface AlertingConfig {
  rules: Rule[]
  settings: Map<string, AnomalySettings>
}

/** Even without a version bump (a lost INCR), settings are re-read this often. */
const MAX_AGE_MS = 30_000

/** Tells every drainer that rules or detector settings changed. */
export async function bumpConfigVersion(redis: Redis, keys: Keys): Promise<void> {
  await redis.incr(keys.configVersion)
}

/**
 * Rules and detector settings as the drain uses them: read from Postgres, re-read when the
 * version counter in Redis moves (the API bumps it on every change), so a new rule applies to
 * the next batch.
 */
export class AlertingConfigCache {
  private current: AlertingConfig | null = null
  private version: string | null = null
  private loadedAt = 0

  constructor(private readonly deps: { db: Db; redis: Redis; keys: Keys }) {}

  async get(): Promise<AlertingConfig> {
    const version = await this.deps.redis.get(this.deps.keys.configVersion)
    if (this.current && version === this.version && Date.now() - this.loadedAt < MAX_AGE_MS) return this.current
    const [rules, settings] = await Promise.all([listRules(this.deps.db), allAnomalySettings(this.deps.db)])
    // Silence rules run on the wall clock in the source watch, not on samples.
    this.current = { rules: rules.filter((r) => r.enabled && r.kind !== 'silence'), settings }
    this.version = version
    this.loadedAt = Date.now()
    return this.current
  }
}
