// A self-contained SVG picture of one run (no scripts, fonts or CDNs): on the left the latency
// distribution of each series as a CDF on a log time axis, on the right throughput over time.
// Good enough to eyeball a run; the JSON next to it holds the numbers.

export interface ChartSeries {
  readonly name: string
  /** Latencies in ms (unsorted is fine). */
  readonly latenciesMs: readonly number[]
  /** Completions per bin, and the bin width in ms. */
  readonly perBin: readonly number[]
  readonly binMs: number
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf']
const W = 1100
const H = 420
const PAD = { left: 60, right: 20, top: 56, bottom: 50 }
const PANEL_W = (W - 3 * PAD.left) / 2

const esc = (s: string): string => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] ?? c)
const f = (n: number): string => n.toFixed(1)

function axes (x0: number, title: string, xLabel: string, yLabel: string): string {
  const y1 = H - PAD.bottom
  return `<rect x="${x0}" y="${PAD.top}" width="${PANEL_W}" height="${y1 - PAD.top}" fill="none" stroke="#999"/>` +
    `<text x="${x0 + PANEL_W / 2}" y="${PAD.top - 12}" text-anchor="middle" font-size="14">${esc(title)}</text>` +
    `<text x="${x0 + PANEL_W / 2}" y="${H - 12}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>` +
    `<text x="${x0 - 42}" y="${(PAD.top + y1) / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 ${x0 - 42} ${(PAD.top + y1) / 2})">${esc(yLabel)}</text>`
}

function cdfPanel (series: readonly ChartSeries[], x0: number): string {
  const all = series.flatMap((s) => s.latenciesMs).filter((v) => v > 0)
  if (all.length === 0) return axes(x0, 'latency CDF (no data)', 'ms', 'fraction')
  // reduce, not spread: a run can hold more latencies than the call stack has room for arguments.
  const lo = Math.log10(Math.max(0.01, all.reduce((a, b) => Math.min(a, b), Infinity)))
  const hi = Math.log10(all.reduce((a, b) => Math.max(a, b), 0)) + 0.05
  const y1 = H - PAD.bottom
  const x = (ms: number): number => x0 + ((Math.log10(Math.max(ms, 0.01)) - lo) / Math.max(hi - lo, 0.1)) * PANEL_W
  const y = (frac: number): number => y1 - frac * (y1 - PAD.top)
  let out = axes(x0, 'latency distribution (CDF)', 'ms (log scale)', 'fraction')
  for (let d = Math.floor(lo); d <= Math.floor(hi); d++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** d
      if (Math.log10(v) < lo || Math.log10(v) > hi) continue
      out += `<line x1="${f(x(v))}" y1="${PAD.top}" x2="${f(x(v))}" y2="${y1}" stroke="#eee"/><text x="${f(x(v))}" y="${y1 + 14}" text-anchor="middle" font-size="10">${v < 1 ? v.toFixed(2) : v}</text>`
    }
  }
  for (const frac of [0, 0.5, 0.9, 0.99]) out += `<line x1="${x0}" y1="${f(y(frac))}" x2="${x0 + PANEL_W}" y2="${f(y(frac))}" stroke="#eee"/><text x="${x0 - 4}" y="${f(y(frac) + 3)}" text-anchor="end" font-size="10">${frac}</text>`
  series.forEach((s, i) => {
    const sorted = [...s.latenciesMs].sort((a, b) => a - b)
    if (sorted.length === 0) return
    // At most ~400 points per line keeps the file small.
    const step = Math.max(1, Math.floor(sorted.length / 400))
    const pts: string[] = []
    for (let k = 0; k < sorted.length; k += step) pts.push(`${f(x(sorted[k] as number))},${f(y((k + 1) / sorted.length))}`)
    pts.push(`${f(x(sorted[sorted.length - 1] as number))},${f(y(1))}`)
    out += `<polyline fill="none" stroke="${COLOURS[i % COLOURS.length] ?? '#000'}" stroke-width="1.5" points="${pts.join(' ')}"/>`
  })
  return out
}

function throughputPanel (series: readonly ChartSeries[], x0: number): string {
  const rates = series.map((s) => s.perBin.map((n) => (n * 1000) / s.binMs))
  const maxT = Math.max(1, ...series.map((s) => s.perBin.length * s.binMs / 1000))
  const maxR = rates.flat().reduce((a, b) => Math.max(a, b), 1)
  const y1 = H - PAD.bottom
  const x = (t: number): number => x0 + (t / maxT) * PANEL_W
  const y = (r: number): number => y1 - (r / (maxR * 1.05)) * (y1 - PAD.top)
  let out = axes(x0, 'throughput over time', 's since the start of the measured phase', 'completed per second')
  for (let k = 0; k <= 4; k++) {
    const r = (maxR * 1.05 * k) / 4
    out += `<line x1="${x0}" y1="${f(y(r))}" x2="${x0 + PANEL_W}" y2="${f(y(r))}" stroke="#eee"/><text x="${x0 - 4}" y="${f(y(r) + 3)}" text-anchor="end" font-size="10">${r.toFixed(0)}</text>`
    const t = (maxT * k) / 4
    out += `<text x="${f(x(t))}" y="${y1 + 14}" text-anchor="middle" font-size="10">${t.toFixed(1)}</text>`
  }
  series.forEach((s, i) => {
    const pts = (rates[i] ?? []).map((r, k) => `${f(x(((k + 0.5) * s.binMs) / 1000))},${f(y(r))}`)
    if (pts.length > 0) out += `<polyline fill="none" stroke="${COLOURS[i % COLOURS.length] ?? '#000'}" stroke-width="1.5" points="${pts.join(' ')}"/>`
  })
  return out
}

export function renderChart (title: string, series: readonly ChartSeries[]): string {
  const legend = series.map((s, i) => {
    const lx = PAD.left + (i % 4) * 260
    const ly = H + 20 + Math.floor(i / 4) * 18
    return `<rect x="${lx}" y="${ly - 9}" width="14" height="4" fill="${COLOURS[i % COLOURS.length] ?? '#000'}"/><text x="${lx + 20}" y="${ly - 4}" font-size="12">${esc(s.name)}</text>`
  }).join('')
  const height = H + 30 + Math.ceil(series.length / 4) * 18
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="#fff"/><text x="${W / 2}" y="18" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>` +
    cdfPanel(series, PAD.left) + throughputPanel(series, 2 * PAD.left + PANEL_W) + legend + '</svg>\n'
}
