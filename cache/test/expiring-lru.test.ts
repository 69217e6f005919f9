// What this proves: the expiring LRU serves what was set until the moment its caller said it
// stops being true, and never at or after it (checked with an injected clock, no waiting).
// A value that is already expired when set is not stored. The least recently used entry goes
// first when maxEntries is reached, with a read counting as a use. clear() empties the cache,
// and takeStats() reports the hits and misses since its last call, then starts again from zero.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createExpiringLru } from '../expiring-lru.js'

interface Box { readonly v: string }
const box = (v: string): Box => ({ v })

function withClock (maxEntries: number): { lru: ReturnType<typeof createExpiringLru<Box>>, clock: { t: number } } {
  const clock = { t: 1_700_000_000_000 }
  return { lru: createExpiringLru<Box>({ maxEntries, now: () => clock.t }), clock }
}

test('get returns what set stored, and undefined for unknown keys', () => {
  const { lru, clock } = withClock(10)
  const a = box('a')
  lru.set('a', a, clock.t + 1000)
  lru.set('b', box('b'), clock.t + 1000)
  assert.equal(lru.get('a'), a, 'the very object stored is returned')
  assert.deepEqual(lru.get('b'), box('b'))
  assert.equal(lru.get('c'), undefined)
  assert.equal(lru.size, 2)
  lru.set('a', box('a2'), clock.t + 1000)
  assert.deepEqual(lru.get('a'), box('a2'), 'set replaces')
  assert.equal(lru.size, 2)
})

test('the least recently used entry is evicted at maxEntries; a get counts as a use', () => {
  const { lru, clock } = withClock(3)
  const until = clock.t + 60_000
  lru.set('a', box('a'), until)
  lru.set('b', box('b'), until)
  lru.set('c', box('c'), until)
  assert.deepEqual(lru.get('a'), box('a'))
  lru.set('d', box('d'), until)
  assert.equal(lru.size, 3)
  assert.equal(lru.get('b'), undefined, 'b was least recently used')
  assert.deepEqual(lru.get('a'), box('a'))
  assert.deepEqual(lru.get('c'), box('c'))
  assert.deepEqual(lru.get('d'), box('d'))
  lru.set('e', box('e'), until)
  assert.equal(lru.get('a'), undefined, 'a became least recently used')
  assert.equal(lru.size, 3)
})

test('an entry is served before its expiresAt and never at or after it', () => {
  const { lru, clock } = withClock(10)
  const expiresAt = clock.t + 100
  lru.set('k', box('v'), expiresAt)
  clock.t = expiresAt - 1
  assert.deepEqual(lru.get('k'), box('v'))
  clock.t = expiresAt
  assert.equal(lru.get('k'), undefined, 'not served at expiresAt')
  assert.equal(lru.size, 0, 'the expired entry is dropped when found')
  clock.t = expiresAt - 50
  assert.equal(lru.get('k'), undefined, 'an expired entry does not come back if the clock goes back')

  lru.set('later', box('x'), clock.t + 10)
  clock.t += 1_000_000
  assert.equal(lru.get('later'), undefined, 'not served long after expiresAt')
})

test('a value already expired when set is not stored', () => {
  const { lru, clock } = withClock(10)
  lru.set('now', box('now'), clock.t)
  lru.set('past', box('past'), clock.t - 1)
  assert.equal(lru.size, 0)
  assert.equal(lru.get('now'), undefined)
  assert.equal(lru.get('past'), undefined)
  // ...and it does not push out a live entry when the cache is full.
  const { lru: small, clock: c2 } = withClock(1)
  small.set('live', box('live'), c2.t + 1000)
  small.set('dead', box('dead'), c2.t)
  assert.deepEqual(small.get('live'), box('live'))
})

test('clear empties the cache', () => {
  const { lru, clock } = withClock(10)
  lru.set('a', box('a'), clock.t + 1000)
  lru.set('b', box('b'), clock.t + 1000)
  lru.clear()
  assert.equal(lru.size, 0)
  assert.equal(lru.get('a'), undefined)
  assert.equal(lru.get('b'), undefined)
  lru.set('a', box('a'), clock.t + 1000)
  assert.deepEqual(lru.get('a'), box('a'), 'usable after clear')
})

test('takeStats counts hits and misses (expired entries are misses) and resets', () => {
  const { lru, clock } = withClock(10)
  assert.deepEqual(lru.takeStats(), { hits: 0, misses: 0 })
  lru.set('a', box('a'), clock.t + 100)
  lru.get('a')
  lru.get('a')
  lru.get('a')
  lru.get('missing')
  clock.t += 100
  lru.get('a')
  assert.deepEqual(lru.takeStats(), { hits: 3, misses: 2 })
  assert.deepEqual(lru.takeStats(), { hits: 0, misses: 0 }, 'reset by the previous call')
  lru.set('b', box('b'), clock.t + 100)
  lru.get('b')
  assert.deepEqual(lru.takeStats(), { hits: 1, misses: 0 })
})

test('without an injected clock, Date.now is used', () => {
  const lru = createExpiringLru<Box>({ maxEntries: 2 })
  lru.set('past', box('p'), Date.now() - 1)
  lru.set('future', box('f'), Date.now() + 60_000)
  assert.equal(lru.get('past'), undefined)
  assert.deepEqual(lru.get('future'), box('f'))
})
