/**
 * A process that runs only the MQTT connectors (what workers/main.ts runs among other things), for
 * tests that kill it with SIGKILL. Env as for a worker, plus MQTT_TEST_LOCK_TTL_MS and
 * MQTT_TEST_POLL_MS so a successor takes over quickly. Prints "ready" once started.
 */
import { loadConfig } from '../../src/config.js'
import { openRuntime, startRuntime } from '../../src/infra/runtime.js'
import { startMqttConnectors } from '../../workers/mqtt.worker.js'

const rt = openRuntime(loadConfig(), { role: 'worker', poolSize: 2, failFastRedis: false })
await startRuntime(rt)
const connectors = startMqttConnectors(rt, {
  pollMs: Number(process.env.MQTT_TEST_POLL_MS ?? 200),
  lockTtlMs: Number(process.env.MQTT_TEST_LOCK_TTL_MS ?? 2000),
})
process.stdout.write('ready\n')
process.once('SIGTERM', () => {
  void connectors
    .close()
    .then(() => rt.close())
    .finally(() => process.exit(0))
})
