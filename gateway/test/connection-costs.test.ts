import { test } from 'node:test'
import assert from 'node:assert/strict'
import { COST_ITEMS, createConnectionCosts } from '../connection-costs.js'

const spin = (ms: number): void => { const end = performance.now() + ms; while (performance.now() < end) { /* CPU, not a wait */ } }

test('connection costs: every N connections, one line of µs per step, averaged over the connections that reached it', () => {
  const lines: Array<Record<string, unknown>> = []
  const costs = createConnectionCosts(2, { info: (obj: object) => { lines.push(obj as Record<string, unknown>) } } as never)
  for (let i = 0; i < 2; i++) {
    const w = costs.start()
    spin(3)
    w.lap('validate')
    w.resume() // a wait is not charged
    w.lap('authorize')
    if (i === 0) { spin(2); w.lap('open_upstream') } // one of the two reached it
    w.done()
  }
  assert.equal(lines.length, 1)
  const line = lines[0] as { event: string, connections: number, microseconds: Record<string, number>, total: number }
  assert.equal(line.event, 'connection_costs')
  assert.equal(line.connections, 2)
  assert.deepEqual(Object.keys(line.microseconds), [...COST_ITEMS])
  assert.ok((line.microseconds.validate ?? 0) >= 2500, `validate ${line.microseconds.validate}`)
  assert.ok((line.microseconds.authorize ?? 0) < 1000, `authorize ${line.microseconds.authorize}`)
  assert.ok((line.microseconds.open_upstream ?? 0) >= 1500, 'averaged over the one connection that opened an upstream')
  assert.equal(line.microseconds.read_chain, 0)
})

test('connection costs: off by default, nothing is counted or logged', () => {
  const lines: unknown[] = []
  const costs = createConnectionCosts(0, { info: (obj: object) => { lines.push(obj) } } as never)
  const w = costs.start()
  w.lap('validate')
  for (let i = 0; i < 10; i++) w.done()
  assert.equal(lines.length, 0)
  assert.equal(costs.start(), w, 'one shared watch that does nothing')
})
