#!/usr/bin/env node
// Runs every compiled test file (dist/**/test/**/*.test.js) with node:test.
// An explicit file list behaves the same on Node 20, 22 and 24 (their --test argument rules differ).
// Before any file runs, provide-services.js makes sure the programs the tests start are here
// (installing Debian packages when root with apt-get), or stops with one message naming them.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { provideServices } from './provide-services.js'

function find (dir, out) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) find(p, out)
    else if (entry.name.endsWith('.test.js') && p.includes('/test/')) out.push(p)
  }
  return out
}

const only = process.argv.slice(2)
const files = find('dist', []).filter((f) => only.length === 0 || only.some((o) => f.includes(o))).sort()
if (files.length === 0) {
  console.error('run-tests: no test files found under dist/ (did the build run?)')
  process.exit(1)
}
const path = provideServices()
// --test-force-exit: a test that failed by timing out cannot leave its file's process hanging on
// the servers it opened; the overall deadline keeps a stuck run far inside CI's limit.
const DEADLINE_MS = 20 * 60 * 1000
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-force-exit', ...files], { stdio: 'inherit', env: { ...process.env, PATH: path }, timeout: DEADLINE_MS, killSignal: 'SIGKILL' })
if (r.error !== undefined) console.error(`run-tests: ${r.error.message} (deadline ${DEADLINE_MS / 60000} min)`)
process.exit(r.status ?? 1)
