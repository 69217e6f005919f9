import { test } from 'node:test'
import assert from 'node:assert/strict'
import { COST_ITEMS, createConnectionCosts } from '../connection-costs.js'

test('connection costs: every N connections, one line of µs per step, averaged over the connections that reached it', () => {
  const lines: Array<Record<string, unknown>> = []
  let clock = 0 // the CPU clock, moved by hand: the test measures the bookkeeping, not the machine
  const costs = createConnectionCosts(2, { info: (obj: object) => { lines.push(obj as Record<string, unknown>) } }, () => clock)
  for (let i = 0; i < 2; i++) {
    const w = costs.start()
    clock += 300
    w.lap('validate')
    clock += 5000 // waiting for the registry: not certgate's CPU
    w.resume()
    clock += 40
    w.lap('authorize')
    if (i === 0) { clock += 100; w.lap('open_upstream') } // one of the two reached it
    w.done()
  }
  assert.equal(lines.length, 1)
  const line = lines[0] as { event: string, connections: number, microseconds: Record<string, number>, total: number }
  assert.equal(line.event, 'connection_costs')
  assert.equal(line.connections, 2)
  assert.deepEqual(Object.keys(line.microseconds), [...COST_ITEMS])
  assert.deepEqual(line.microseconds, { read_chain: 0, validate: 300, authorize: 40, track: 0, open_upstream: 100, record: 0, untrack: 0 })
  assert.equal(line.total, 440)
})

test('connection costs: the counts start again after each line', () => {
  const lines: Array<{ microseconds: Record<string, number> }> = []
  let clock = 0
  const costs = createConnectionCosts(1, { info: (obj: object) => { lines.push(obj as { microseconds: Record<string, number> }) } }, () => clock)
  for (const spent of [10, 30]) {
    const w = costs.start()
    clock += spent
    w.lap('read_chain')
    w.done()
  }
  assert.deepEqual(lines.map((l) => l.microseconds.read_chain), [10, 30])
})

test('connection costs: off by default, nothing is counted or logged', () => {
  const lines: unknown[] = []
  const costs = createConnectionCosts(0, { info: (obj: object) => { lines.push(obj) } })
  const w = costs.start()
  w.lap('validate')
  for (let i = 0; i < 10; i++) w.done()
  assert.equal(lines.length, 0)
  assert.equal(costs.start(), w, 'one shared watch that does nothing')
})
