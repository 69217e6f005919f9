// What this proves: the device cache in front of a real SQLite registry answers repeated reads
// without the database, and never answers from before a change: a change empties it at once
// (also when another change listener throws), a read that was in flight across a change stores
// nothing, unknown devices are not kept, and it holds at most its bound. The whole registry
// contract also runs through it (registry.test.ts).
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSqliteRegistry } from '../sqlite-registry.js'
import { withDeviceCache } from '../device-cache.js'
import type { DeviceInput, Registry } from '../types.js'

/** A real SQLite registry whose getDevice calls are counted, and the cache in front of it. */
function cached (t: TestContext, maxEntries?: number): { registry: Registry, reads: () => number } {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-device-cache-'))
  const inner = openSqliteRegistry(join(dir, 'registry.sqlite'))
  let reads = 0
  const counted: Registry = { ...inner, getDevice: async (id) => { reads++; return await inner.getDevice(id) } }
  const registry = withDeviceCache(counted, maxEntries)
  t.after(async () => { await registry.close(); rmSync(dir, { recursive: true, force: true }) })
  return { registry, reads: () => reads }
}

const device = (deviceId: string, status: 'enabled' | 'disabled' = 'enabled'): DeviceInput =>
  ({ deviceId, authType: 'certificateAuthority', status, statusReason: null, primaryThumbprint: null, secondaryThumbprint: null })

test('a known device is read from the database once, then from the cache', async (t) => {
  const { registry, reads } = cached(t)
  await registry.putDevice(device('dev-1'))
  assert.equal((await registry.getDevice('dev-1'))?.status, 'enabled')
  assert.equal((await registry.getDevice('dev-1'))?.status, 'enabled')
  assert.equal(reads(), 1)
})

test('every kind of device change empties the cache before the next read', async (t) => {
  const { registry, reads } = cached(t)
  await registry.putDevice(device('dev-1'))
  await registry.getDevice('dev-1')
  await registry.putDevice(device('dev-1', 'disabled'))
  assert.equal((await registry.getDevice('dev-1'))?.status, 'disabled')
  await registry.importDevices([device('dev-1')])
  assert.equal((await registry.getDevice('dev-1'))?.status, 'enabled')
  const etag = (await registry.getDevice('dev-1'))?.etag
  await registry.deleteDevice('dev-1', etag)
  assert.equal(await registry.getDevice('dev-1'), undefined)
  assert.equal(reads(), 4)
})

test('a read in flight when a change commits does not store what it read', async (t) => {
  const { registry, reads } = cached(t)
  await registry.putDevice(device('dev-1'))
  // The database is read when getDevice is called; the change commits before the read resolves.
  const inFlight = registry.getDevice('dev-1')
  await registry.putDevice(device('dev-1', 'disabled'))
  assert.equal((await inFlight)?.status, 'enabled')
  assert.equal((await registry.getDevice('dev-1'))?.status, 'disabled')
  assert.equal(reads(), 2)
})

test('a change listener that throws does not keep the cache from emptying', async (t) => {
  const { registry } = cached(t)
  registry.onChange(() => { throw new Error('a listener that fails') })
  await registry.putDevice(device('dev-1'))
  await registry.getDevice('dev-1')
  await registry.putDevice(device('dev-1', 'disabled'))
  assert.equal((await registry.getDevice('dev-1'))?.status, 'disabled')
})

test('unknown devices are not kept, and the cache holds at most its bound', async (t) => {
  const { registry, reads } = cached(t, 2)
  assert.equal(await registry.getDevice('nobody'), undefined)
  assert.equal(await registry.getDevice('nobody'), undefined)
  assert.equal(reads(), 2)
  await registry.importDevices([device('a'), device('b'), device('c')])
  for (const id of ['a', 'b', 'c']) await registry.getDevice(id)
  assert.equal(reads(), 5)
  await registry.getDevice('a') // the least recently used of three, with room for two
  assert.equal(reads(), 6)
})
