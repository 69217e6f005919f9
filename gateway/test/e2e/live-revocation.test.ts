// What this proves: every kind of revocation reaches connections that are already open, within
// a second: deleting a device, replacing a self-signed device's thumbprints (its old certificate
// no longer listed), a device certificate passing its notAfter while connected, and the optional
// maximum connection age — each closes the connection with its own logged reason, and a device
// whose thumbprints still list its certificate stays connected.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { closed, connectDevice } from '../support/device.js'
import { sha256Hex } from '../../../workers/validate-chain.js'

let h: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  h = await startHarness()
  pki = await issueHierarchy()
  await h.registerCa('root', pki.root)
})
after(async () => { await h.close() })

const selfSigned = (primary: string, secondary: string | null) => ({ authType: 'selfSigned' as const, primaryThumbprint: primary, secondaryThumbprint: secondary })

test('deleting a connected device closes it within a second', async () => {
  await h.addDevice('del-1')
  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'del-1', issuer: pki.int2 }), chain: [pki.int2, pki.int1] })
  const gone = closed(c, 1000)
  await h.gw.registry.deleteDevice('del-1')
  assert.ok(await gone < 1000)
  await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'del-1' && l.reason === 'device_deleted')
  c.end(true)
})

test('replacing a self-signed device\'s thumbprints closes a connection whose certificate is no longer listed, and only that one', async () => {
  const oldCert = await issue({ cn: 'rot-1' })
  const newCert = await issue({ cn: 'rot-1' })
  await h.addDevice('rot-1', selfSigned(sha256Hex(oldCert.der), null))
  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: oldCert })
  await h.addDevice('rot-witness')
  const witness = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'rot-witness', issuer: pki.int2 }), chain: [pki.int2, pki.int1] })
  // Rotation step 1: the new certificate becomes secondary; the old one stays primary: no close.
  await h.gw.registry.putDevice({ deviceId: 'rot-1', status: 'enabled', statusReason: null, ...selfSigned(sha256Hex(oldCert.der), sha256Hex(newCert.der)) })
  // Proof that step 1 was applied rather than still pending: revocation handles the registry's
  // changes in order, so once a later change (deleting the witness) has closed the witness, the
  // rotation has been rechecked too.
  const witnessGone = closed(witness, 1000)
  await h.gw.registry.deleteDevice('rot-witness')
  await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'rot-witness' && l.reason === 'device_deleted')
  await witnessGone
  witness.end(true)
  assert.equal(h.logs.some((l) => l.event === 'closed' && l.deviceId === 'rot-1'), false, 'still listed: not closed')
  assert.equal(c.connected, true, 'still listed: stays connected')
  // Step 2: the old certificate is dropped: its connection closes.
  const gone = closed(c, 1000)
  await h.gw.registry.putDevice({ deviceId: 'rot-1', status: 'enabled', statusReason: null, ...selfSigned(sha256Hex(newCert.der), null) })
  assert.ok(await gone < 1000)
  await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'rot-1' && l.reason === 'device_changed')
  c.end(true)
  const fresh = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: newCert })
  await fresh.endAsync()
})

test('a certificate passing its notAfter while connected closes the connection within a second', async () => {
  await h.addDevice('exp-1')
  const notAfter = new Date(Date.now() + 2500)
  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'exp-1', issuer: pki.int2, notAfter }), chain: [pki.int2, pki.int1] })
  await closed(c, 5000)
  // X.509 times have whole seconds: the certificate expires at the second boundary.
  const late = Date.now() - Math.floor(notAfter.getTime() / 1000) * 1000
  assert.ok(late < 1000, `closed ${late} ms after notAfter`)
  await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'exp-1' && l.reason === 'cert_expired')
  c.end(true)
})

test('the maximum connection age closes old connections', async () => {
  const aged = await startHarness({ CERTGATE_MAX_CONNECTION_AGE_S: '1' })
  try {
    await aged.registerCa('root', pki.root)
    await aged.addDevice('old-1')
    const c = await connectDevice({ port: aged.gw.device.port, serverCa: aged.serverCa, leaf: await issue({ cn: 'old-1', issuer: pki.int2 }), chain: [pki.int2, pki.int1] })
    const ms = await closed(c, 3000)
    assert.ok(ms >= 900 && ms < 2000, `closed after ${ms} ms`)
    await aged.waitForLog((l) => l.event === 'closed' && l.deviceId === 'old-1' && l.reason === 'max_age')
    c.end(true)
  } finally {
    await aged.close()
  }
})
