import { inProvince } from './alerts.js'
import { metricLabel } from './charts.js'
import { h } from './dom.js'
import { clock, day, duration, getLang, has, hm, num, pct, t } from './i18n.js'
import { provinceName } from './provinces.js'

const TILES = [
  { key: 'received', value: (k) => num(k.received), sub: (k) => t('sub.received', { n: num(k.receivedLastHour) }) },
  { key: 'processed', value: (k) => num(k.processed), sub: (k) => t('sub.processed', { resolved: num(k.resolved), rejected: num(k.rejected) }) },
  { key: 'inProgress', value: (k) => num(k.inProgress), sub: (k) => t('sub.inProgress', { backlog: num(k.backlog), before: num(k.backlog24hAgo) }) },
  { key: 'overdue', value: (k) => num(k.overdue), sub: () => t('sub.overdue'), alert: (k) => k.overdue > 0 },
  { key: 'onTimeRate', value: (k) => pct(k.onTimeRate), sub: (k) => t('sub.onTimeRate', { p50: duration(k.timeToResolveP50Sec) }) },
  { key: 'satisfactionRate', value: (k) => pct(k.satisfactionRate), sub: (k) => t('sub.satisfactionRate', { satisfied: num(k.satisfied), rated: num(k.rated) }) },
]

/** The KPI tiles; a tile whose figure changed flashes once. */
export function renderKpis(root, kpis) {
  if (root.children.length !== TILES.length) {
    root.replaceChildren(...TILES.map(({ key }) => h('div', { class: 'tile', dataset: { kpi: key } }, h('div', { class: 'label' }), h('div', { class: 'value' }, '—'), h('div', { class: 'sub' }))))
  }
  for (const tile of TILES) {
    const el = root.querySelector(`[data-kpi="${tile.key}"]`)
    el.querySelector('.label').textContent = t(`kpi.${tile.key}`)
    if (!kpis) continue
    const value = el.querySelector('.value')
    const text = tile.value(kpis)
    if (value.textContent !== text && value.textContent !== '—') {
      el.classList.remove('changed')
      void el.offsetWidth // restarts the animation
      el.classList.add('changed')
    }
    value.textContent = text
    el.querySelector('.sub').textContent = tile.sub(kpis)
    el.classList.toggle('alert', tile.alert?.(kpis) ?? false)
  }
}

/** Targets with a progress bar: green when met, amber when projected to be met, red otherwise. */
export function renderTargets(root, targets) {
  if (targets.length === 0) return root.replaceChildren(h('li', { class: 'empty' }, t('targets.empty')))
  root.replaceChildren(
    ...targets.map((target) => {
      const s = target.status
      const unit = target.unit ? ` ${target.unit}` : ''
      const state = s.met ? 'met' : s.onTrack ? 'on-track' : 'behind'
      const verdict = s.met ? t('targets.met') : s.onTrack ? t('targets.onTrack') : t('targets.offTrack')
      return h('li', { class: `target ${state}`, dataset: { target: target.id } },
        h('div', { class: 'name' }, target.name),
        h('div', { class: 'progress' }, h('div', { class: 'fill', style: `width:${Math.min(100, s.completionPct ?? 0)}%` })),
        h('div', { class: 'meta' },
          h('span', { class: 'figures' }, `${num(s.value, 2)}${unit} / ${target.operator} ${num(target.target, 2)}${unit}`),
          h('span', {}, `${verdict}${s.projected === null ? '' : ' · ' + t('targets.projected', { v: num(s.projected, 2) + unit })}`)),
      )
    }),
  )
}

/** A duration in seconds, as a person reads it: "12 s", "3 min", "2 h", "4 d". */
function span(seconds) {
  if (seconds === null || seconds === undefined) return '–'
  if (seconds < 60) return `${Math.round(seconds)} s`
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h`
  return `${Math.round(seconds / 86400)} d`
}

/** Every source: silent ones first, each with its rate, lag, time since it last sent, and refusals. */
export function renderSources(root, count, sources) {
  const silent = sources.filter((s) => s.status === 'silent').length
  count.hidden = silent === 0
  count.textContent = t('sources.silent', { n: num(silent) })
  if (sources.length === 0) return root.replaceChildren(h('li', { class: 'empty' }, t('sources.empty')))
  const sorted = [...sources].sort((a, b) => (a.status === b.status ? a.source.localeCompare(b.source) : a.status === 'silent' ? -1 : 1))
  const now = Date.now()
  root.replaceChildren(
    ...sorted.map((s) =>
      h('li', { class: `source ${s.status}`, dataset: { source: s.source, status: s.status }, title: s.lastRejection ? `${s.lastRejection.at}: ${s.lastRejection.reason}` : '' },
        h('span', { class: 'dot' }),
        h('span', { class: 'name' }, s.source),
        h('span', { class: 'meta' },
          t('sources.line', { rate: num(s.eventsPerMinute, 0), lag: span(s.lagSeconds), ago: span(s.lastArrivalAt ? (now - Date.parse(s.lastArrivalAt)) / 1000 : null) }),
          ...(s.rejected > 0 ? [' · ', h('span', { class: 'rejected' }, t('sources.rejected', { n: num(s.rejected) }))] : [])),
      ),
    ),
  )
}

const MAX_ALERTS = 30
const MAX_DISCREPANCIES = 30
const shown = new Set()
/**
 * Whether a feed item is new since the list was first drawn from its topic (the caller sets
 * `data-live` on the list then): those flash once, the first snapshot does not.
 */
const isFresh = (root, key) => {
  const fresh = root.dataset.live === 'true' && !shown.has(key)
  shown.add(key)
  return fresh
}
const OPS = { '>': '>', '>=': '≥', '<': '<', '<=': '≤', '==': '=', '!=': '≠' }

/** The time of day; with the date when it is not today. */
const when = (ms) => (new Date(ms).toDateString() === new Date().toDateString() ? clock(ms) : `${day(ms)} ${hm(ms)}`)

/** "value 3,42 / threshold ≥ 3", or the anomaly score against the least score of an anomaly rule. */
function figures(a) {
  const digits = a.rule.kind === 'anomaly' ? 2 : Math.abs(a.value) >= 100 ? 0 : 2
  const value = num(a.value, digits)
  if (a.threshold === null || a.op === null) return t('alert.valueOnly', { value })
  return t(a.rule.kind === 'anomaly' ? 'alert.score' : 'alert.value', { value, op: OPS[a.op] ?? a.op, threshold: num(a.threshold, 2) })
}

/** Where: the province by name, then the series' other dims (station, district, ...). */
function where(dims, lang) {
  const rest = Object.entries(dims).filter(([k]) => k !== 'province').map(([k, v]) => (k === 'station' ? t('alert.station', { station: v }) : `${k} ${v}`))
  return [dims.province === undefined ? t('national') : provinceName(dims.province, lang), ...rest].join(' · ')
}

/**
 * The alert feed: one entry per alert (rule and series) at its latest state, newest change first,
 * coloured by severity; resolved and cancelled ones stay, dimmed. With a province selected, alerts
 * of other provinces are left out (those without a province dim stay). `alerts` comes from
 * alertFeed() in alerts.js.
 */
export function renderAlerts(root, alerts, province) {
  const items = alerts.filter((a) => inProvince(a, province))
  const firing = items.filter((a) => a.status === 'firing').length
  const count = root.closest('.panel')?.querySelector('.count')
  if (count) {
    count.textContent = firing > 0 ? t('alerts.open', { n: num(firing) }) : ''
    count.hidden = firing === 0
  }
  if (items.length === 0) return root.replaceChildren(h('li', { class: 'empty' }, t('alerts.empty')))
  const lang = getLang()
  root.replaceChildren(
    ...items.slice(0, MAX_ALERTS).map((a) => {
      const fresh = isFresh(root, `alert:${a.id}:${a.status}`)
      const open = a.status === 'pending' || a.status === 'firing'
      return h('li', { class: `alert${fresh ? ' fresh' : ''}`, dataset: { alert: a.id, status: a.status, severity: a.severity, rule: a.rule.id, metric: a.metric } },
        h('div', { class: 'head' },
          h('span', { class: 'state' }, t(`alert.status.${a.status}`)),
          h('span', { class: 'severity' }, has(`alert.severity.${a.severity}`) ? t(`alert.severity.${a.severity}`) : a.severity),
          h('time', { datetime: new Date(a.at).toISOString() }, when(a.at))),
        h('div', { class: 'rule' }, a.rule.name),
        h('div', { class: 'series' }, `${where(a.dims, lang)} · ${metricLabel(a.metric)}`),
        h('div', { class: 'figures' }, figures(a), open && a.since < a.at ? ` · ${t('alert.since', { time: clock(a.since) })}` : ''),
      )
    }),
  )
}

/**
 * Cross-checks whose reported figures differ from the events (the discrepancies topic), newest
 * first, with links to the cases behind them. With a province selected, only that province's.
 */
export function renderDiscrepancies(root, crosschecks, province) {
  const items = crosschecks.filter((c) => !province || c.filter?.province === province).slice(-MAX_DISCREPANCIES).reverse()
  if (items.length === 0) return root.replaceChildren(h('li', { class: 'empty' }, t('discrepancies.empty')))
  const lang = getLang()
  root.replaceChildren(
    ...items.map((c) => {
      const fresh = isFresh(root, `crosscheck:${c.id}`)
      const place = c.filter?.province ? provinceName(c.filter.province, lang) : t('national')
      const service = c.filter?.service ? t(`service.${c.filter.service}`) : t('service.all')
      return h('li', { class: `discrepancy${fresh ? ' fresh' : ''}`, dataset: { crosscheck: c.id } },
        h('div', { class: 'head' }, h('time', {}, when(Date.parse(c.createdAt))), h('strong', {}, t('alerts.title', { province: place, service }))),
        h('ul', {}, ...c.discrepancies.map((d) =>
          h('li', {},
            t('alerts.line', { figure: t(`figure.${d.figure}`), reported: num(d.reported), computed: num(d.computed), diff: `${d.difference > 0 ? '+' : ''}${num(d.difference)}` }),
            ...(d.cases[0] ? [' ', h('a', { href: d.cases[0], target: '_blank', rel: 'noopener' }, `${t('alerts.cases')} ↗`)] : [])))),
        c.source ? h('div', { class: 'source' }, c.source) : null,
      )
    }),
  )
}
