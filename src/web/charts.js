import uPlot from '/vendor/uplot/uPlot.esm.js'
import { h } from './dom.js'
import { has, hm, num, t } from './i18n.js'

/** Buckets shown: one hour of the 1m window. */
export const BUCKETS = 60
const COLORS = { mean: '#4cc9f0', max: '#f9c74f', threshold: '#ff4d6d', anomaly: '#ff4d6d' }

const charts = new Set()
const anomalies = new Map()

/**
 * Anomaly markers of a metric: [{ ts: epoch ms, value?: number }]. main.js feeds it from the
 * `anomalies` topic of each chart's metric (flags of the selected province); it is also exposed as
 * window.lantern.setAnomalies. The y scale stretches to keep every marker of the hour in view.
 */
export function setAnomalies(metric, markers) {
  anomalies.set(metric, markers)
  for (const c of charts) if (c.metric === metric) c.rescale()
}

// The time axis moves on with the clock even when a metric falls silent.
setInterval(() => charts.forEach((c) => c.advance()), 15_000)

export const metricLabel = (metric) => (has(`metric.${metric}`) ? t(`metric.${metric}`) : metric)
const rem = () => parseFloat(getComputedStyle(document.documentElement).fontSize)

/** A chart card for one metric: mean and max per minute, a threshold line, anomaly markers. */
export function createChart(parent, { metric, threshold }) {
  const title = h('h3', {}, metricLabel(metric))
  const latest = h('span', { class: 'latest' }, '—')
  const legend = h('div', { class: 'legend' })
  const anomalyKey = h('span', { class: 'key anomaly', hidden: true })
  const plotBox = h('div', { class: 'plot' }, h('div', { class: 'empty' }, t('chart.noData')))
  const card = h('article', { class: 'chart', dataset: { metric, buckets: '0', anomalies: '0', over: 'false' } },
    h('header', {}, title, h('span', { class: 'badge' }, t('chart.over')), latest), legend, plotBox)
  parent.append(card)

  const r = rem()
  const axis = (size, space) => ({
    stroke: '#9fb0c8',
    font: `${Math.round(r * 0.8)}px system-ui, sans-serif`,
    size: r * size,
    space: r * space,
    grid: { stroke: 'rgba(159,176,200,0.12)', width: 1 },
    ticks: { stroke: 'rgba(159,176,200,0.3)', width: 1, size: r * 0.3 },
  })
  const u = new uPlot(
    {
      width: plotBox.clientWidth || 300,
      height: plotBox.clientHeight || 150,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true, range: lastHour }, y: { range: (_u, min, max) => paddedRange(...withMarkers(min, max, anomalies.get(metric)), threshold) } },
      axes: [
        { ...axis(2, 5), values: (_u, splits) => splits.map((s) => hm(s * 1000)) },
        { ...axis(3.5, 2.5), values: (_u, splits) => splits.map((v) => num(v, 2)) },
      ],
      series: [{}, { stroke: COLORS.mean, width: r / 7, fill: 'rgba(76,201,240,0.12)' }, { stroke: COLORS.max, width: r / 10, dash: [r / 2, r / 3] }],
      hooks: {
        draw: [
          (u) => {
            drawThreshold(u, threshold)
            const drawn = drawAnomalies(u, anomalies.get(metric) ?? [])
            card.dataset.anomalies = String(drawn)
            anomalyKey.hidden = drawn === 0
            anomalyKey.textContent = t('chart.anomalies', { n: num(drawn) })
          },
        ],
      },
    },
    [[], [], []],
    plotBox,
  )
  const resize = new ResizeObserver(() => u.setSize({ width: plotBox.clientWidth, height: plotBox.clientHeight }))
  resize.observe(plotBox)

  const relabel = () => {
    title.textContent = metricLabel(metric)
    card.querySelector('.badge').textContent = t('chart.over')
    plotBox.querySelector('.empty')?.replaceChildren(t('chart.noData'))
    legend.replaceChildren(
      h('span', { class: 'key mean' }, t('chart.mean')),
      h('span', { class: 'key max' }, t('chart.max')),
      ...(threshold === null ? [] : [h('span', { class: 'key threshold' }, t('chart.threshold', { v: num(threshold, 2) }))]),
      anomalyKey,
    )
    u.redraw(false, true)
  }
  relabel()

  // Deltas can come many times a second; draw at most once a frame.
  let pending = null
  let rescaling = false
  const flush = () => {
    const recent = pending.slice(-BUCKETS)
    pending = null
    u.setData([recent.map((b) => Date.parse(b.start) / 1000), recent.map((b) => b.mean), recent.map((b) => b.max)])
    const last = recent.at(-1)
    latest.textContent = last ? num(last.mean, Math.abs(last.mean) >= 100 ? 0 : 2) : '—'
    card.dataset.buckets = String(recent.length)
    card.dataset.over = String(threshold !== null && last?.max != null && last.max > threshold)
    if (recent.length > 0) plotBox.querySelector('.empty')?.remove()
  }
  const chart = {
    metric,
    update(buckets) {
      if (pending === null) requestAnimationFrame(flush)
      pending = buckets
    },
    redraw: () => u.redraw(false),
    advance: () => u.setData(u.data),
    /** Recomputes the scales and redraws, at most once a frame (flags can come in bursts). */
    rescale() {
      if (rescaling) return
      rescaling = true
      requestAnimationFrame(() => {
        rescaling = false
        if (charts.has(chart)) u.setData(u.data)
      })
    },
    relabel,
    destroy() {
      charts.delete(chart)
      resize.disconnect()
      u.destroy()
      card.remove()
    },
  }
  charts.add(chart)
  return chart
}

/** Always the hour up to the current minute's end (in seconds), so a silent sensor shows as a gap, not a stretched line. */
function lastHour() {
  const end = (Math.floor(Date.now() / 60_000) + 1) * 60
  return [end - BUCKETS * 60, end]
}

/** The data range, widened to the values of the markers inside the hour shown (a sensor stuck at 0 is below every mean). */
function withMarkers(min, max, markers = []) {
  if (min === null || max === null) return [min, max]
  const [from, to] = lastHour()
  for (const m of markers) {
    if (typeof m.value !== 'number' || m.ts / 1000 < from || m.ts / 1000 > to) continue
    min = Math.min(min, m.value)
    max = Math.max(max, m.value)
  }
  return [min, max]
}

/** The data range, stretched to include the threshold so its distance stays visible. */
function paddedRange(min, max, threshold) {
  if (min === null || max === null) return threshold === null ? [0, 1] : [0, threshold * 1.2]
  const lo = threshold === null ? min : Math.min(min, threshold)
  const hi = threshold === null ? max : Math.max(max, threshold)
  const pad = (hi - lo) * 0.1 || Math.abs(hi) * 0.1 || 1
  return [lo >= 0 ? Math.max(0, lo - pad) : lo - pad, hi + pad]
}

function drawThreshold(u, threshold) {
  if (threshold === null) return
  const { left, top, width, height } = u.bbox
  const y = Math.round(u.valToPos(threshold, 'y', true))
  if (y < top || y > top + height) return
  const px = uPlot.pxRatio
  const ctx = u.ctx
  ctx.save()
  ctx.strokeStyle = COLORS.threshold
  ctx.lineWidth = 2 * px
  ctx.setLineDash([10 * px, 6 * px])
  ctx.beginPath()
  ctx.moveTo(left, y)
  ctx.lineTo(left + width, y)
  ctx.stroke()
  ctx.restore()
}

/** Draws the markers inside the plotted time range; returns how many it drew. */
function drawAnomalies(u, markers) {
  const [xs, means] = u.data
  if (xs.length === 0) return 0
  const { left, top, width, height } = u.bbox
  const px = uPlot.pxRatio
  const radius = rem() * 0.35 * px
  const ctx = u.ctx
  let drawn = 0
  ctx.save()
  for (const m of markers) {
    const ts = m.ts / 1000
    const nearest = xs.reduce((best, x, i) => (Math.abs(x - ts) < Math.abs(xs[best] - ts) ? i : best), 0)
    const value = m.value ?? means[nearest]
    if (value === null || value === undefined) continue
    const x = u.valToPos(ts, 'x', true)
    const y = u.valToPos(value, 'y', true)
    if (x < left || x > left + width || y < top || y > top + height) continue
    ctx.beginPath()
    ctx.arc(x, y, radius, 0, 2 * Math.PI)
    ctx.fillStyle = COLORS.anomaly
    ctx.fill()
    ctx.lineWidth = 2 * px
    ctx.strokeStyle = '#fff'
    ctx.stroke()
    drawn++
  }
  ctx.restore()
  return drawn
}
