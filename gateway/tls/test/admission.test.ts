// What this proves: admission control caps handshakes in progress and rate-limits new handshakes
// per source address with a token bucket (burst twice the rate, refilled over time), without
// affecting other addresses, and forgets the least recently seen addresses past its bound.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createAdmission } from '../admission.js'

test('the handshake cap refuses while full and admits again once one finishes', () => {
  const a = createAdmission({ maxHandshakes: 2, ratePerAddress: 0 })
  assert.equal(a.admit('1.1.1.1'), undefined)
  assert.equal(a.admit('1.1.1.2'), undefined)
  assert.equal(a.admit('1.1.1.3'), 'over_capacity')
  a.finished()
  assert.equal(a.inProgress, 1)
  assert.equal(a.admit('1.1.1.3'), undefined)
})

test('the per-address rate allows a burst of twice the rate, then refills with time', () => {
  let t = 0
  const a = createAdmission({ maxHandshakes: 0, ratePerAddress: 5, now: () => t })
  const burst = Array.from({ length: 12 }, () => a.admit('10.0.0.1'))
  assert.equal(burst.filter((r) => r === undefined).length, 10)
  assert.equal(burst.at(-1), 'rate_limited')
  assert.equal(a.admit('10.0.0.2'), undefined, 'other addresses are not affected')
  t += 1000 // one second refills 5 tokens
  assert.equal(Array.from({ length: 6 }, () => a.admit('10.0.0.1')).filter((r) => r === undefined).length, 5)
})

test('at most maxAddresses are tracked; the least recently seen is forgotten first', () => {
  const t = 0
  const a = createAdmission({ maxHandshakes: 0, ratePerAddress: 1, maxAddresses: 2, now: () => t })
  assert.equal(a.admit('a'), undefined)
  assert.equal(a.admit('a'), undefined)
  assert.equal(a.admit('a'), 'rate_limited')
  a.admit('b')
  a.admit('c') // evicts 'a'
  assert.equal(a.admit('a'), undefined, 'a was forgotten, so it starts with a full bucket')
})
