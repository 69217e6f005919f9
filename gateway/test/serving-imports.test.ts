// What this proves: a gateway that serves devices loads only the libraries its connections use.
// Every module a process keeps loaded is heap every major GC marks, connection after connection:
// undici (http mode), aedes (the embedded broker), @peculiar/x509 (issuing the dev certificate),
// node-forge (PKCS#12 in the CLI) and pg (the PostgreSQL registry) are imported where they are
// used, so a tcp or mqtt gateway on SQLite never loads them (heap after start 19.4 → 12.9 MiB on
// Node 22; see docs/benchmarks-performance.md). A static import of one of them anywhere in the gateway's
// module graph fails here.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const LOADED_BY_EVERY_GATEWAY = ['better-sqlite3', 'lru-cache', 'mqtt-packet', 'pino', 'piscina', 'prom-client']

/** Bare package names reached from `entry` through static imports and re-exports (not `import()`, not `import type`). */
function staticPackages (entry: string): Map<string, string> {
  const seen = new Set<string>()
  const packages = new Map<string, string>()
  const visit = (file: string): void => {
    if (seen.has(file)) return
    seen.add(file)
    for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)\s[^;]*?\sfrom\s+'([^']+)'|^import\s+'([^']+)'/gm)) {
      const spec = (m[1] ?? m[2]) as string
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec))
      else if (!spec.startsWith('node:') && !packages.has(spec)) packages.set(spec, file)
    }
  }
  visit(entry)
  return packages
}

test('the gateway statically imports only the libraries every gateway uses', () => {
  const gateway = fileURLToPath(new URL('../gateway.js', import.meta.url))
  const found = staticPackages(gateway)
  const extra = [...found].filter(([name]) => !LOADED_BY_EVERY_GATEWAY.includes(name)).map(([name, file]) => `${name} (imported by ${file})`)
  assert.deepEqual(extra, [], 'import these where they are used, with import()')
  // The walk itself works: it finds what every gateway does load.
  assert.deepEqual([...found.keys()].sort(), [...LOADED_BY_EVERY_GATEWAY].sort())
})

test('the walk sees a static import of a library loaded only on demand', () => {
  // http-forwarder.ts is what imports undici; the gateway reaches it only through import().
  const forwarder = fileURLToPath(new URL('../upstream/http-forwarder.js', import.meta.url))
  assert.ok(staticPackages(forwarder).has('undici'))
})
