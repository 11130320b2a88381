import { h } from './dom.js'
import { t } from './i18n.js'

const params = new URLSearchParams(location.search)

/** A preference: the URL wins (wall screens are set up by URL), then what this browser saved. */
export const pref = (key, fallback) => params.get(key) ?? localStorage.getItem(`lantern.${key}`) ?? fallback
export const savePref = (key, value) => localStorage.setItem(`lantern.${key}`, value)

export const DEFAULT_CHARTS = [
  { metric: 'air.pm25', threshold: 50 },
  { metric: 'river.level', threshold: 3 },
  { metric: 'traffic.count', threshold: null },
  { metric: 'power.load', threshold: 700 },
]
const KNOWN_METRICS = DEFAULT_CHARTS.map((c) => c.metric)
const METRIC = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/

/**
 * `metric:threshold,metric:,...` as in `?charts=air.pm25:50,river.level:3`; one chart per metric.
 * Metric names may hold colons, so only a numeric or empty tail after the last one is a threshold.
 */
const parse = (text) => {
  const charts = text.split(',').map((part) => {
    const m = /^(.*):([^:]*)$/.exec(part.trim())
    const tail = m?.[2].trim()
    if (!m || (tail !== '' && !Number.isFinite(Number(tail)))) return { metric: part.trim(), threshold: null }
    return { metric: m[1], threshold: tail === '' ? null : Number(tail) }
  })
  return charts.filter((c, i) => METRIC.test(c.metric) && charts.findIndex((d) => d.metric === c.metric) === i)
}
const format = (charts) => charts.map((c) => `${c.metric}:${c.threshold ?? ''}`).join(',')

export const loadCharts = () => {
  const charts = parse(pref('charts', ''))
  return charts.length > 0 ? charts : DEFAULT_CHARTS
}

/** Opens the chart settings; `onSave` gets the new list once the form is submitted. */
export function editCharts(dialog, charts, onSave) {
  const rows = h('tbody')
  const addRow = ({ metric = '', threshold = null } = {}) =>
    rows.append(
      h('tr', {},
        h('td', {}, h('input', { name: 'metric', value: metric, list: 'known-metrics', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9_.:\\-]{0,127}', 'aria-label': t('settings.metric') })),
        h('td', {}, h('input', { name: 'threshold', type: 'number', step: 'any', value: threshold ?? '', 'aria-label': t('settings.threshold') })),
        h('td', {}, h('button', { type: 'button', onclick: (e) => e.target.closest('tr').remove() }, t('settings.remove'))),
      ),
    )
  charts.forEach(addRow)
  const save = (e) => {
    const list = [...rows.querySelectorAll('tr')].map((tr) => `${tr.querySelector('[name=metric]').value}:${tr.querySelector('[name=threshold]').value}`).join(',')
    const next = parse(list)
    if (next.length === 0) return e.preventDefault()
    savePref('charts', format(next))
    // The URL would otherwise win over what was just saved on the next load.
    params.delete('charts')
    history.replaceState(null, '', `${location.pathname}${params.size > 0 ? `?${params}` : ''}`)
    onSave(next)
  }
  dialog.replaceChildren(
    h('form', { method: 'dialog', onsubmit: save },
      h('h2', {}, t('settings')),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, t('settings.metric')), h('th', {}, t('settings.threshold')), h('th'))), rows),
      h('datalist', { id: 'known-metrics' }, ...KNOWN_METRICS.map((m) => h('option', { value: m }))),
      h('div', { class: 'actions' },
        h('button', { type: 'button', onclick: () => addRow() }, t('settings.add')),
        h('button', { type: 'button', onclick: () => (rows.replaceChildren(), DEFAULT_CHARTS.forEach(addRow)) }, t('settings.defaults')),
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', onclick: () => dialog.close() }, t('settings.cancel')),
        h('button', { type: 'submit', class: 'primary' }, t('settings.save')),
      ),
    ),
  )
  dialog.showModal()
}
