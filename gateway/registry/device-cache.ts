// The device records a single-process SQLite gateway has read, kept until the registry changes.
// Reading a record is the largest item of certgate's own work per connection after the leaf's
// signature (an SQLite statement: ~8 µs in a loop, ~50 µs between real handshakes). Such a
// gateway hears every change the moment it commits: the SQLite registry announces it synchronously,
// in the same turn as the commit, and this cache, subscribed first, forgets everything then,
// before any other code runs. So a read after a change always reaches the database.
//
// Used only where that holds (gateway.ts): not with PostgreSQL, and not in a process group, where
// a change made by another process reaches this one later.
import { createExpiringLru } from '../../cache/expiring-lru.js'
import type { DeviceRecord, Registry } from './types.js'

export const DEVICE_CACHE_ENTRIES = 16_384

export function withDeviceCache (inner: Registry, maxEntries = DEVICE_CACHE_ENTRIES): Registry {
  const held = createExpiringLru<DeviceRecord>({ maxEntries })
  // Bumped by every change: a read that began before one must not store what it read.
  let changes = 0
  // Subscribed before anything else can be, and cannot throw, so no other listener's failure
  // keeps it from running.
  const stopForgetting = inner.onChange(() => {
    changes++
    held.clear()
  })
  return {
    ...inner,
    getDevice: async (deviceId) => {
      const hit = held.get(deviceId)
      if (hit !== undefined) return hit
      const seen = changes
      const device = await inner.getDevice(deviceId)
      // Unknown devices are not kept: a refused device is remembered elsewhere (refusal-memory.ts).
      if (device !== undefined && changes === seen) held.set(deviceId, device, Infinity)
      return device
    },
    close: async () => {
      stopForgetting()
      held.clear()
      await inner.close()
    }
  }
}
