import { LiveClient } from '/client/live-client.js'
import { BUCKETS, createChart, setAnomalies } from './charts.js'
import { clock, getLang, LANGS, setLang, t } from './i18n.js'
import { renderAlerts, renderKpis, renderTargets } from './panels.js'
import { provinces } from './provinces.js'
import { editCharts, loadCharts, pref, savePref } from './settings.js'

const $ = (id) => document.getElementById(id)
const view = { province: pref('province', ''), service: pref('service', ''), charts: loadCharts() }
const latest = { kpis: null, targets: [], crosschecks: [] }

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
live.subscribe({ kind: 'discrepancies' }, (s) => {
  latest.crosschecks = s.events
  renderAlerts($('alerts'), latest.crosschecks, view.province)
  touched()
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

let chartSubs = []
function watchCharts() {
  for (const { sub, chart } of chartSubs) {
    sub.unsubscribe()
    chart.destroy()
  }
  const dims = view.province ? { province: view.province } : {}
  chartSubs = view.charts.map((cfg) => {
    const chart = createChart($('charts'), cfg)
    const sub = live.subscribe({ kind: 'aggregate', metric: cfg.metric, window: '1m', dims }, (s) => {
      chart.update(s.buckets)
      touched()
    }, { buckets: BUCKETS })
    return { sub, chart }
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
  renderAlerts($('alerts'), latest.crosschecks, view.province)
  for (const { chart } of chartSubs) chart.relabel()
}

$('province').addEventListener('change', (e) => {
  view.province = e.target.value
  savePref('province', view.province)
  watchKpis()
  watchCharts()
  renderAlerts($('alerts'), latest.crosschecks, view.province)
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
