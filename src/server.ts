import closeWithGrace from 'close-with-grace'
import { loadConfig } from './config.js'
import { openRuntime, startRuntime } from './infra/runtime.js'
import { buildApp } from './app.js'
import { stopWithSupervisor } from './infra/supervised.js'

/** API/hub process: ingest, queries and live sockets. Run as many as needed behind a balancer. */
const config = loadConfig()
const rt = openRuntime(config, { role: 'api', poolSize: 10, failFastRedis: true })
await startRuntime(rt)
const { app } = await buildApp(rt)
await app.listen({ host: config.host, port: config.port })

stopWithSupervisor()
closeWithGrace({ delay: 15_000 }, async ({ signal, err }) => {
  if (err) rt.log.error({ err }, 'api stopping after an error')
  else rt.log.info({ signal }, 'api stopping: draining requests')
  await app.close()
  await rt.close()
})
