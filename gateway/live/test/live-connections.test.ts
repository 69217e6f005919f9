import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createLiveConnections, type LiveEntry } from '../live-connections.js'
import type { Identity } from '../../auth/authenticate.js'

const entry = (deviceId: string, listener = 'devices'): LiveEntry => ({
  identity: { deviceId, authType: 'certificateAuthority', caName: 'ca', thumbprint: deviceId, notAfter: Infinity, leafNotAfter: Infinity, path: [] } satisfies Identity,
  listener,
  openedAt: 0,
  close: () => undefined,
  flushBytes: () => undefined
})

test('live connections: a device\'s connections are tracked and untracked in any order', () => {
  const live = createLiveConnections()
  try {
    const [a, b, c] = [entry('d1'), entry('d1', 'other'), entry('d2')]
    const untrackA = live.track(a)
    const untrackB = live.track(b)
    const untrackC = live.track(c)
    assert.deepEqual(live.byDevice('d1'), [a, b])
    assert.equal(live.count(), 3)
    assert.equal(live.count('other'), 1)
    untrackA()
    untrackA() // a second call changes nothing
    assert.deepEqual(live.byDevice('d1'), [b])
    untrackB()
    assert.deepEqual(live.byDevice('d1'), [])
    // The device's only connection gone, a new one starts a new set.
    const d = entry('d1')
    const untrackD = live.track(d)
    untrackB()
    assert.deepEqual(live.byDevice('d1'), [d])
    untrackD()
    assert.deepEqual(live.byDevice('d1'), [])
    assert.deepEqual(live.all(), [c])
    untrackC()
    assert.equal(live.count(), 0)
    assert.equal(live.count('devices'), 0)
  } finally {
    live.stop()
  }
})
