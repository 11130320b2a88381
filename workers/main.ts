import closeWithGrace from 'close-with-grace'
import { loadConfig } from '../src/config.js'
import { openRuntime, startRuntime } from '../src/infra/runtime.js'
import { startDrainWorker } from './drain.worker.js'
import { startOverdueWorker } from './overdue.worker.js'
import { startMetricsReporter } from './metrics-reporter.js'
import { startAuditWorker } from './audit.worker.js'
import { startWebhookWorker } from './webhook.worker.js'
import { startImportWorker } from './import.worker.js'
import { startMqttConnectors } from './mqtt.worker.js'
import { startSourceWatch } from './source-watch.worker.js'
import { stopWithSupervisor } from '../src/infra/supervised.js'

/** Worker process: drains the partitioned log into Postgres and runs the overdue check. Run as many as needed. */
const config = loadConfig()
const rt = openRuntime(config, { role: 'worker', poolSize: Math.min(config.partitions, 8) + 2, failFastRedis: false })
await startRuntime(rt)
const drain = startDrainWorker(rt)
const overdue = startOverdueWorker(rt)
const reporter = startMetricsReporter(rt)
const audits = startAuditWorker(rt)
const webhooks = startWebhookWorker(rt)
const imports = startImportWorker(rt)
const mqttConnectors = startMqttConnectors(rt)
const sources = startSourceWatch(rt)
rt.log.info({ partitions: config.partitions }, 'worker started')

stopWithSupervisor()
closeWithGrace({ delay: 30_000 }, async ({ signal, err }) => {
  if (err) rt.log.error({ err }, 'worker stopping after an error')
  else rt.log.info({ signal }, 'worker stopping: finishing in-flight batches')
  await Promise.all([drain.close(), overdue.close(), audits.close(), webhooks.close(), imports.close(), sources.close(), mqttConnectors.close()])
  await reporter.close()
  await rt.close()
})
