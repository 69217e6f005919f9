// What this proves, through the whole gateway over real TLS: once a chain is warm (the pool
// accepted it, so its intermediates are decided on the event loop), devices sending it still get
// every per-connection check: a second device under the same intermediates is let in, an expired
// leaf under them is refused, and when the CA is deleted the very next connection with that warm
// chain is refused (the trust change empties the event loop's cache before the next decision).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { connectDevice } from '../support/device.js'

let h: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  h = await startHarness()
  pki = await issueHierarchy({ rootCn: 'Warm Root' })
  await h.registerCa('warm-root', pki.root)
})
after(async () => { await h.close() })

const connect = async (leaf: Issued): ReturnType<typeof connectDevice> => await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] })

test('a warm chain: the next devices under it are checked leaf by leaf, and a deleted CA refuses the next connection', async () => {
  for (const id of ['warm-a', 'warm-b', 'warm-old']) await h.addDevice(id)
  // The first device makes the chain warm; the second is decided on the event loop.
  for (const id of ['warm-a', 'warm-b']) {
    const c = await connect(await issue({ cn: id, issuer: pki.int2 }))
    await h.waitForLog((l) => l.event === 'authenticated' && l.deviceId === id)
    await c.endAsync()
  }
  const old = await issue({ cn: 'warm-old', issuer: pki.int2, notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) })
  await assert.rejects(connect(old))
  await h.waitForLog((l) => l.event === 'refused' && l.reason === 'cert_expired' && l.deviceId === 'warm-old')

  const live = await connect(await issue({ cn: 'warm-a', issuer: pki.int2 }))
  await h.gw.registry.deleteCa('warm-root')
  // The trust change has been applied once the live connection that chained to the CA is closed.
  await h.waitForLog((l) => l.event === 'closed' && l.reason === 'ca_removed' && l.deviceId === 'warm-a')
  live.end(true)
  await assert.rejects(connect(await issue({ cn: 'warm-b', issuer: pki.int2 })))
  await h.waitForLog((l) => l.event === 'refused' && l.reason === 'chain_untrusted' && l.deviceId === 'warm-b')
})
