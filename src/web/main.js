import { LiveClient } from '/client/live-client.js'
import { alertFeed, unknownRules } from './alerts.js'
import { BUCKETS, createChart, setAnomalies } from './charts.js'
import { clock, getLang, LANGS, setLang, t } from './i18n.js'
import { renderAlerts, renderDiscrepancies, renderKpis, renderSources, renderTargets } from './panels.js'
import { provinces } from './provinces.js'
import { editCharts, loadCharts, pref, savePref } from './settings.js'

const $ = (id) => document.getElementById(id)
const view = { province: pref('province', ''), service: pref('service', ''), charts: loadCharts() }
const latest = { kpis: null, targets: [], sources: [], crosschecks: [], alerts: { open: [], events: [] } }

let lastStatus = 'connecting'
const showStatus = (status) => {
  lastStatus = status
  $('status').dataset.status = status
  $('status').querySelector('.text').textContent = t(`status.${status}`)
}
const touched = () => ($('updated').textContent = t('updated', { time: clock(Date.now()) }))

const live = new LiveClient({ url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/live`, onStatus: showStatus })

live.subscribe({ kind: 'targets' }, (s) => {
  latest.targets = s.value?.targets ?? []
  renderTargets($('targets'), latest.targets)
  touched()
})
const drawSources = () => renderSources($('sources'), document.querySelector('.sources-panel .count'), latest.sources)
live.subscribe({ kind: 'sources' }, (s) => {
  latest.sources = s.value?.sources ?? []
  drawSources()
  touched()
})
live.subscribe({ kind: 'discrepancies' }, (s) => {
  latest.crosschecks = s.events
  renderDiscrepancies($('discrepancies'), latest.crosschecks, view.province)
  $('discrepancies').dataset.live = 'true'
  touched()
})

// Alert rows in the snapshot carry no condition: their thresholds come from the rules, fetched
// when a row names a rule not seen yet (at most every 10 s; changes carry their condition).
const rules = new Map()
let rulesFetched = 0
async function fetchRules() {
  if (Date.now() - rulesFetched < 10_000) return false
  rulesFetched = Date.now()
  try {
    const res = await fetch('/v1/rules')
    if (!res.ok) return false
    for (const r of (await res.json()).rules) rules.set(String(r.id), r)
    return true
  } catch {
    return false
  }
}
const drawAlerts = () => renderAlerts($('alerts'), alertFeed(latest.alerts.open, latest.alerts.events, rules), view.province)
live.subscribe({ kind: 'alerts' }, (s) => {
  latest.alerts = { open: s.value?.open ?? [], events: s.events }
  drawAlerts()
  $('alerts').dataset.live = 'true'
  touched()
  if (unknownRules([...latest.alerts.open, ...latest.alerts.events], rules).length > 0) void fetchRules().then((got) => got && drawAlerts())
})

let kpiSub = null
function watchKpis() {
  kpiSub?.unsubscribe()
  latest.kpis = null
  renderKpis($('kpis'), null)
  const spec = { kind: 'kpi', ...(view.province && { province: view.province }), ...(view.service && { service: view.service }) }
  kpiSub = live.subscribe(spec, (s) => {
    latest.kpis = s.value?.kpis ?? null
    renderKpis($('kpis'), latest.kpis)
    touched()
  })
}

/** Anomaly flags of a metric for the hour shown, from the query API (the topic's snapshot holds only the newest of every province). */
async function recentAnomalies(metric, province) {
  const q = new URLSearchParams({ metric, from: new Date(Date.now() - BUCKETS * 60_000).toISOString(), limit: '500' })
  if (province) q.set('dims.province', province)
  try {
    const res = await fetch(`/v1/anomalies?${q}`)
    return res.ok ? (await res.json()).anomalies : []
  } catch {
    return []
  }
}

/**
 * Chart markers from flags, only the selected province's: one a minute (the chart's bucket), the
 * flag with the highest score, so a flagged stretch reads as a row of dots rather than a smear.
 */
const markersOf = (flags, province) => {
  const byMinute = new Map()
  for (const f of flags) {
    if (province && f.dims?.province !== province) continue
    const ts = Date.parse(f.ts)
    const minute = Math.floor(ts / 60_000)
    const held = byMinute.get(minute)
    if (!held || f.score > held.score) byMinute.set(minute, { ts, value: f.value, score: f.score })
  }
  return [...byMinute.values()]
}

let chartSubs = []
let chartGeneration = 0
function watchCharts() {
  for (const { subs, chart } of chartSubs) {
    subs.forEach((sub) => sub.unsubscribe())
    chart.destroy()
  }
  const generation = ++chartGeneration
  const province = view.province
  const dims = province ? { province } : {}
  chartSubs = view.charts.map((cfg) => {
    const chart = createChart($('charts'), cfg)
    const sub = live.subscribe({ kind: 'aggregate', metric: cfg.metric, window: '1m', dims }, (s) => {
      chart.update(s.buckets)
      touched()
    }, { buckets: BUCKETS })
    const flags = { recent: [], live: [] }
    const mark = () => generation === chartGeneration && setAnomalies(cfg.metric, markersOf([...flags.recent, ...flags.live], province))
    const anomalySub = live.subscribe({ kind: 'anomalies', metric: cfg.metric }, (s) => {
      flags.live = s.events
      mark()
    })
    void recentAnomalies(cfg.metric, province).then((list) => {
      flags.recent = list
      mark()
    })
    return { subs: [sub, anomalySub], chart }
  })
  $('charts').dataset.count = String(chartSubs.length)
}

function fillProvinces() {
  const select = $('province')
  select.replaceChildren(new Option(t('national'), ''), ...provinces(getLang()).map((p) => new Option(`${p.name} (${p.code})`, p.code)))
  select.value = view.province
}

function applyLang(lang) {
  setLang(lang)
  savePref('lang', getLang())
  $('lang').textContent = LANGS.find((l) => l !== getLang()).toUpperCase()
  fillProvinces()
  showStatus(lastStatus)
  renderKpis($('kpis'), latest.kpis)
  renderTargets($('targets'), latest.targets)
  drawSources()
  drawAlerts()
  renderDiscrepancies($('discrepancies'), latest.crosschecks, view.province)
  for (const { chart } of chartSubs) chart.relabel()
}

$('province').addEventListener('change', (e) => {
  view.province = e.target.value
  savePref('province', view.province)
  watchKpis()
  watchCharts()
  drawAlerts()
  renderDiscrepancies($('discrepancies'), latest.crosschecks, view.province)
})
$('service').addEventListener('change', (e) => {
  view.service = e.target.value
  savePref('service', view.service)
  watchKpis()
})
$('lang').addEventListener('click', () => applyLang(LANGS.find((l) => l !== getLang())))
$('settings-button').addEventListener('click', () =>
  editCharts($('settings'), view.charts, (charts) => {
    view.charts = charts
    watchCharts()
  }),
)

$('service').value = view.service
applyLang(pref('lang', 'vi'))
watchKpis()
watchCharts()

window.lantern = { setAnomalies }
