// What this proves: a device certgate refuses after the TLS handshake is told so in its own
// protocol instead of seeing the connection drop. In mqtt mode (mqtt.js through certgate to a
// real Mosquitto) a disabled or unknown device gets CONNACK return code 5 over MQTT 3.1.1 and
// reason 0x87 over MQTT 5, and Mosquitto never sees it; an MQTT 5 device disabled while connected
// receives DISCONNECT 0x98 (administrative action) before the connection closes, and one closed at
// shutdown DISCONNECT 0x8B; an MQTT 3.1.1 device just sees the close. In http mode a refused device
// gets 403 with a JSON error body and nothing reaches the upstream, and shutdown closes idle
// keep-alive connections at once instead of waiting for the drain timeout.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { Client } from 'undici'
import type { IDisconnectPacket } from 'mqtt'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { connectDevice } from '../support/device.js'
import { startMosquitto, type Mosquitto } from '../support/mosquitto.js'
import { startHttpUpstream } from '../support/http-upstream.js'

let broker: Mosquitto
let pki: { root: Issued, int1: Issued, int2: Issued }
let h: Harness

before(async () => {
  broker = await startMosquitto()
  pki = await issueHierarchy()
  h = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${broker.port}`, CERTGATE_PROTOCOL: 'mqtt' })
  await h.registerCa('root', pki.root)
})
after(async () => {
  await h.close()
  await broker.stop()
})

const leafFor = async (cn: string): Promise<Issued> => await issue({ cn, issuer: pki.int2 })
const dial = async (leaf: Issued, protocolVersion: 4 | 5): ReturnType<typeof connectDevice> =>
  await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1], protocolVersion })
const refusalCode = async (leaf: Issued, protocolVersion: 4 | 5): Promise<number | undefined> =>
  await dial(leaf, protocolVersion).then((c) => { c.end(true); return -1 }, (e: unknown) => (e as { code?: number }).code)

test('a disabled device gets CONNACK 5 (MQTT 3.1.1) and 0x87 (MQTT 5); Mosquitto never sees it', { timeout: 20_000 }, async () => {
  await h.addDevice('off-1', { status: 'disabled', statusReason: 'returned for repair' })
  const leaf = await leafFor('off-1')
  assert.equal(await refusalCode(leaf, 4), 5)
  assert.equal(await refusalCode(leaf, 5), 0x87)
  await h.waitForLog((l) => l.event === 'refused' && l.reason === 'device_disabled' && l.deviceId === 'off-1')
  assert.doesNotMatch(broker.log(), /off-1/)
})

test('an unknown device, and one remembered as refused, get CONNACK 5 / 0x87 too', { timeout: 20_000 }, async () => {
  const leaf = await leafFor('ghost-1')
  assert.equal(await refusalCode(leaf, 5), 0x87)
  assert.equal(await refusalCode(leaf, 4), 5) // this one comes from the refusal memory
  assert.equal(h.logs.filter((l) => l.event === 'refused' && l.deviceId === 'ghost-1' && l.reason === 'device_unknown').length, 2)
})

test('an MQTT 5 device disabled while connected receives DISCONNECT 0x98 before the close', { timeout: 20_000 }, async () => {
  await h.addDevice('live-5')
  const c = await dial(await leafFor('live-5'), 5)
  const told = new Promise<IDisconnectPacket>((resolve) => c.once('disconnect', resolve))
  const closed = new Promise<void>((resolve) => c.once('close', () => { resolve() }))
  await h.gw.registry.putDevice({ deviceId: 'live-5', authType: 'certificateAuthority', primaryThumbprint: null, secondaryThumbprint: null, status: 'disabled', statusReason: 'stolen' })
  const packet = await told
  assert.equal(packet.reasonCode, 0x98)
  await closed
  await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'live-5' && l.reason === 'device_disabled')
  c.end(true)
})

test('an MQTT 3.1.1 device disabled while connected is closed (3.1.1 has no server DISCONNECT)', { timeout: 20_000 }, async () => {
  await h.addDevice('live-4')
  const c = await dial(await leafFor('live-4'), 4)
  let told = false
  c.on('disconnect', () => { told = true })
  const closed = new Promise<void>((resolve) => c.once('close', () => { resolve() }))
  await h.gw.registry.deleteDevice('live-4')
  await closed
  assert.equal(told, false)
  c.end(true)
})

test('shutdown: an MQTT 5 device gets DISCONNECT 0x8B (server shutting down)', { timeout: 20_000 }, async () => {
  const own = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${broker.port}`, CERTGATE_PROTOCOL: 'mqtt', CERTGATE_DRAIN_TIMEOUT_MS: '0' })
  await own.registerCa('root', pki.root)
  await own.addDevice('bye-5')
  const c = await connectDevice({ port: own.gw.device.port, serverCa: own.serverCa, leaf: await leafFor('bye-5'), chain: [pki.int2, pki.int1], protocolVersion: 5 })
  const told = new Promise<IDisconnectPacket>((resolve) => c.once('disconnect', resolve))
  await own.close()
  assert.equal((await told).reasonCode, 0x8b)
  c.end(true)
})

test('http mode: a refused device gets 403 with a JSON error; shutdown closes idle keep-alive connections at once', { timeout: 30_000 }, async () => {
  const up = await startHttpUpstream()
  const hh = await startHarness({ CERTGATE_PROTOCOL: 'http', CERTGATE_UPSTREAM: `http://127.0.0.1:${up.port}`, CERTGATE_DRAIN_TIMEOUT_MS: '20000' })
  const client = (leaf: Issued): Client => new Client(`https://127.0.0.1:${hh.gw.device.port}`, {
    connect: { ca: hh.serverCa, cert: leaf.pem + pki.int2.pem + pki.int1.pem, key: leaf.keyPem, servername: 'localhost' }
  })
  try {
    await hh.registerCa('root', pki.root)
    const stranger = client(await leafFor('stranger'))
    const res = await stranger.request({ path: '/secret', method: 'GET' })
    assert.equal(res.statusCode, 403)
    assert.match(res.headers['content-type'] as string, /application\/json/)
    const body = await res.body.json() as { error: { code: string, message: string } }
    assert.equal(body.error.code, 'forbidden')
    await stranger.close()
    assert.equal(up.requests.length, 0)

    await hh.addDevice('idle-1')
    const idle = client(await leafFor('idle-1'))
    const ok = await idle.request({ path: '/', method: 'GET' })
    await ok.body.text()
    const disconnected = new Promise<void>((resolve) => idle.once('disconnect', () => { resolve() }))
    const started = Date.now()
    await hh.close()
    await disconnected
    const ms = Date.now() - started
    assert.ok(ms < 10_000, `shutdown took ${ms} ms with a 20 s drain timeout: the idle connection was waited for`)
    await idle.close()
  } finally {
    await up.close()
  }
})
