// What this proves: the reference pages say exactly what the code does. docs/reasons.md lists every
// refusal, close and handshake-failure reason and every HTTP outcome, and nothing else;
// docs/configuration.md lists every environment variable gateway/config.ts reads (found by
// running it against an environment that records each read), every listeners-file key and every
// variable the CLI reads, and nothing it does not read; docs/admin-api.md lists every admin route:
// each documented route answers on a real gateway (no 404 not_found, no 405), every other method
// on a documented path is refused, and every path word in the admin sources' route tables is in a
// documented route. A reason, variable or route added, renamed or removed without the page
// following fails here (and the other way round).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CLOSE_REASONS, HANDSHAKE_FAILURES, HTTP_OUTCOMES, REFUSAL_REASONS } from '../reasons.js'
import { configFromEnv } from '../config.js'
import { startHarness } from './support/harness.js'

const ROOT = new URL('../../../', import.meta.url)
const read = (path: string): string => readFileSync(new URL(path, ROOT), 'utf8')

/** The text under a `## heading` (or `### heading`), up to the next heading of the same or a higher level. */
function section (page: string, heading: string): string {
  const level = /^#+/.exec(heading)?.[0] ?? '##'
  const start = page.indexOf(`\n${heading}\n`)
  assert.ok(start >= 0, `no "${heading}" section`)
  const rest = page.slice(start + heading.length + 2)
  const end = rest.search(new RegExp(`^#{1,${level.length}} `, 'm'))
  return end < 0 ? rest : rest.slice(0, end)
}

/** Every backticked name in the first cell of each table row of a section. */
function firstCells (text: string, name: RegExp): string[] {
  const names: string[] = []
  for (const row of text.split('\n').filter((l) => l.startsWith('| `'))) {
    const cell = row.split('|')[1] ?? ''
    for (const m of cell.matchAll(/`([^`]+)`/g)) if (name.test(m[1] as string)) names.push(m[1] as string)
  }
  return names
}

const sorted = (xs: Iterable<string>): string[] => [...new Set(xs)].sort()

test('docs/reasons.md lists every refusal, close and handshake-failure reason and HTTP outcome, and nothing else', () => {
  const page = read('docs/reasons.md')
  const rows = (heading: string): string[] => sorted(firstCells(section(page, heading), /^[a-z0-9_]+$/))
  assert.deepEqual(rows('## Refusal reasons'), sorted(REFUSAL_REASONS), 'refusal reasons (gateway/reasons.ts, workers/types.ts)')
  assert.deepEqual(rows('## Close reasons'), sorted(CLOSE_REASONS), 'close reasons (gateway/reasons.ts CLOSE_REASONS)')
  assert.deepEqual(rows('## Handshake failures and connections closed before TLS'), sorted(HANDSHAKE_FAILURES), 'handshake failures (gateway/reasons.ts HANDSHAKE_FAILURES)')
  assert.deepEqual(rows('## HTTP outcomes'), sorted(HTTP_OUTCOMES), 'HTTP outcomes (gateway/reasons.ts HTTP_OUTCOMES)')
})

/** The names configFromEnv looks up, found by handing it an environment that records every read. */
function variablesRead (env: Record<string, string>): Set<string> {
  const seen = new Set<string>()
  const recording = new Proxy(env, {
    get: (target, key) => { if (typeof key === 'string') seen.add(key); return typeof key === 'string' ? target[key] : undefined },
    has: (target, key) => { if (typeof key === 'string') seen.add(key); return key in target }
  })
  configFromEnv(recording)
  return seen
}

test('docs/configuration.md lists exactly the variables gateway/config.ts reads, and every listeners-file key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-drift-'))
  try {
    const file = join(dir, 'listeners.json')
    writeFileSync(file, JSON.stringify({ listeners: [{ name: 'a', listen: '127.0.0.1:0', protocol: 'tcp' }] }))
    // Without a file (the single listener's variables) and with one (the file is read instead).
    const read1 = variablesRead({})
    const read2 = variablesRead({ CERTGATE_CONFIG: file })
    const readByConfig = sorted([...read1, ...read2])
    const page = read('docs/configuration.md')
    const documented = sorted(firstCells(section(page, '## Gateway variables'), /^CERTGATE_[A-Z0-9_]+$/))
    assert.deepEqual(documented, readByConfig, 'the "Gateway variables" table against what configFromEnv reads')

    // The listeners file's keys, as config.ts declares them.
    const source = read('gateway/config.ts')
    const keysDecl = /const LISTENER_KEYS = \[([^\]]*)\]/.exec(source)
    assert.ok(keysDecl !== null, 'LISTENER_KEYS in gateway/config.ts')
    const keys = sorted([...(keysDecl[1] ?? '').matchAll(/'([A-Za-z]+)'/g)].map((m) => m[1] as string))
    assert.deepEqual(sorted(firstCells(section(page, '## Several listeners in one process'), /^[A-Za-z]+$/)), keys, 'the listeners-file key table against LISTENER_KEYS')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('docs/configuration.md lists exactly the variables the CLI reads', () => {
  const code = read('gateway/cli.ts').replace(/^\s*\/\/.*$/gm, '')
  const readByCli = sorted([...code.matchAll(/process\.env\.(CERTGATE_[A-Z0-9_]+)/g)].map((m) => m[1] as string))
  assert.ok(readByCli.length > 0)
  const documented = sorted(firstCells(section(read('docs/configuration.md'), '## CLI variables'), /^CERTGATE_[A-Z0-9_]+$/))
  assert.deepEqual(documented, readByCli)
})

interface Route { readonly method: string, readonly path: string, readonly token: boolean }

function documentedRoutes (): Route[] {
  const text = section(read('docs/admin-api.md'), '## Routes')
  const routes: Route[] = []
  for (const row of text.split('\n').filter((l) => l.startsWith('| `'))) {
    const cells = row.split('|').map((c) => c.trim())
    const m = /^`([A-Z]+) (\/[^`\s]*)`$/.exec(cells[1] ?? '')
    assert.ok(m !== null, `a route cell is "METHOD /path": ${row}`)
    routes.push({ method: m[1] as string, path: m[2] as string, token: cells[2] !== 'no' })
  }
  return routes
}

/** Path words in the admin sources: string literals that start with "/" and regex literals matching paths. */
function pathWordsInAdminSources (): string[] {
  const dir = new URL('gateway/admin/', ROOT)
  const words: string[] = []
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
    const code = readFileSync(new URL(f, dir), 'utf8').replace(/^\s*\/\/.*$/gm, '')
    for (const m of code.matchAll(/['"`](\/[A-Za-z][^'"`\s]*)/g)) words.push(...(m[1] as string).split('/'))
    for (const m of code.matchAll(/\/\^\\\/([^\n]*?)\/[gimsuy]*[.),;\s]/g)) words.push(...((m[1] as string).match(/[A-Za-z][A-Za-z:]*/g) ?? []))
  }
  // Parameters and interpolations are not words of a path.
  return sorted(words.filter((w) => /^[A-Za-z][A-Za-z:]*$/.test(w)))
}

test('docs/admin-api.md lists every admin route, and every route it lists is served', async (t) => {
  const routes = documentedRoutes()
  const documentedWords = new Set(routes.flatMap((r) => r.path.split('/')))
  const undocumented = pathWordsInAdminSources().filter((w) => !documentedWords.has(w))
  assert.deepEqual(undocumented, [], 'path words in gateway/admin/*.ts that no documented route has')

  const h = await startHarness()
  t.after(async () => { await h.close() })
  const base = `http://${h.gw.admin.host}:${h.gw.admin.port}`
  const call = async (method: string, template: string, token: boolean): Promise<{ status: number, code: string | undefined }> => {
    const path = template.replace('{name}', 'drift-ca').replace('{deviceId}', 'drift-device')
    const res = await fetch(base + path, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${h.gw.adminToken}` } : {}), ...(method === 'GET' || method === 'DELETE' ? {} : { 'content-type': 'application/json' }) },
      ...(method === 'GET' || method === 'DELETE' ? {} : { body: '{}' })
    })
    const text = await res.text()
    let code: string | undefined
    try { code = (JSON.parse(text) as { error?: { code?: string } }).error?.code } catch { code = undefined }
    return { status: res.status, code }
  }

  for (const r of routes) {
    const got = await call(r.method, r.path, r.token)
    assert.ok(!(got.status === 404 && got.code === 'not_found') && got.status !== 405, `${r.method} ${r.path} is documented but answered ${got.status} ${got.code ?? ''}`)
    if (!r.token) assert.notEqual(got.status, 401, `${r.method} ${r.path} is documented as needing no token`)
    if (r.token) assert.equal((await call(r.method, r.path, false)).status, 401, `${r.method} ${r.path} without a token`)
  }
  // Every method a documented path answers is documented.
  for (const path of new Set(routes.map((r) => r.path))) {
    for (const method of ['GET', 'PUT', 'POST', 'DELETE', 'PATCH']) {
      if (routes.some((r) => r.path === path && r.method === method)) continue
      const got = await call(method, path, true)
      assert.ok(got.status === 405 || (got.status === 404 && got.code === 'not_found'), `${method} ${path} answered ${got.status} ${got.code ?? ''} but is not in docs/admin-api.md`)
    }
  }
})
