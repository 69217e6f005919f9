// What this proves: with CERTGATE_MQTT_USERNAME=device-id, a real Mosquitto whose ACL is keyed on
// the username isolates devices behind certgate: each device can publish and subscribe on its own
// topics and on no other device's, even when it puts the other device's name in its CONNECT
// username (certgate overwrites it) or clientId (certgate refuses it with "identifier rejected").
// Without the policy the same forged username reaches the broker and opens the other's topics,
// so the test can tell the difference. And with CERTGATE_UPSTREAM_PROXY_PROTOCOL=v2 the upstream
// receives, before the CONNECT, a PROXY v2 header naming the device (address, CN, CA, thumbprint).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { MqttClient } from 'mqtt'
import { issueHierarchy, issue, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { connectDevice, nextMessage } from '../support/device.js'
import { startMosquitto, type Mosquitto } from '../support/mosquitto.js'
import { startProxyV2Upstream } from '../support/proxy-v2-upstream.js'
import { sha256Hex } from '../../../workers/validate-chain.js'
import mqttPacket from 'mqtt-packet'
import { Socket } from 'node:net'

let broker: Mosquitto
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  broker = await startMosquitto(['acl_file $DIR/acl'], { acl: 'pattern readwrite devices/%u/#\n' })
  pki = await issueHierarchy()
})
after(async () => { await broker.stop() })

async function gateway (username: 'device-id' | 'keep'): Promise<Harness> {
  const h = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${broker.port}`, CERTGATE_PROTOCOL: 'mqtt', CERTGATE_MQTT_USERNAME: username })
  await h.registerCa('root', pki.root)
  for (const id of ['alice', 'bob', 'carol']) await h.addDevice(id)
  return h
}

async function device (h: Harness, id: string, more: { username?: string, clientId?: string, protocolVersion?: 4 | 5 } = {}): Promise<MqttClient> {
  return await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: id, issuer: pki.int2 }), chain: [pki.int2, pki.int1], ...more })
}

/** Resolves true if a message arrives on `topic` within `ms`. */
async function receives (client: MqttClient, topic: string, ms = 700): Promise<boolean> {
  return await nextMessage(client, topic, ms).then(() => true, () => false)
}

/** Subscribes; the broker may grant a subscription it will then deliver nothing on (Mosquitto does). */
const subscribe = async (client: MqttClient, topic: string): Promise<void> => { await client.subscribeAsync(topic, { qos: 1 }) }

for (const protocolVersion of [4, 5] as const) {
  test(`MQTT ${protocolVersion === 4 ? '3.1.1' : '5'}: the broker's username ACL isolates devices, even against a forged username`, { timeout: 30_000 }, async () => {
    const h = await gateway('device-id')
    try {
      const bob = await device(h, 'bob', { protocolVersion })
      const alice = await device(h, 'alice', { protocolVersion, username: 'bob' }) // claims to be bob
      await subscribe(bob, 'devices/bob/#')
      await subscribe(alice, 'devices/alice/#')
      await subscribe(alice, 'devices/bob/#')

      // Reading: bob's messages reach bob, never alice, whatever username she sent.
      const bobReads = nextMessage(bob, 'devices/bob/telemetry')
      const aliceReads = receives(alice, 'devices/bob/telemetry')
      await bob.publishAsync('devices/bob/telemetry', 'bob-data', { qos: 1 })
      assert.equal(await bobReads, 'bob-data')
      assert.equal(await aliceReads, false, 'alice read bob\'s topic')

      // Publishing: only to one's own topics.
      const own = nextMessage(alice, 'devices/alice/status')
      await alice.publishAsync('devices/alice/status', 'alice-ok', { qos: 1 })
      assert.equal(await own, 'alice-ok')
      const intruded = receives(bob, 'devices/bob/cmd')
      await alice.publishAsync('devices/bob/cmd', 'from-alice', { qos: 1 }).catch(() => undefined) // MQTT 5 may answer "not authorized"
      assert.equal(await intruded, false, 'bob never got alice\'s publish on his topic')
      const legit = nextMessage(bob, 'devices/bob/cmd')
      await bob.publishAsync('devices/bob/cmd', 'from-bob', { qos: 1 })
      assert.equal(await legit, 'from-bob')

      // Claiming bob's clientId is refused before the broker hears of it.
      await assert.rejects(device(h, 'carol', { protocolVersion, clientId: 'bob' }), /Identifier rejected|identifier|client identifier/i)
      await h.waitForLog((l) => l.event === 'refused' && l.reason === 'mqtt_client_id_mismatch' && l.deviceId === 'carol')
      assert.equal(bob.connected, true, 'bob\'s session was not taken over')
      await Promise.all([alice.endAsync(), bob.endAsync()])
    } finally {
      await h.close()
    }
  })
}

test('control: without the policy, a forged username reaches the broker and opens another device\'s topics', { timeout: 30_000 }, async () => {
  const h = await gateway('keep')
  try {
    const alice = await device(h, 'alice', { username: 'bob' })
    const bob = await device(h, 'bob', { username: 'bob' }) // honest, and on its own
    await subscribe(alice, 'devices/bob/#')
    const aliceReads = nextMessage(alice, 'devices/bob/telemetry')
    await bob.publishAsync('devices/bob/telemetry', 'bob-data', { qos: 1 })
    assert.equal(await aliceReads, 'bob-data', 'the broker believed the forged username')
    await Promise.all([alice.endAsync(), bob.endAsync()])
  } finally {
    await h.close()
  }
})

for (const protocol of ['tcp', 'mqtt'] as const) {
  test(`${protocol} mode with CERTGATE_UPSTREAM_PROXY_PROTOCOL=v2: the upstream gets a PROXY v2 header naming the device, then its bytes`, { timeout: 30_000 }, async () => {
    const up = await startProxyV2Upstream()
    const h = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${up.port}`, CERTGATE_PROTOCOL: protocol, CERTGATE_UPSTREAM_PROXY_PROTOCOL: 'v2', CERTGATE_MQTT_USERNAME: 'device-id' })
    try {
      await h.registerCa('root', pki.root)
      await h.addDevice('dora')
      const client = device(h, 'dora').catch((e: unknown) => e) // the test upstream never answers CONNACK
      await up.waitFor(1)
      const conn = up.connections[0]
      assert.ok(conn !== undefined && typeof conn.header === 'object', `header: ${JSON.stringify(conn?.header)}`)
      const { header } = conn
      assert.equal(header.command, 'PROXY')
      assert.equal(header.family, 'TCP4')
      assert.ok(header.source !== undefined && header.ssl !== undefined)
      assert.equal(header.source.address, '127.0.0.1')
      assert.ok(header.source.port > 0)
      assert.deepEqual(header.destination, { address: '127.0.0.1', port: h.gw.device.port })
      assert.equal(header.ssl.client, 0x07)
      assert.equal(header.ssl.verify, 0)
      assert.equal(header.ssl.sub.get(0x22)?.toString(), 'dora')
      assert.match(header.ssl.sub.get(0x21)?.toString() ?? '', /^TLSv1\.[23]$/)
      assert.equal(header.tlvs.get(0xe0)?.toString(), 'root')
      assert.match(header.tlvs.get(0xe1)?.toString() ?? '', /^[0-9a-f]{64}$/)
      // What follows the header is the device's CONNECT (with the deviceId as username in mqtt mode).
      const deadline = Date.now() + 3000
      while (Buffer.concat(conn.after).length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
      const parser = mqttPacket.parser()
      const packets: mqttPacket.Packet[] = []
      parser.on('packet', (p: mqttPacket.Packet) => packets.push(p))
      parser.parse(Buffer.concat(conn.after))
      assert.equal(packets[0]?.cmd, 'connect')
      const connect = packets[0]
      assert.equal(connect.clientId, 'dora')
      if (protocol === 'mqtt') assert.equal(connect.username, 'dora')
      await up.close()
      await client
    } finally {
      await h.close()
    }
  })
}

test('a selfSigned device\'s PROXY header carries its thumbprint and no CA name', { timeout: 30_000 }, async () => {
  const up = await startProxyV2Upstream()
  const h = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${up.port}`, CERTGATE_PROTOCOL: 'tcp', CERTGATE_UPSTREAM_PROXY_PROTOCOL: 'v2' })
  try {
    const cert = await issue({ cn: 'solo' })
    await h.addDevice('solo', { authType: 'selfSigned', primaryThumbprint: sha256Hex(cert.der), secondaryThumbprint: null })
    const client = connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: cert }).catch((e: unknown) => e)
    await up.waitFor(1)
    const header = up.connections[0]?.header
    assert.ok(typeof header === 'object')
    assert.equal(header.tlvs.has(0xe0), false)
    assert.equal(header.tlvs.get(0xe1)?.toString(), sha256Hex(cert.der))
    await up.close()
    await client
  } finally {
    await h.close()
  }
})

// The address a device connected to costs a getsockname system call; only the upstream PROXY
// header uses it, so without one no connection asks for it (the header-less case would pass
// vacuously if the count never moved: the PROXY case shows it does). Node's sockets ask through
// Socket.prototype._getsockname, counted here around the real one.
for (const proxied of [false, true]) {
  test(`the kernel is asked for the address a device connected to ${proxied ? 'for the upstream PROXY header' : 'never, without an upstream PROXY header'}`, { timeout: 30_000 }, async () => {
    const up = await startProxyV2Upstream()
    const h = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${up.port}`, CERTGATE_PROTOCOL: 'tcp', ...(proxied ? { CERTGATE_UPSTREAM_PROXY_PROTOCOL: 'v2' } : {}) })
    const proto = Socket.prototype as unknown as { _getsockname: () => unknown }
    const original = proto._getsockname
    let asked = 0
    try {
      await h.registerCa('root', pki.root)
      await h.addDevice('dora')
      proto._getsockname = function (this: unknown) { asked++; return original.call(this) }
      const client = device(h, 'dora').catch((e: unknown) => e) // the test upstream never answers CONNACK
      await up.waitFor(1) // forwarded: the decision and the upstream connection are behind it
      if (proxied) assert.ok(asked > 0, 'the PROXY header needs the address: the count must move')
      else assert.equal(asked, 0)
      await up.close()
      await client
    } finally {
      proto._getsockname = original
      await h.close()
    }
  })
}
