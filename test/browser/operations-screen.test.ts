import t from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { chromium } from 'playwright-core'
import { startTestApp } from '../helpers/context.js'
import { drainAll, makeDrainers } from '../helpers/drain.js'
import { publishSingleValue, singleValue } from '../../src/live/delta-publisher.js'
import { SOURCES_TOPIC } from '../../src/live/topic.js'

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
    const { app, api, worker, wsUrl } = await startTestApp(t, { LANTERN_PARTITIONS: '2', LANTERN_LIVE_TICK_MS: '20' }, { listen: true })
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

    // An alert rule through the API; river gauges in two provinces breach it for longer than its for-duration.
    const RULE = 'Test: river above alarm level 3'
    const rule = await app.inject({
      method: 'POST',
      url: '/v1/rules',
      payload: { name: RULE, metric: 'river.level', dims: { province: '*' }, aggregate: 'max', window: '1m', op: '>=', value: 3, for: '2m', severity: 'critical' },
    })
    t.equal(rule.statusCode, 201, rule.body)
    const level = (province: string, station: string, minutesAgo: number, value: number) => ({
      id: `${station}-${minutesAgo}`, source: 'hydro', metric: 'river.level', ts: now - minutesAgo * 60_000, value, dims: { province, station },
    })
    const flood = (province: string, station: string) => Array.from({ length: 10 }, (_, i) => level(province, station, 10 - i, i < 4 ? 2.1 : 3.4))
    await post('/v1/metrics', [...flood('46', 'R1'), ...flood('01', 'R2')])
    const firing = page.locator('#alerts .alert[data-status="firing"]', { hasText: RULE })
    await firing.first().waitFor()
    t.equal(await firing.count(), 1, 'only the alert of the province shown')
    const alertText = await firing.textContent()
    t.match(alertText, /Firing/, 'its state')
    t.match(alertText, /Critical/, 'its severity')
    t.match(alertText, /Thua Thien Hue · station R1/, 'the province by name and the station')
    t.match(alertText, /value 3\.4 \/ threshold ≥ 3/, 'the value against the threshold')
    t.equal(await firing.getAttribute('data-severity'), 'critical')
    t.equal(await page.locator('.alerts-panel .count').textContent(), '1 firing')

    // A PM2.5 station that reads about 30 for the past 45 minutes, then spikes to 250: flagged, drawn on the chart, and alerted on by an anomaly rule.
    const ANOMALY_RULE = 'Test: PM2.5 anomaly'
    t.equal((await app.inject({ method: 'POST', url: '/v1/rules', payload: { name: ANOMALY_RULE, kind: 'anomaly', metric: 'air.pm25', dims: { province: '*' }, value: 0.8 } })).statusCode, 201)
    const pm = (i: number, value: number) => ({ id: `s9-${i}`, source: 'hue-env', metric: 'air.pm25', ts: now - (46 - i) * 60_000, value, dims: { province: '46', station: 'S9' } })
    await post('/v1/metrics', [...Array.from({ length: 45 }, (_, i) => pm(i, 30 + ((i * 7) % 5) - 2)), pm(45, 250)])
    await page.locator('.chart[data-metric="air.pm25"][data-anomalies="1"]').waitFor()
    t.pass('the spike is drawn as an anomaly marker on the PM2.5 chart')
    t.match(await pm25.locator('.legend .anomaly').textContent(), /anomalies \(1\)/)
    const flags = (await app.inject({ url: '/v1/anomalies?metric=air.pm25&dims.province=46' })).json().anomalies
    t.same(flags.map((f: { eventId: string }) => f.eventId), ['s9-45'], 'the spike is the one flag')
    const anomalyAlert = page.locator('#alerts .alert[data-status="firing"]', { hasText: ANOMALY_RULE })
    await anomalyAlert.waitFor()
    t.match(await anomalyAlert.textContent(), /Warning[\s\S]*anomaly score (0|1)\.?\d* \/ threshold ≥ 0\.8/, 'the anomaly alert with its score')

    const check = await app.inject({
      method: 'POST',
      url: '/v1/crosschecks',
      payload: { source: 'province-46', service: 'paht', province: '46', period: { from: String(now - 24 * HOUR), to: String(now + 1) }, reported: { received: 5 } },
    })
    t.equal(check.statusCode, 201)
    const discrepancy = page.locator('#discrepancies .discrepancy')
    await discrepancy.first().waitFor()
    t.match(await discrepancy.first().textContent(), /Received: reported 5, events give 3 \(\+2\)/, 'the discrepancy is listed under the alerts')

    // The worker's source watch refreshes the sources topic every few seconds; one refresh here.
    await publishSingleValue(api, SOURCES_TOPIC, await singleValue(api, SOURCES_TOPIC))
    const hydro = page.locator('#sources .source[data-source="hydro"]')
    await hydro.waitFor()
    t.equal(await hydro.getAttribute('data-status'), 'live', 'the river gauges show as a live source')
    t.match(await hydro.textContent(), /\/min · lag/, 'with its rate and lag')

    mkdirSync(dirname(SCREENSHOT), { recursive: true })
    await page.screenshot({ path: SCREENSHOT })
    t.comment(`screenshot: ${SCREENSHOT}`)

    // The network drops; cases arrive and the river falls back below 3 m meanwhile; the page reconnects and resumes on its own.
    const alertId = await firing.getAttribute('data-alert')
    for (const socket of app.websocketServer.clients) socket.terminate()
    await post('/v1/reports', [ev('PA-4', 'received', now, { due: now + HOUR, dims }), ev('PA-5', 'received', now, { due: now + HOUR, dims })])
    await post('/v1/metrics', [level('46', 'R1', 0, 2.2)])
    await expectTile('received', '5')
    await page.locator('#status[data-status="open"]').waitFor()
    t.equal(sockets, 2, 'one new connection')
    const resolved = page.locator(`#alerts .alert[data-alert="${alertId}"][data-status="resolved"]`)
    await resolved.waitFor()
    t.match(await resolved.textContent(), /Resolved[\s\S]*value 2\.2 \/ threshold ≥ 3/, 'the same alert resolved, with the value it resolved on')
    t.equal(await page.locator('.alerts-panel .count').textContent(), '1 firing', 'the anomaly alert still fires')

    // A reloaded page gets the alerts as rows in the snapshot, their thresholds from the rules.
    await page.reload()
    await page.locator('#status[data-status="open"]').waitFor()
    await resolved.filter({ hasText: /value 2\.2 \/ threshold ≥ 3/ }).waitFor()
    t.pass('after a reload, the snapshot row shows the same')
    await page.locator('.chart[data-metric="air.pm25"][data-anomalies="1"]').waitFor()
    t.pass('and the anomaly marker is back from the snapshot')

    await page.selectOption('#province', '01')
    await expectTile('received', '0')
    t.equal(await pm25.getAttribute('data-buckets'), '0', 'the charts follow the province')
    await page.locator('#discrepancies .empty').waitFor()
    await page.locator('#alerts .alert[data-status="firing"]', { hasText: 'Hanoi · station R2' }).waitFor()
    t.equal(await page.locator('#alerts .alert').count(), 1, "only Hanoi's alert")
    t.equal(await pm25.getAttribute('data-anomalies'), '0', "no marker: the flag is Thua Thien Hue's")
    await page.selectOption('#province', '')
    await expectTile('received', '5')
    await discrepancy.first().waitFor()
    await page.locator('.chart[data-metric="air.pm25"][data-anomalies="1"]').waitFor()
    t.equal(await page.locator('#alerts .alert').count(), 3, 'nationally, every alert')
    t.same(
      await Promise.all((await page.locator('#alerts .alert').all()).map((el) => el.getAttribute('data-status'))),
      ['resolved', 'firing', 'firing'],
      'newest change first',
    )

    await page.click('#lang')
    await page.locator('[data-kpi="received"] .label', { hasText: 'Tiếp nhận' }).waitFor()
    t.equal(await page.locator('#province option').first().textContent(), 'Toàn quốc')
    t.equal(await tile('onTimeRate').textContent(), '100 %')
    await page.locator('#alerts .alert[data-status="firing"]', { hasText: 'Hà Nội · trạm R2' }).waitFor()
    t.match(await page.locator(`#alerts .alert[data-alert="${alertId}"]`).textContent(), /Đã kết thúc[\s\S]*Nghiêm trọng[\s\S]*Thừa Thiên Huế/, 'the feed in Vietnamese')

    t.same(problems, [], 'no errors in the page')
    await browser.close()
  },
)
