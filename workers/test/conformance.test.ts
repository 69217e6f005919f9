// Third-party verdicts for validateChain: every case of x509-limbo's native suite and of NIST PKITS
// (workers/test/fixtures/conformance, unchanged copies with their notices) runs through the
// library export, and the verdict is graded pass / false accept / false reject, or skipped by
// feature (never silently). Every deviation from the suites' expected verdict must be listed,
// with its justification, in conformance-expectations.txt; a listed case that now passes fails
// too, so the list only shrinks. The table by category is printed (docs/validation.md keeps it).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { OUTCOMES, loadCases, runCase, type Graded, type Outcome } from './support/limbo.js'

const SOURCE = new URL('../../../workers/test/', import.meta.url)
const SUITES = ['limbo-native', 'pkits'] as const
/** validateChain takes `crls` (docs/validation.md#revocation-from-supplied-crls): has-crl cases are graded. */
const CRLS_SUPPORTED = true

interface Expectation { readonly outcome: Outcome, readonly why: string }

/** `id | outcome | justification` per line; `#` starts a comment. */
function loadExpectations (): Map<string, Expectation> {
  const out = new Map<string, Expectation>()
  const text = readFileSync(new URL('conformance-expectations.txt', SOURCE), 'utf8')
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const [id, outcome, why] = line.split('|').map((s) => s.trim())
    if (id === undefined || (outcome !== 'false_accept' && outcome !== 'false_reject') || why === undefined || why === '') {
      throw new Error(`conformance-expectations.txt line ${n + 1}: want "id | false_accept|false_reject | justification"`)
    }
    if (out.has(id)) throw new Error(`conformance-expectations.txt line ${n + 1}: ${id} listed twice`)
    out.set(id, { outcome, why })
  }
  return out
}

function table (graded: readonly Graded[]): string {
  const rows = new Map<string, Record<Outcome, number>>()
  const skippedBy = new Map<string, number>()
  const add = (key: string, o: Outcome): void => {
    const row = rows.get(key) ?? { pass: 0, false_accept: 0, false_reject: 0, skipped: 0 }
    row[o]++
    rows.set(key, row)
  }
  for (const g of graded) {
    add(g.category, g.outcome)
    add('TOTAL', g.outcome)
    if (g.outcome === 'skipped') skippedBy.set(g.note, (skippedBy.get(g.note) ?? 0) + 1)
  }
  const lines = [`| category | ${OUTCOMES.join(' | ')} |`, `|---|${OUTCOMES.map(() => '---:').join('|')}|`]
  const keys = [...rows.keys()].filter((k) => k !== 'TOTAL').sort()
  for (const k of [...keys, 'TOTAL']) {
    const r = rows.get(k) as Record<Outcome, number>
    lines.push(`| ${k === 'TOTAL' ? '**total**' : k} | ${OUTCOMES.map((o) => r[o]).join(' | ')} |`)
  }
  lines.push(`skipped by feature: ${[...skippedBy].map(([f, n]) => `${f} ${n}`).join(', ') || 'none'}`)
  return lines.join('\n')
}

const expectations = loadExpectations()
const all: Graded[] = []

for (const suite of SUITES) {
  test(`conformance: ${suite}`, async () => {
    const graded: Graded[] = []
    let slowest = { id: '', ms: 0 }
    for (const c of loadCases(new URL(`fixtures/conformance/${suite}.limbo.json`, SOURCE))) {
      const started = performance.now()
      const { graded: g } = await runCase(c, { crlsSupported: CRLS_SUPPORTED })
      const ms = performance.now() - started
      if (ms > slowest.ms) slowest = { id: c.id, ms }
      graded.push(g)
    }
    all.push(...graded)
    console.log(`\n${suite}\n${table(graded)}\nslowest case: ${slowest.id} ${slowest.ms.toFixed(1)} ms`)

    const unlisted = graded.filter((g) => (g.outcome === 'false_accept' || g.outcome === 'false_reject') && expectations.get(g.id)?.outcome !== g.outcome)
    const stale = graded.filter((g) => expectations.has(g.id) && expectations.get(g.id)?.outcome !== g.outcome)
    assert.deepEqual(unlisted.map((g) => `${g.id} | ${g.outcome} | (${g.note})`), [], 'deviations not listed in conformance-expectations.txt')
    assert.deepEqual(stale.map((g) => `${g.id}: listed as ${expectations.get(g.id)?.outcome ?? ''}, now ${g.outcome} (${g.note})`), [], 'listed cases whose outcome changed: update conformance-expectations.txt')
  })
}

test('conformance: every listed case exists', () => {
  const ids = new Set(all.map((g) => g.id))
  assert.deepEqual([...expectations.keys()].filter((id) => !ids.has(id)), [])
})
