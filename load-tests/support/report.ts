// What every scenario shares: command-line options with --help, the JSON + SVG files a run
// writes (load-tests/results/ unless --out), and reading certgate's Prometheus histograms.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { renderChart, type ChartSeries } from './chart.js'

export type OptionSpec = Record<string, { readonly default: string, readonly help: string }>

/** Parses --name value options (all strings, with defaults); prints usage and exits on --help. */
export function options<T extends OptionSpec> (usage: string, spec: T): { [K in keyof T | 'out']: string } {
  const { values } = parseArgs({
    options: {
      help: { type: 'boolean', default: false },
      out: { type: 'string', default: '' },
      ...Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, { type: 'string' as const, default: v.default }]))
    }
  })
  if (values.help) {
    console.log(usage.trim() + '\n\noptions:')
    for (const [k, v] of Object.entries({ ...spec, out: { default: 'load-tests/results', help: 'directory for the JSON and SVG of this run' } })) console.log(`  --${k.padEnd(14)} ${v.help} (default ${v.default})`)
    process.exit(0)
  }
  return values as unknown as { [K in keyof T | 'out']: string }
}

/** A positive number option, or a clear exit. */
export function num (value: string, name: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0) { console.error(`--${name} must be a non-negative number, got "${value}"`); process.exit(2) }
  return n
}

/** Writes <scenario>-node<version>-<time>.json and .svg; returns the JSON path. */
export function writeRun (outOption: string, scenario: string, data: object, chartTitle: string, series: readonly ChartSeries[]): string {
  const dir = outOption === '' ? fileURLToPath(new URL('../../../load-tests/results/', import.meta.url)) : resolve(outOption)
  mkdirSync(dir, { recursive: true })
  const base = join(dir, `${scenario}-node${process.versions.node}-${new Date().toISOString().replace(/[:.]/g, '-')}`)
  writeFileSync(`${base}.json`, JSON.stringify({ scenario, node: process.version, openssl: process.versions.openssl, at: new Date().toISOString(), ...data }, null, 2) + '\n')
  writeFileSync(`${base}.svg`, renderChart(chartTitle, series))
  console.log(`\nwrote ${base}.json and .svg`)
  return `${base}.json`
}

/** Cumulative bucket counts of one Prometheus histogram series: le (seconds) → count. */
export function histogramBuckets (text: string, metric: string, labels: Record<string, string>): Map<number, number> {
  const out = new Map<number, number>()
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}_bucket{`)) continue
    const labelText = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'))
    const ls = new Map([...labelText.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] ?? '', m[2] ?? '']))
    if (!Object.entries(labels).every(([k, v]) => ls.get(k) === v)) continue
    const le = ls.get('le') === '+Inf' ? Infinity : Number(ls.get('le'))
    out.set(le, Number(line.slice(line.lastIndexOf(' ') + 1)))
  }
  return out
}

/**
 * The p-th percentile (seconds) of the observations between two scrapes of a cumulative
 * histogram, interpolated linearly inside its bucket, plus that bucket's upper bound (the
 * honest statement: "p99 ≤ bound").
 */
export function histogramPercentile (before: Map<number, number>, after: Map<number, number>, p: number): { count: number, value: number, bucketUpper: number } {
  const les = [...after.keys()].sort((a, b) => a - b)
  const delta = les.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0))
  const count = delta[delta.length - 1] ?? 0
  if (count === 0) return { count, value: NaN, bucketUpper: NaN }
  const rank = (p / 100) * count
  let prevLe = 0
  let prevCount = 0
  for (let i = 0; i < les.length; i++) {
    const le = les[i] as number
    const c = delta[i] as number
    if (c >= rank) {
      const value = le === Infinity ? prevLe : prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(c - prevCount, 1)
      return { count, value, bucketUpper: le }
    }
    prevLe = le
    prevCount = c
  }
  return { count, value: NaN, bucketUpper: NaN }
}

/** A histogram's _sum and _count (no labels), or undefined when absent. */
export function sumCount (text: string, metric: string): { sum: number, count: number } | undefined {
  const value = (suffix: string): number | undefined => {
    const line = text.split('\n').find((l) => l.startsWith(`${metric}_${suffix} `))
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  const sum = value('sum')
  const count = value('count')
  return sum === undefined || count === undefined ? undefined : { sum, count }
}

export async function scrape (adminPort: number, path = '/metrics', timeoutMs = 5000): Promise<{ status: number, text: string, ms: number }> {
  const t0 = performance.now()
  const res = await fetch(`http://127.0.0.1:${adminPort}${path}`, { signal: AbortSignal.timeout(timeoutMs) })
  const text = await res.text()
  return { status: res.status, text, ms: performance.now() - t0 }
}

export function fmt (n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-'
}
