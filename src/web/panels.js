import { h } from './dom.js'
import { clock, duration, getLang, num, pct, t } from './i18n.js'
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

const MAX_ALERTS = 30
const shown = new Set()

/**
 * The alert feed. Lantern has no alert API yet, so the feed shows the discrepancies topic: each
 * cross-check whose reported figures differ from the events, newest first. With a province
 * selected, only that province's.
 */
export function renderAlerts(root, crosschecks, province) {
  const items = crosschecks.filter((c) => !province || c.filter?.province === province).slice(-MAX_ALERTS).reverse()
  if (items.length === 0) return root.replaceChildren(h('li', { class: 'empty' }, t('alerts.empty')))
  const lang = getLang()
  root.replaceChildren(
    ...items.map((c) => {
      const fresh = !shown.has(c.id)
      shown.add(c.id)
      const where = c.filter?.province ? provinceName(c.filter.province, lang) : t('national')
      const service = c.filter?.service ? t(`service.${c.filter.service}`) : t('service.all')
      return h('li', { class: `alert${fresh ? ' fresh' : ''}`, dataset: { crosscheck: c.id } },
        h('div', { class: 'head' }, h('time', {}, clock(Date.parse(c.createdAt))), h('strong', {}, t('alerts.title', { province: where, service }))),
        h('ul', {}, ...c.discrepancies.map((d) =>
          h('li', {},
            t('alerts.line', { figure: t(`figure.${d.figure}`), reported: num(d.reported), computed: num(d.computed), diff: `${d.difference > 0 ? '+' : ''}${num(d.difference)}` }),
            ...(d.cases[0] ? [' ', h('a', { href: d.cases[0], target: '_blank', rel: 'noopener' }, `${t('alerts.cases')} ↗`)] : [])))),
        c.source ? h('div', { class: 'source' }, c.source) : null,
      )
    }),
  )
}
