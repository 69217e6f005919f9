// What this proves: after a failed connect the upstream is down and devices are refused at once
// with a sentence saying since when and when it is probed next; one probe at a time is allowed once
// the backoff has passed; failures double the backoff up to its ceiling; a success brings it up.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createUpstreamHealth } from '../upstream-health.js'

test('down, probed one at a time with a doubling backoff, up again on success', () => {
  let t = 1_000_000
  const changes: Array<[boolean, string]> = []
  let attemptsFailed = 0
  const h = createUpstreamHealth({ target: 'broker:1883', firstBackoffMs: 100, maxBackoffMs: 400, probeWindowMs: 1000, now: () => t, random: () => 1, onChange: (up, d) => changes.push([up, d]), onAttemptFailed: () => { attemptsFailed++ } })
  assert.equal(h.admit(), undefined)
  assert.equal(h.admit(), undefined, 'while up, everyone tries')
  h.failed('ECONNREFUSED')
  assert.equal(h.isUp(), false)
  const refusal = h.admit()
  assert.match(refusal ?? '', /upstream broker:1883 is unreachable \(ECONNREFUSED\) since .*; certgate probes it again within 1 s/)
  t += 99
  assert.notEqual(h.admit(), undefined)
  t += 1
  assert.equal(h.admit(), undefined, 'the probe')
  assert.notEqual(h.admit(), undefined, 'only one probe at a time')
  h.failed('ECONNREFUSED')
  t += 199
  assert.notEqual(h.admit(), undefined, 'backoff doubled to 200 ms')
  t += 1
  assert.equal(h.admit(), undefined)
  h.failed('timeout')
  t += 400
  assert.equal(h.admit(), undefined)
  h.failed('timeout')
  t += 400
  assert.equal(h.admit(), undefined, 'capped at 400 ms')
  h.succeeded()
  assert.equal(h.isUp(), true)
  assert.equal(h.admit(), undefined)
  assert.equal(h.admit(), undefined)
  assert.deepEqual(changes.map(([up]) => up), [false, true], 'told once when it went down and once when it came back')
  assert.match(changes[0]?.[1] ?? '', /ECONNREFUSED/)
  assert.equal(attemptsFailed, 4)
})

test('jitter spreads the probe between half and all of the backoff', () => {
  let t = 0
  const h = createUpstreamHealth({ target: 'b', firstBackoffMs: 1000, now: () => t, random: () => 0 })
  h.failed('x')
  t = 499
  assert.notEqual(h.admit(), undefined)
  t = 500
  assert.equal(h.admit(), undefined)
})

test('a probe whose outcome is never reported does not keep the upstream down for good', () => {
  let t = 0
  const h = createUpstreamHealth({ target: 'b', firstBackoffMs: 100, probeWindowMs: 2000, now: () => t, random: () => 1 })
  h.failed('ECONNREFUSED')
  t = 100
  assert.equal(h.admit(), undefined, 'the probe')
  // ...whose caller never says how it went (a request the device abandoned).
  t = 2099
  assert.match(h.admit() ?? '', /probes it again within 1 s/)
  t = 2100
  assert.equal(h.admit(), undefined, 'another probe once the window has passed')
  h.succeeded()
  assert.equal(h.isUp(), true)
})
