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
// No --test-force-exit: it can drop verdicts (nodejs/node#64833, counts varying between runs), and
// every file's process exits by itself once its tests are done (each was checked alone). A file
// that leaves something open hangs the run instead of passing; the overall deadline keeps a stuck
// run far inside CI's limit.
const DEADLINE_MS = 20 * 60 * 1000
// spec (every Node's default on a terminal) for the verdicts; file-durations.js adds how long each
// file took and the total at the end, to keep the suite's time in view.
const reporters = ['--test-reporter=spec', '--test-reporter-destination=stdout',
  `--test-reporter=${new URL('./file-durations.js', import.meta.url).href}`, '--test-reporter-destination=stdout']
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...reporters, ...files], {
  stdio: 'inherit', env: { ...process.env, PATH: path }, timeout: DEADLINE_MS, killSignal: 'SIGKILL'
})
if (r.error !== undefined) console.error(`run-tests: ${r.error.message} (deadline ${DEADLINE_MS / 60000} min)`)
process.exit(r.status ?? 1)
