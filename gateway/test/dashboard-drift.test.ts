// What this proves: the Grafana dashboard in grafana/dashboards/certgate.json queries only
// metrics certgate really exports, so no panel silently shows "No data" because a metric was
// renamed, removed or mistyped. The exported names come from the code — the registry that
// gateway/metrics.ts builds, histograms expanded to their _bucket/_sum/_count series, checked
// against the text exposition Prometheus scrapes — never from a hand-kept list. It also proves
// the other direction (every certgate metric outside the process defaults has a panel), and that
// the dashboard is well-formed: every panel but the row headers has at least one query, every
// query names its data source, and panel ids are unique.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createMetrics } from '../metrics.js'

interface Target { readonly refId?: string, readonly expr?: string, readonly datasource?: { readonly type?: string, readonly uid?: string } }
interface Panel { readonly id?: number, readonly type: string, readonly title?: string, readonly targets?: readonly Target[], readonly panels?: readonly Panel[] }
interface Variable { readonly name: string, readonly type: string, readonly query?: string | { readonly query?: string } }
interface Dashboard {
  readonly uid: string
  readonly title: string
  readonly schemaVersion: number
  readonly panels: readonly Panel[]
  readonly templating: { readonly list: readonly Variable[] }
}

const dashboard = JSON.parse(readFileSync(new URL('../../../grafana/dashboards/certgate.json', import.meta.url), 'utf8')) as Dashboard

/** Every panel, including those folded into collapsed rows. */
const allPanels = (panels: readonly Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])])
const panels = allPanels(dashboard.panels)
const queryPanels = panels.filter((p) => p.type !== 'row')
const label = (p: Panel): string => `panel ${String(p.id)} "${p.title ?? ''}"`

/** Metric names in a PromQL expression: PromQL functions, keywords and label names never start with certgate_. */
const metricNames = (expr: string): string[] => [...expr.matchAll(/(?<![A-Za-z0-9_:])certgate_[A-Za-z0-9_:]*/g)].map((m) => m[0])

/** Every series name certgate exposes, derived from the registry gateway/metrics.ts builds. */
async function exportedNames (): Promise<Set<string>> {
  const metrics = createMetrics(['device'], async () => ({ cas: [], devices: { enabled: 0, disabled: 0 } }))
  const names = new Set<string>()
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    // prom-client's typings declare `type` as a numeric enum; at run time it is the exposition type string.
    const type = String(m.type)
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s)
    else if (type === 'summary') for (const s of ['', '_sum', '_count']) names.add(m.name + s)
    else names.add(m.name) // counters keep the name they were declared with, _total included
  }
  // Cross-check against what a scrape returns: every sample line's name must be in the set.
  const text = await metrics.metricsText()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const name = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line)?.[0] ?? line
    assert.ok(names.has(name), `the exposition has ${name}, which the JSON view did not predict`)
  }
  return names
}

const variableQuery = (v: Variable): string => typeof v.query === 'string' ? v.query : v.query?.query ?? ''

test('the dashboard is the one provisioning and the README refer to', () => {
  assert.equal(dashboard.uid, 'certgate')
  assert.equal(dashboard.title, 'certgate')
  assert.ok(dashboard.schemaVersion >= 38, `schemaVersion ${dashboard.schemaVersion}`)
  const ds = dashboard.templating.list.find((v) => v.name === 'datasource')
  assert.equal(ds?.type, 'datasource')
  assert.equal(variableQuery(ds), 'prometheus')
  const listener = dashboard.templating.list.find((v) => v.name === 'listener')
  assert.equal(listener?.type, 'query')
  assert.equal(variableQuery(listener), 'label_values(certgate_connections_accepted_total, listener)')
})

test('every metric a panel or variable queries is one certgate exports', async () => {
  const exported = await exportedNames()
  assert.ok(exported.has('certgate_auth_total') && exported.has('certgate_auth_duration_seconds_bucket'), 'sanity: the derived set has counters and histogram series')
  const unknown: string[] = []
  let checked = 0
  for (const p of queryPanels) {
    for (const t of p.targets ?? []) {
      for (const name of metricNames(t.expr ?? '')) {
        checked++
        if (!exported.has(name)) unknown.push(`${label(p)} target ${t.refId ?? '?'}: ${name}`)
      }
    }
  }
  for (const v of dashboard.templating.list) {
    for (const name of metricNames(variableQuery(v))) {
      checked++
      if (!exported.has(name)) unknown.push(`variable $${v.name}: ${name}`)
    }
  }
  assert.ok(checked > 20, `only ${checked} metric references found; is the regex still matching?`)
  assert.deepEqual(unknown, [], `the dashboard queries metrics certgate does not export:\n${unknown.join('\n')}`)
})

test('every certgate metric (process defaults aside) appears on some panel', async () => {
  const used = new Set(queryPanels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricNames(t.expr ?? ''))))
  const base = (n: string): string => n.replace(/_(bucket|sum|count)$/, '')
  const usedBases = new Set([...used].map(base))
  const missing = [...await exportedNames()]
    .filter((n) => !n.startsWith('certgate_process_'))
    .filter((n) => !used.has(n) && !usedBases.has(base(n)))
  assert.deepEqual([...new Set(missing.map(base))], [], 'metrics without a panel')
})

test('every panel has a query, every query names its data source, panel ids are unique', () => {
  assert.ok(queryPanels.length >= 15, `only ${queryPanels.length} panels`)
  for (const p of panels) {
    if (p.type === 'row') { assert.equal(p.targets?.length ?? 0, 0, `${label(p)} is a row and must not carry queries`); continue }
    assert.ok((p.targets?.length ?? 0) > 0, `${label(p)} has no target`)
    const refIds = new Set<string>()
    for (const t of p.targets ?? []) {
      assert.ok(typeof t.expr === 'string' && t.expr.trim() !== '', `${label(p)} target ${t.refId ?? '?'} has no expr`)
      assert.equal(t.datasource?.type, 'prometheus', `${label(p)} target ${t.refId ?? '?'} has no prometheus datasource reference`)
      assert.ok(typeof t.datasource.uid === 'string' && t.datasource.uid !== '', `${label(p)} target ${t.refId ?? '?'} has no datasource uid`)
      assert.ok(t.refId !== undefined && !refIds.has(t.refId), `${label(p)} has a missing or repeated refId ${t.refId ?? ''}`)
      refIds.add(t.refId)
    }
  }
  const ids = panels.map((p) => p.id)
  assert.ok(ids.every((id) => typeof id === 'number'), 'every panel has a numeric id')
  assert.equal(new Set(ids).size, ids.length, `duplicate panel ids: ${ids.filter((id, i) => ids.indexOf(id) !== i).join(', ')}`)
})
