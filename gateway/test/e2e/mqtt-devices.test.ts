// What this proves: devices with CA-signed and self-signed certificates connect over real TLS
// through certgate to the embedded MQTT broker, publish and receive; the intermediates a device
// sends reach the validator (the CA registered is the root, two levels above the issuer); and
// each kind of device that must not get in is refused with its own reason, never reaching the
// broker: no client certificate, unknown device, disabled device, CA registered but not
// verified, CA not registered, clientId not equal to the deviceId, a CN differing only in case.
// Disabling a connected device closes its live connection within a second, and refuses it after.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { closed, connectDevice, nextMessage } from '../support/device.js'
import { sha256Hex } from '../../../workers/validate-chain.js'

let h: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  h = await startHarness()
  pki = await issueHierarchy()
  await h.registerCa('fleet-root', pki.root)
})
after(async () => { await h.close() })

const device = async (cn: string): Promise<Issued> => await issue({ cn, issuer: pki.int2 })
const refusalFor = async (match: { reason: string, deviceId?: string }) =>
  await h.waitForLog((l) => l.event === 'refused' && l.reason === match.reason && (match.deviceId === undefined || l.deviceId === match.deviceId))

test('a CA-signed device publishes and another receives, through the embedded broker', async () => {
  await h.addDevice('sensor-1')
  await h.addDevice('sensor-2')
  const [a, b] = await Promise.all([device('sensor-1'), device('sensor-2')])
  const pub = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: a, chain: [pki.int2, pki.int1] })
  const sub = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: b, chain: [pki.int1, pki.int2] })
  await sub.subscribeAsync('fleet/temp')
  const got = nextMessage(sub, 'fleet/temp')
  await pub.publishAsync('fleet/temp', '21.5')
  assert.equal(await got, '21.5')
  const auth = await h.waitForLog((l) => l.event === 'authenticated' && l.deviceId === 'sensor-1')
  assert.equal((auth as unknown as { ca: string }).ca, 'fleet-root')
  await Promise.all([pub.endAsync(), sub.endAsync()])
})

test('a self-signed device authenticates by thumbprint (primary or secondary)', async () => {
  const cert = await issue({ cn: 'selfie-1' })
  const other = await issue({ cn: 'selfie-1' })
  await h.addDevice('selfie-1', { authType: 'selfSigned', primaryThumbprint: sha256Hex(other.der), secondaryThumbprint: sha256Hex(cert.der) })
  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: cert })
  await c.publishAsync('fleet/self', 'hi')
  await c.endAsync()
  const wrong = await issue({ cn: 'selfie-1' })
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: wrong }))
  await refusalFor({ reason: 'thumbprint_mismatch', deviceId: 'selfie-1' })
})

test('refused: no client certificate', async () => {
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, clientId: 'nobody' }))
  await refusalFor({ reason: 'no_client_cert' })
})

test('refused: unknown device', async () => {
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await device('ghost-7'), chain: [pki.int2, pki.int1] }))
  await refusalFor({ reason: 'device_unknown', deviceId: 'ghost-7' })
})

test('refused: disabled device', async () => {
  await h.addDevice('off-1', { status: 'disabled', statusReason: 'returned for repair' })
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await device('off-1'), chain: [pki.int2, pki.int1] }))
  const line = await refusalFor({ reason: 'device_disabled', deviceId: 'off-1' })
  assert.match(line.detail ?? '', /returned for repair/)
})

test('refused: CA registered but not verified, and CA not registered', async () => {
  const other = await issueHierarchy({ rootCn: 'Unverified Root' })
  await h.gw.caService.upload('unverified', other.root.pem)
  await h.addDevice('unv-1')
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'unv-1', issuer: other.int2 }), chain: [other.int2, other.int1] }))
  await refusalFor({ reason: 'chain_untrusted', deviceId: 'unv-1' })

  const stranger = await issueHierarchy({ rootCn: 'Stranger Root' })
  await h.addDevice('str-1')
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'str-1', issuer: stranger.int2 }), chain: [stranger.int2, stranger.int1] }))
  await refusalFor({ reason: 'chain_untrusted', deviceId: 'str-1' })
})

test('refused: intermediates not sent (certgate never completes a chain from its cache)', async () => {
  await h.addDevice('lazy-1')
  const leaf = await device('lazy-1')
  // Warm the cache with a good connection first, then leave the intermediates out.
  const ok = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] })
  await ok.endAsync()
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf }))
  await refusalFor({ reason: 'chain_untrusted', deviceId: 'lazy-1' })
})

test('refused: MQTT clientId not equal to the deviceId gets CONNACK "identifier rejected"', async () => {
  await h.addDevice('cid-1')
  const leaf = await device('cid-1')
  for (const protocolVersion of [4, 5] as const) {
    const err = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1], clientId: 'someone-else', protocolVersion }).then(() => undefined, (e: unknown) => e as Error & { code?: number })
    assert.ok(err !== undefined, 'connection must be refused')
    assert.equal(err.code, protocolVersion === 5 ? 0x85 : 2, `CONNACK code for MQTT ${protocolVersion}: ${err.message}`)
  }
  await refusalFor({ reason: 'mqtt_client_id_mismatch', deviceId: 'cid-1' })
})

test('refused: CN that differs from a registered deviceId only in case', async () => {
  await h.addDevice('CaseSensitive')
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await device('casesensitive'), chain: [pki.int2, pki.int1] }))
  await refusalFor({ reason: 'device_unknown', deviceId: 'casesensitive' })
})

test('disabling a connected device closes its connection within a second, and it is refused when it comes back', async () => {
  await h.addDevice('live-1')
  const leaf = await device('live-1')
  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] })
  const gone = closed(c, 1000)
  await h.gw.registry.putDevice({ deviceId: 'live-1', authType: 'certificateAuthority', primaryThumbprint: null, secondaryThumbprint: null, status: 'disabled', statusReason: 'stolen' })
  const ms = await gone
  assert.ok(ms < 1000, `closed after ${ms} ms`)
  await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'live-1' && l.reason === 'device_disabled')
  c.end(true)
  // The gateway kept the enabled record it read for the first connection (registry/device-cache.ts):
  // the change emptied it, so the next connection reads the disabled one.
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] }))
  await refusalFor({ reason: 'device_disabled', deviceId: 'live-1' })
})

test('deleting the CA closes the connections that chained to it', async () => {
  const other = await issueHierarchy({ rootCn: 'Doomed Root' })
  await h.registerCa('doomed', other.root)
  await h.addDevice('doomed-1')
  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'doomed-1', issuer: other.int2 }), chain: [other.int2, other.int1] })
  const gone = closed(c, 1000)
  await h.gw.registry.deleteCa('doomed')
  assert.ok(await gone < 1000)
  await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'doomed-1' && l.reason === 'ca_removed')
  c.end(true)
})
