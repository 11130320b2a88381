import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync } from 'fastify'
import fastifyStatic from '@fastify/static'
import type { Runtime } from '../infra/runtime.js'

const WEB_ROOT = fileURLToPath(new URL('../web/', import.meta.url))
const UPLOT_DIST = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist')

/**
 * The operations screen: the static page at `/` and the chart library it imports, served from
 * node_modules because screens often have no internet. Routes are registered per file
 * (`wildcard: false`) so an unknown path still gets the API's JSON 404.
 */
export const webRoutes: FastifyPluginAsync<{ rt: Runtime }> = async (app) => {
  await app.register(fastifyStatic, { root: WEB_ROOT, prefix: '/', wildcard: false })
  await app.register(fastifyStatic, { root: UPLOT_DIST, prefix: '/vendor/uplot/', wildcard: false, decorateReply: false })
}
