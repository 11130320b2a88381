import t from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { chromium } from 'playwright-core'
import { startTestApp } from '../helpers/context.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const SCREENSHOT = resolve('.tap/screenshots/operations-screen.png')
const HOUR = 3_600_000

t.test('the page, its modules and the chart library are served; other paths keep the JSON 404', async (t) => {
  const { app } = await startTestApp(t, { LANTERN_PARTITIONS: '1' })
  const page = await app.inject({ url: '/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /<script type="module" src="\/main.js">/)
  for (const url of ['/main.js', '/charts.js', '/vendor/uplot/uPlot.esm.js']) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 200, url)
    t.match(res.headers['content-type'], /javascript/, url)
  }
  t.equal((await app.inject({ url: '/vendor/uplot/uPlot.min.css' })).statusCode, 200)
  const missing = await app.inject({ url: '/no-such-page' })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'NOT_FOUND')
})

t.test(
  'in Chromium, the operations screen follows the live topics, survives a dropped socket, and switches province and language',
  { skip: existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium to run this test)` },
  async (t) => {
    const { app, worker, wsUrl } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_LIVE_TICK_MS: '20' }, { listen: true })
    const base = wsUrl.replace(/^ws:/, 'http:').replace(/\/v1\/live$/, '')
    const drainers = makeDrainers(worker)
    const post = async (url: string, payload: object): Promise<void> => {
      const res = await app.inject({ method: 'POST', url, payload })
      t.equal(res.statusCode, 202, `POST ${url}`)
      await drainAll(drainers)
    }

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true })
    t.teardown(() => browser.close())
    const page = await browser.newPage({ viewport: { width: 1600, height: 900 } })
    const problems: string[] = []
    page.on('pageerror', (err) => problems.push(err.message))
    page.on('console', (msg) => msg.type() === 'error' && problems.push(msg.text()))
    let sockets = 0
    page.on('websocket', () => sockets++)

    await page.goto(`${base}/?lang=en&province=46`)
    await page.locator('#status[data-status="open"]').waitFor()
    t.equal(await page.locator('.chart').count(), 4, 'the default charts')
    t.equal(await page.locator('#province option').count(), 64, '63 provinces and the national total')

    const now = Date.now()
    const dims = { province: '46', agency: 'power-company', category: 'electrical-safety' }
    const ev = (c: string, status: string, ts: number, extra: object = {}) => ({ id: `${c}-${status}`, source: 'hue-s', service: 'paht', case: c, status, ts, ...extra })
    await post('/v1/reports', [
      ev('PA-1', 'received', now - 3 * HOUR, { due: now + 24 * HOUR, dims }),
      ev('PA-1', 'assigned', now - 2 * HOUR),
      ev('PA-1', 'resolved', now - HOUR),
      ev('PA-1', 'rated', now - HOUR / 2, { rating: 5 }),
      ev('PA-2', 'received', now - 2 * HOUR, { due: now - HOUR, dims }),
      ev('PA-2', 'assigned', now - HOUR),
      ev('PA-3', 'received', now - 60_000, { due: now + 24 * HOUR, dims }),
    ])
    const tile = (kpi: string) => page.locator(`[data-kpi="${kpi}"] .value`)
    const expectTile = async (kpi: string, text: string): Promise<void> => {
      await tile(kpi).filter({ hasText: new RegExp(`^${text}$`) }).waitFor()
      t.equal(await tile(kpi).textContent(), text, `${kpi} tile shows ${text}`)
    }
    await expectTile('received', '3')
    await expectTile('processed', '1')
    await expectTile('inProgress', '1')
    await expectTile('overdue', '1')
    await expectTile('onTimeRate', '100 %')
    await expectTile('satisfactionRate', '100 %')

    const sample = (id: string, value: number) => ({ id, source: 'hue-env', metric: 'air.pm25', ts: now, value, dims: { province: '46', station: 'S1' } })
    await post('/v1/metrics', [sample('m1', 40), sample('m2', 70)])
    const pm25 = page.locator('.chart[data-metric="air.pm25"]')
    await pm25.locator('.latest', { hasText: /^55$/ }).waitFor()
    t.equal(await pm25.getAttribute('data-buckets'), '1', 'the chart holds the bucket')
    t.equal(await pm25.getAttribute('data-over'), 'true', 'max 70 is over the threshold of 50')
    t.ok(await pm25.locator('.badge').isVisible(), 'the over-threshold badge shows')

    await page.evaluate(`window.lantern.setAnomalies('air.pm25', [{ ts: ${now} }])`)
    await page.locator('.chart[data-metric="air.pm25"][data-anomalies="1"]').waitFor()
    t.pass('an anomaly marker is drawn from the hook')

    const check = await app.inject({
      method: 'POST',
      url: '/v1/crosschecks',
      payload: { source: 'province-46', service: 'paht', province: '46', period: { from: String(now - 24 * HOUR), to: String(now + 1) }, reported: { received: 5 } },
    })
    t.equal(check.statusCode, 201)
    const alert = page.locator('#alerts .alert')
    await alert.first().waitFor()
    t.match(await alert.first().textContent(), /Received: reported 5, events give 3 \(\+2\)/, 'the discrepancy is in the alert feed')

    // The network drops; cases arrive meanwhile; the page reconnects and resumes on its own.
    for (const socket of app.websocketServer.clients) socket.terminate()
    await post('/v1/reports', [ev('PA-4', 'received', now, { due: now + HOUR, dims }), ev('PA-5', 'received', now, { due: now + HOUR, dims })])
    await expectTile('received', '5')
    await page.locator('#status[data-status="open"]').waitFor()
    t.equal(sockets, 2, 'one new connection')

    mkdirSync(dirname(SCREENSHOT), { recursive: true })
    await page.screenshot({ path: SCREENSHOT })
    t.comment(`screenshot: ${SCREENSHOT}`)

    await page.selectOption('#province', '01')
    await expectTile('received', '0')
    t.equal(await pm25.getAttribute('data-buckets'), '0', 'the charts follow the province')
    await page.locator('#alerts .empty').waitFor()
    await page.selectOption('#province', '')
    await expectTile('received', '5')
    await alert.first().waitFor()

    await page.click('#lang')
    await page.locator('[data-kpi="received"] .label', { hasText: 'Tiếp nhận' }).waitFor()
    t.equal(await page.locator('#province option').first().textContent(), 'Toàn quốc')
    t.equal(await tile('onTimeRate').textContent(), '100 %')

    t.same(problems, [], 'no errors in the page')
    await browser.close()
  },
)
