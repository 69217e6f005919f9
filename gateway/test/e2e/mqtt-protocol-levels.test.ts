// What this proves: certgate knows the protocol level of every CONNECT it reads and never lets a
// broker's refusal look like a network fault. With no CERTGATE_UPSTREAM (the embedded aedes 1.x
// broker, MQTT 3.1.1 only) an MQTT 5 device (mqtt.js) gets CONNACK 0x84 "Unsupported Protocol
// Version" from certgate, logged as mqtt_version_unsupported with a detail that says to set
// CERTGATE_UPSTREAM, while an MQTT 3.1.1 device on the same gateway publishes and receives. In
// front of a real Mosquitto that refuses anonymous clients, the device gets Mosquitto's own
// CONNACK and certgate logs the close as upstream_refused naming the code, not upstream_closed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { issue, issueHierarchy } from '../../pki/issue.js'
import { startHarness } from '../support/harness.js'
import { connectDevice, nextMessage } from '../support/device.js'
import { startMosquitto } from '../support/mosquitto.js'

test('embedded broker: MQTT 5 is refused with CONNACK 0x84 and a log saying what to do; MQTT 3.1.1 works', { timeout: 60_000 }, async (t) => {
  const h = await startHarness()
  t.after(async () => { await h.close() })
  const pki = await issueHierarchy()
  await h.registerCa('root', pki.root)
  await h.addDevice('v5-dev')
  await h.addDevice('v4-dev')
  const dial = async (cn: string, protocolVersion: 4 | 5): ReturnType<typeof connectDevice> =>
    await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn, issuer: pki.int2 }), chain: [pki.int2, pki.int1], protocolVersion })
  const err = await dial('v5-dev', 5).then(() => undefined, (e: unknown) => e as Error & { code?: number })
  assert.equal(err?.code, 0x84, `CONNACK code: ${err?.message ?? 'connected'}`)
  const line = await h.waitForLog((l) => l.event === 'refused' && l.deviceId === 'v5-dev')
  assert.equal(line.reason, 'mqtt_version_unsupported')
  assert.match(line.detail ?? '', /CERTGATE_UPSTREAM/)

  const v4 = await dial('v4-dev', 4)
  await v4.subscribeAsync('levels/t')
  const got = nextMessage(v4, 'levels/t')
  await v4.publishAsync('levels/t', 'ok')
  assert.equal(await got, 'ok')
  await v4.endAsync()
})

test('a broker\'s refusing CONNACK reaches the device and is logged as upstream_refused with the code', { timeout: 60_000 }, async (t) => {
  const broker = await startMosquitto(['allow_anonymous false'])
  t.after(async () => { await broker.stop() })
  const h = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${broker.port}` })
  t.after(async () => { await h.close() })
  const pki = await issueHierarchy()
  await h.registerCa('root', pki.root)
  await h.addDevice('anon-1')
  for (const protocolVersion of [4, 5] as const) {
    const err = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'anon-1', issuer: pki.int2 }), chain: [pki.int2, pki.int1], protocolVersion })
      .then(() => undefined, (e: unknown) => e as Error & { code?: number })
    assert.equal(err?.code, protocolVersion === 5 ? 0x87 : 5, `Mosquitto's CONNACK (MQTT ${protocolVersion}): ${err?.message ?? 'connected'}`)
  }
  const closes = await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'anon-1' && /0x87/.test(l.detail ?? ''))
  assert.equal(closes.reason, 'upstream_refused')
  assert.ok(h.logs.some((l) => l.event === 'closed' && l.deviceId === 'anon-1' && l.reason === 'upstream_refused' && /return code 0x05/.test(l.detail ?? '')))
  assert.ok(!h.logs.some((l) => l.event === 'closed' && l.deviceId === 'anon-1' && l.reason === 'upstream_closed'))
})
