// What this proves, on a real throwaway PostgreSQL cluster: two registries on one database
// (two gateways) each hear every change exactly once — their own at commit, the other's through
// LISTEN/NOTIFY — and a failed transaction announces nothing. Two registries opening a new
// database at once migrate it once (advisory lock). A registry that loses its server fails closed
// (every call throws, with a message saying so), reconnects by itself once the server is back,
// and then emits one `bulk` change so what it missed is rechecked. Audit records land in the table.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { openPostgresRegistry, type ConnectionState } from '../postgres-registry.js'
import type { DeviceInput, RegistryChange } from '../types.js'
import { startPostgres, type Postgres } from '../../test/support/postgres.js'

let pg: Postgres

before(async () => { pg = await startPostgres() })
after(async () => { await pg.destroy() })

const device = (deviceId: string, status: DeviceInput['status'] = 'enabled'): DeviceInput =>
  ({ deviceId, authType: 'certificateAuthority', primaryThumbprint: null, secondaryThumbprint: null, status, statusReason: null })

async function until (pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('two registries on one database hear each other\'s changes once, and their own once', async (t) => {
  const url = await pg.createDatabase('fleet')
  // Opened together: both run the migrations; the advisory lock makes one wait for the other.
  const [a, b] = await Promise.all([openPostgresRegistry({ url }), openPostgresRegistry({ url })])
  t.after(async () => { await a.close(); await b.close() })
  assert.deepEqual(await pg.query('fleet', 'SELECT version FROM certgate_schema'), [{ version: 5 }])
  const seenA: RegistryChange[] = []
  const seenB: RegistryChange[] = []
  a.onChange((c) => { seenA.push(c) })
  b.onChange((c) => { seenB.push(c) })

  await a.putDevice(device('dev-1'))
  await b.importDevices([device('dev-2'), device('dev-3')])
  await assert.rejects(a.putDevice(device('dev-1'), 'stale-etag'))
  await a.deleteDevice('dev-2')
  // Nothing more arrives (no echo of one's own): each then hears a marker the other writes after
  // these, and a listener gets notifications in commit order, so an echo would have come first.
  await a.putDevice(device('marker-a'))
  await b.putDevice(device('marker-b'))
  const marker = (c: RegistryChange): boolean => c.kind === 'device' && c.deviceId.startsWith('marker-')
  await until(() => seenA.filter(marker).length >= 2 && seenB.filter(marker).length >= 2, 2000, 'changes heard')
  const expected = [{ kind: 'device', deviceId: 'dev-1' }, { kind: 'bulk' }, { kind: 'device', deviceId: 'dev-2' }]
  assert.deepEqual(seenA.filter((c) => !marker(c)), expected)
  assert.deepEqual(seenB.filter((c) => !marker(c)), expected)
  assert.equal(seenA.filter(marker).length, 2, 'each marker heard once')
  assert.equal(seenB.filter(marker).length, 2, 'each marker heard once')
  assert.equal((await b.getDevice('dev-1'))?.status, 'enabled')

  await a.appendAudit({ time: new Date().toISOString(), caller: 'token:abcd@127.0.0.1', action: 'PUT /devices/{id}', resource: '/devices/dev-1', result: 'ok', status: 200, error: undefined })
  const rows = await pg.query<{ action: string, status: number }>('fleet', 'SELECT action, status FROM audit_log')
  assert.deepEqual(rows, [{ action: 'PUT /devices/{id}', status: 200 }])
})

test('losing the server fails closed, and reconnecting emits one bulk change', async (t) => {
  const url = await pg.createDatabase('outage')
  const states: ConnectionState['state'][] = []
  const r = await openPostgresRegistry({ url, reconnectMinMs: 50, reconnectMaxMs: 400, onState: (s) => { states.push(s.state) } })
  t.after(async () => { await r.close() })
  await r.putDevice(device('dev-1'))
  const seen: RegistryChange[] = []
  r.onChange((c) => { seen.push(c) })

  await pg.stop()
  await until(() => states.includes('lost'), 5000, 'loss noticed')
  await assert.rejects(r.getDevice('dev-1'), /unreachable \(reconnecting\); refusing until it is back/)
  await assert.rejects(r.putDevice(device('dev-2')), /unreachable/)

  await pg.start()
  await until(() => states.at(-1) === 'restored', 10_000, 'reconnected')
  assert.deepEqual(seen, [{ kind: 'bulk' }])
  assert.equal((await r.getDevice('dev-1'))?.status, 'enabled')
  // Several failed attempts while the server was down, bounded by the backoff: no storm.
  assert.ok(states.filter((s) => s === 'lost').length < 60, `reconnect attempts: ${states.length}`)
})
