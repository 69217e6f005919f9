import { test } from 'node:test'
import assert from 'node:assert/strict'
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { LOG_BATCH_BYTES, batchedDestination, epochTime } from '../log.js'

const lineOf = (i: number, size: number): string => `{"n":${i},"pad":"${'x'.repeat(size)}"}\n`

test('log: lines are held, then written whole, in order, within the batch time', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'certgate-log-')), 'out.log')
  const fd = openSync(file, 'w')
  const dest = batchedDestination(fd)
  dest.write(lineOf(0, 10))
  assert.equal(readFileSync(file, 'utf8'), '', 'one short line is held, not written at once')
  const deadline = Date.now() + 5000
  while (readFileSync(file, 'utf8') === '' && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
  assert.equal(readFileSync(file, 'utf8'), lineOf(0, 10), 'written by the batch timer')
  // Lines larger than a tenth of a batch: every batch boundary falls between whole lines.
  const lines = Array.from({ length: 200 }, (_, i) => lineOf(i + 1, 500 + (i % 7) * 100))
  for (const l of lines) dest.write(l)
  assert.ok(readFileSync(file, 'utf8').length > LOG_BATCH_BYTES, 'full batches are written without waiting')
  dest.flush()
  assert.equal(readFileSync(file, 'utf8'), lineOf(0, 10) + lines.join(''))
  closeSync(fd)
})

test('log: what is gathered is written when the process exits', () => {
  const script = `import { createLog } from ${JSON.stringify(new URL('../log.js', import.meta.url).href)}
const log = createLog('info', { service: 'certgate' })
for (let i = 0; i < 3; i++) log.info({ event: 'line', i }, 'gathered')
process.exit(0)`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  const got = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { i: number })
  assert.deepEqual(got.map((l) => l.i), [0, 1, 2])
})

test('log: the time field is the text pino writes by default', () => {
  const now = Date.now()
  for (const t of [now, 1_000_000_000_000, 1_765_000_000_000, 1_765_000_000_001, 1_765_000_999_999, 1_765_001_000_000, 9_999_999_999_999]) {
    assert.equal(epochTime(t), `,"time":${t}`)
  }
  for (let t = now; t < now + 2_000_000; t += 999) assert.equal(epochTime(t), `,"time":${t}`)
})
