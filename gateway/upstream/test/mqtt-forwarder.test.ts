// What this proves: in mqtt mode a device gets an upstream connection only after it sends a
// well-formed MQTT CONNECT whose clientId is its deviceId. The upstream then receives that
// CONNECT byte for byte, plus anything pipelined after it, whether the CONNECT came in one write
// or many, over MQTT 3.1.1 or 5. A clientId that is not the deviceId gets the protocol's
// "identifier rejected" CONNACK. Anything that is not a CONNECT, a malformed remaining length,
// an oversized CONNECT, silence past the first-packet timeout and a device that hangs up are
// protocol errors. In none of these is the upstream ever contacted. An upstream that refuses
// the connection is upstream_unavailable. Real sockets on 127.0.0.1 throughout.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import mqttPacket from 'mqtt-packet'
import { createMqttForwarder, type MqttForwarderOptions } from '../mqtt-forwarder.js'
import type { DeviceConnection, HostPort } from '../forwarder.js'
import { createUpstreamHealth } from '../upstream-health.js'
import type { Identity } from '../../auth/authenticate.js'
import type { TLSSocket } from 'node:tls'

const identity: Identity = { deviceId: 'dev-1', authType: 'certificateAuthority', caName: 'root', thumbprint: 'x', notAfter: Date.now() + 1e6, leafNotAfter: Date.now() + 1e6 }

const connectV4 = (clientId = 'dev-1'): Buffer => mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 30 })
const connectV5 = (clientId = 'dev-1'): Buffer => mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: true, keepalive: 30, properties: { sessionExpiryInterval: 60 } })
const pingreq = (): Buffer => mqttPacket.generate({ cmd: 'pingreq' })
const publish = (): Buffer => mqttPacket.generate({ cmd: 'publish', topic: 't/1', payload: Buffer.from('hello'), qos: 0, retain: false, dup: false })

async function listen (server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const addr = server.address()
  assert.ok(addr !== null && typeof addr === 'object')
  return addr.port
}

async function closeServer (server: Server): Promise<void> {
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
}

interface Upstream {
  readonly target: HostPort
  /** Every connection the upstream accepted, with the bytes it received so far. */
  readonly connections: Array<{ socket: Socket, data: Buffer[], ended: Promise<void> }>
}

/** An upstream that accepts connections and records what it receives. */
async function startUpstream (t: TestContext): Promise<Upstream> {
  const connections: Upstream['connections'] = []
  const server = createServer((socket) => {
    const data: Buffer[] = []
    socket.on('data', (d: Buffer) => { data.push(d) })
    socket.on('error', () => undefined)
    connections.push({ socket, data, ended: new Promise((resolve) => { socket.once('close', () => { resolve() }) }) })
  })
  const port = await listen(server)
  t.after(async () => {
    for (const c of connections) c.socket.destroy()
    await closeServer(server)
  })
  return { target: { host: '127.0.0.1', port }, connections }
}

/** A connected socket pair: `device` is the accepted side the forwarder reads, `client` writes to it. */
async function socketPair (t: TestContext): Promise<{ device: Socket, client: Socket }> {
  const server = createServer()
  const port = await listen(server)
  const accepted = once(server, 'connection') as Promise<[Socket]>
  const client = connect({ host: '127.0.0.1', port, noDelay: true })
  client.on('error', () => undefined)
  await once(client, 'connect')
  const [device] = await accepted
  device.on('error', () => undefined)
  // Like a TLS socket handed over after the handshake: not flowing until someone reads.
  device.pause()
  t.after(async () => {
    client.destroy()
    device.destroy()
    await closeServer(server)
  })
  return { device, client }
}

/** Everything the client receives until the other side ends the connection. */
async function readUntilEnd (client: Socket): Promise<Buffer> {
  const chunks: Buffer[] = []
  client.on('data', (d: Buffer) => { chunks.push(d) })
  await Promise.race([once(client, 'end'), once(client, 'close')])
  return Buffer.concat(chunks)
}

async function waitFor (what: string, cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const started = Date.now()
  while (!cond()) {
    if (Date.now() - started > timeoutMs) assert.fail(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const options = (upstream: HostPort, more: Partial<MqttForwarderOptions> = {}): MqttForwarderOptions =>
  ({ upstream, health: createUpstreamHealth({ target: 'test' }), connectTimeoutMs: 2000, firstPacketTimeoutMs: 3000, maxConnectBytes: 64 * 1024, usernameIsDeviceId: false, ...more })

/** The forwarder only reads, writes and closes the device stream, so a TCP socket stands in for TLS. */
const dc = (device: Socket): DeviceConnection => ({
  socket: device as unknown as TLSSocket,
  identity,
  sent: { leaf: new Uint8Array(), intermediates: [] },
  source: { address: '127.0.0.9', port: 40000 },
  destination: { address: '127.0.0.1', port: 8883 }
})

/** What the one upstream connection received, once it has `length` bytes. */
async function upstreamGot (up: Upstream, length: number): Promise<Buffer> {
  await waitFor('the upstream connection', () => up.connections.length === 1)
  const conn = up.connections[0]!
  await waitFor(`${length} bytes upstream`, () => Buffer.concat(conn.data).length >= length)
  await new Promise((resolve) => setTimeout(resolve, 20)) // and nothing more
  return Buffer.concat(conn.data)
}

test('a valid 3.1.1 CONNECT with clientId = deviceId opens the upstream, which gets CONNECT + the pipelined PINGREQ exactly', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  const bytes = Buffer.concat([connectV4(), pingreq()])
  client.write(bytes)
  const opened = await createMqttForwarder(options(up.target)).open(dc(device))
  assert.equal(opened.ok, true, JSON.stringify(opened))
  assert.ok(opened.ok)
  assert.deepEqual(await upstreamGot(up, bytes.length), bytes)
})

test('a CONNECT split across several small writes is reassembled', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  const bytes = connectV4()
  const opening = createMqttForwarder(options(up.target)).open(dc(device))
  // One byte, then the rest of the header, then the body in small pieces, the last byte alone, with pauses between.
  const pieces = [bytes.subarray(0, 1), bytes.subarray(1, 2), bytes.subarray(2, 7), bytes.subarray(7, 12), bytes.subarray(12, -1), bytes.subarray(-1)]
  assert.deepEqual(Buffer.concat(pieces), bytes)
  for (const p of pieces) {
    client.write(p)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const opened = await opening
  assert.ok(opened.ok, JSON.stringify(opened))
  assert.deepEqual(await upstreamGot(up, bytes.length), bytes)
})

test('an MQTT 5 CONNECT with clientId = deviceId opens the upstream', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  const bytes = connectV5()
  client.write(bytes)
  const opened = await createMqttForwarder(options(up.target)).open(dc(device))
  assert.ok(opened.ok, JSON.stringify(opened))
  assert.deepEqual(await upstreamGot(up, bytes.length), bytes)
})

test('bytes sent after the CONNECT, while the upstream is being opened, are kept and pumped through', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  const connectBytes = connectV4()
  client.write(connectBytes)
  const opening = createMqttForwarder(options(up.target)).open(dc(device))
  await new Promise((resolve) => setTimeout(resolve, 30))
  client.write(publish())
  const opened = await opening
  assert.ok(opened.ok, JSON.stringify(opened))
  await new Promise((resolve) => setTimeout(resolve, 30))
  client.write(pingreq())
  const pumping = opened.serve()
  const expected = Buffer.concat([connectBytes, publish(), pingreq()])
  await waitFor('the upstream connection', () => up.connections.length === 1)
  const conn = up.connections[0]!
  await waitFor('all device bytes upstream', () => Buffer.concat(conn.data).length >= expected.length)
  assert.deepEqual(Buffer.concat(conn.data), expected)

  // And the other way: what the broker sends reaches the device.
  const received: Buffer[] = []
  client.on('data', (d: Buffer) => { received.push(d) })
  conn.socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00]))
  await waitFor('the CONNACK at the device', () => Buffer.concat(received).length >= 4)
  assert.deepEqual(Buffer.concat(received), Buffer.from([0x20, 0x02, 0x00, 0x00]))
  client.end()
  assert.deepEqual(await pumping, { by: 'device' })
})

test('a clientId that is not the deviceId gets "identifier rejected" (v3.1.1: 20 02 00 02) and no upstream', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  const reply = readUntilEnd(client)
  client.write(connectV4('dev-2'))
  const opened = await createMqttForwarder(options(up.target)).open(dc(device))
  assert.equal(opened.ok, false)
  assert.ok(!opened.ok)
  assert.equal(opened.reason, 'mqtt_client_id_mismatch')
  assert.match(opened.detail, /dev-2/)
  assert.deepEqual(await reply, Buffer.from([0x20, 0x02, 0x00, 0x02]))
  assert.equal(up.connections.length, 0)
})

test('a clientId that is not the deviceId gets "identifier rejected" (v5: 20 03 00 85 00) and no upstream', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  const reply = readUntilEnd(client)
  client.write(connectV5('DEV-1'))
  const opened = await createMqttForwarder(options(up.target)).open(dc(device))
  assert.ok(!opened.ok)
  assert.equal(opened.reason, 'mqtt_client_id_mismatch')
  assert.deepEqual(await reply, Buffer.from([0x20, 0x03, 0x00, 0x85, 0x00]))
  assert.equal(up.connections.length, 0)
})

test('a first packet that is not CONNECT is mqtt_protocol_error', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const cases: Array<[string, Buffer]> = [
    ['PUBLISH', publish()],
    ['PINGREQ', pingreq()],
    ['garbage bytes', Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01])],
    ['an HTTP request line', Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n')],
    ['a CONNECT with reserved flags set', Buffer.concat([Buffer.from([0x11]), connectV4().subarray(1)])]
  ]
  for (const [what, bytes] of cases) {
    const { device, client } = await socketPair(t)
    client.write(bytes)
    const opened = await createMqttForwarder(options(up.target)).open(dc(device))
    assert.ok(!opened.ok, what)
    assert.equal(opened.reason, 'mqtt_protocol_error', what)
    assert.match(opened.detail, /not CONNECT/, what)
  }
  assert.equal(up.connections.length, 0)
})

test('a remaining length longer than 4 bytes is mqtt_protocol_error', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  client.write(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00]))
  const opened = await createMqttForwarder(options(up.target)).open(dc(device))
  assert.ok(!opened.ok)
  assert.equal(opened.reason, 'mqtt_protocol_error')
  assert.match(opened.detail, /malformed remaining length/)
  assert.equal(up.connections.length, 0)
})

test('a CONNECT that is well framed but not parseable is mqtt_protocol_error', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  client.write(Buffer.from([0x10, 0x04, 0x00, 0x02, 0x58, 0x58]))
  const opened = await createMqttForwarder(options(up.target)).open(dc(device))
  assert.ok(!opened.ok)
  assert.equal(opened.reason, 'mqtt_protocol_error')
  assert.equal(up.connections.length, 0)
})

test('a CONNECT larger than maxConnectBytes is refused as soon as its header says so', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const big = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'dev-1', clean: true, keepalive: 30, will: { topic: 'last/will', payload: Buffer.alloc(500, 0x61), qos: 0, retain: false } })
  {
    const { device, client } = await socketPair(t)
    // Only the fixed header: the size is known, no need to wait for the body (or the 3 s timeout).
    client.write(big.subarray(0, 3))
    const started = Date.now()
    const opened = await createMqttForwarder(options(up.target, { maxConnectBytes: 256 })).open(dc(device))
    assert.ok(!opened.ok)
    assert.equal(opened.reason, 'mqtt_protocol_error')
    assert.match(opened.detail, new RegExp(`CONNECT of ${big.length} bytes exceeds the 256-byte limit`))
    assert.ok(Date.now() - started < 1000)
  }
  {
    const { device, client } = await socketPair(t)
    client.write(big)
    const opened = await createMqttForwarder(options(up.target, { maxConnectBytes: big.length - 1 })).open(dc(device))
    assert.ok(!opened.ok)
    assert.equal(opened.reason, 'mqtt_protocol_error')
  }
  assert.equal(up.connections.length, 0)
  {
    // Exactly at the limit is allowed.
    const { device, client } = await socketPair(t)
    client.write(big)
    const opened = await createMqttForwarder(options(up.target, { maxConnectBytes: big.length })).open(dc(device))
    assert.ok(opened.ok, JSON.stringify(opened))
    assert.deepEqual(await upstreamGot(up, big.length), big)
  }
})

test('nothing sent within firstPacketTimeoutMs is mqtt_protocol_error', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  // Half a CONNECT does not count.
  client.write(connectV4().subarray(0, 5))
  const started = Date.now()
  const opened = await createMqttForwarder(options(up.target, { firstPacketTimeoutMs: 200 })).open(dc(device))
  const elapsed = Date.now() - started
  assert.ok(!opened.ok)
  assert.equal(opened.reason, 'mqtt_protocol_error')
  assert.match(opened.detail, /no CONNECT within 200 ms/)
  assert.ok(elapsed >= 190 && elapsed < 2000, `gave up after ${elapsed} ms`)
  assert.equal(up.connections.length, 0)
})

test('a device that hangs up before its CONNECT is mqtt_protocol_error without waiting for the timeout', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  const opening = createMqttForwarder(options(up.target, { firstPacketTimeoutMs: 5000 })).open(dc(device))
  const started = Date.now()
  client.end(connectV4().subarray(0, 4))
  const opened = await opening
  assert.ok(!opened.ok)
  assert.equal(opened.reason, 'mqtt_protocol_error')
  assert.match(opened.detail, /closed/)
  assert.ok(Date.now() - started < 2000)
  assert.equal(up.connections.length, 0)
})

test('an upstream that refuses the connection is upstream_unavailable', { timeout: 10_000 }, async (t) => {
  const closed = createServer()
  const port = await listen(closed)
  await closeServer(closed)
  const { device, client } = await socketPair(t)
  client.write(connectV4())
  const opened = await createMqttForwarder(options({ host: '127.0.0.1', port })).open(dc(device))
  assert.ok(!opened.ok)
  assert.equal(opened.reason, 'upstream_unavailable')
  assert.match(opened.detail, new RegExp(`127\\.0\\.0\\.1:${port}`))
})

test('username policy: the broker sees the deviceId as username (3.1.1 and 5), whatever the device sent; the password and the rest are kept', { timeout: 10_000 }, async (t) => {
  for (const protocolVersion of [4, 5] as const) {
    const up = await startUpstream(t)
    const { device, client } = await socketPair(t)
    const sent: mqttPacket.IConnectPacket = { cmd: 'connect', protocolId: 'MQTT', protocolVersion, clientId: 'dev-1', clean: true, keepalive: 42, username: 'dev-2', password: Buffer.from('s3cret'), will: { topic: 'w/dev-1', payload: Buffer.from('bye'), qos: 1, retain: false }, ...(protocolVersion === 5 ? { properties: { sessionExpiryInterval: 60 } } : {}) }
    client.write(Buffer.concat([mqttPacket.generate(sent), pingreq()]))
    const opened = await createMqttForwarder(options(up.target, { usernameIsDeviceId: true })).open(dc(device))
    assert.ok(opened.ok, JSON.stringify(opened))
    await waitFor('the upstream connection', () => up.connections.length === 1)
    const got = parseAll(await upstreamGot(up, 2 + mqttPacket.generate({ ...sent, username: 'dev-1' }).length))
    assert.equal(got.length, 2)
    const connect = got[0] as mqttPacket.IConnectPacket
    assert.equal(connect.username, 'dev-1', `v${protocolVersion}`)
    assert.equal(connect.clientId, 'dev-1')
    assert.equal(connect.password?.toString(), 's3cret')
    assert.equal(connect.keepalive, 42)
    assert.equal(connect.will?.topic, 'w/dev-1')
    if (protocolVersion === 5) assert.equal(connect.properties?.sessionExpiryInterval, 60)
    assert.equal(got[1]?.cmd, 'pingreq')
  }
})

test('username policy: a CONNECT without a username gets one', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  client.write(connectV4())
  const opened = await createMqttForwarder(options(up.target, { usernameIsDeviceId: true })).open(dc(device))
  assert.ok(opened.ok)
  const [connect] = parseAll(await upstreamGot(up, connectV4().length + 7))
  assert.equal((connect as mqttPacket.IConnectPacket).username, 'dev-1')
})

test('a second CONNECT is a protocol violation: closed (MQTT 5: DISCONNECT 0x82 first) and never forwarded, pipelined or later', { timeout: 10_000 }, async (t) => {
  for (const [version, connect, farewell] of [[4, connectV4, Buffer.alloc(0)], [5, connectV5, Buffer.from([0xe0, 0x02, 0x82, 0x00])]] as const) {
    // Later, while being served.
    {
      const up = await startUpstream(t)
      const { device, client } = await socketPair(t)
      const reply = readUntilEnd(client)
      client.write(connect())
      const opened = await createMqttForwarder(options(up.target)).open(dc(device))
      assert.ok(opened.ok)
      const serving = opened.serve()
      await upstreamGot(up, connect().length)
      // A PUBLISH split so its header straddles two writes, then the second CONNECT.
      const p = publish()
      client.write(p.subarray(0, 1))
      await new Promise((resolve) => setTimeout(resolve, 20))
      client.write(Buffer.concat([p.subarray(1), connect('dev-2')]))
      const ended = await serving
      assert.ok(ended.by === 'protocol', `v${version}: ${JSON.stringify(ended)}`)
      assert.match(ended.detail, /second CONNECT/)
      assert.deepEqual(await reply, farewell)
      assert.deepEqual(Buffer.concat(up.connections[0]!.data), Buffer.concat([connect(), p]), 'the broker got the PUBLISH, not the second CONNECT')
    }
    // Pipelined right behind the first: refused before the broker is contacted.
    {
      const up = await startUpstream(t)
      const { device, client } = await socketPair(t)
      const reply = readUntilEnd(client)
      client.write(Buffer.concat([connect(), connect('dev-2')]))
      const opened = await createMqttForwarder(options(up.target)).open(dc(device))
      assert.ok(!opened.ok)
      assert.equal(opened.reason, 'mqtt_protocol_error')
      assert.deepEqual(await reply, farewell)
      assert.equal(up.connections.length, 0)
    }
  }
})

test('packets only a server sends (CONNACK, SUBACK, PINGRESP) are protocol violations from a device', { timeout: 10_000 }, async (t) => {
  for (const bytes of [Buffer.from([0x20, 0x02, 0x00, 0x00]), Buffer.from([0x90, 0x03, 0x00, 0x01, 0x00]), Buffer.from([0xd0, 0x00])]) {
    const up = await startUpstream(t)
    const { device, client } = await socketPair(t)
    client.write(connectV4())
    const opened = await createMqttForwarder(options(up.target)).open(dc(device))
    assert.ok(opened.ok)
    const serving = opened.serve()
    client.write(bytes)
    const ended = await serving
    assert.ok(ended.by === 'protocol' && /only a server may send/.test(ended.detail), JSON.stringify(ended))
  }
})

test('upstream down: upstream_unavailable, no CONNACK (clients retry a closed connection); later devices are refused at once without a connection attempt', { timeout: 10_000 }, async (t) => {
  const closed = createServer()
  const port = await listen(closed)
  await closeServer(closed)
  let attempts = 0
  const health = createUpstreamHealth({ target: 'test', firstBackoffMs: 60_000, onAttemptFailed: () => { attempts++ } })
  const forwarder = createMqttForwarder(options({ host: '127.0.0.1', port }, { health }))
  for (const connect of [connectV4, connectV5, connectV4]) {
    const { device, client } = await socketPair(t)
    client.write(connect())
    const opened = await forwarder.open(dc(device))
    assert.ok(!opened.ok)
    assert.equal(opened.reason, 'upstream_unavailable')
    assert.equal(device.writableLength + device.bytesWritten, 0, 'nothing was written to the device')
  }
  assert.equal(attempts, 1, 'one real attempt; the others failed fast')
  assert.equal(health.isUp(), false)
})

test('with a preamble (a PROXY header), the broker gets it first, then the CONNECT', { timeout: 10_000 }, async (t) => {
  const up = await startUpstream(t)
  const { device, client } = await socketPair(t)
  client.write(connectV4())
  const preamble = Buffer.from('PREAMBLE:')
  const opened = await createMqttForwarder(options(up.target, { preamble: (d) => Buffer.concat([preamble, Buffer.from(d.identity.deviceId)]) })).open(dc(device))
  assert.ok(opened.ok)
  const expected = Buffer.concat([preamble, Buffer.from('dev-1'), connectV4()])
  assert.deepEqual(await upstreamGot(up, expected.length), expected)
})

function parseAll (bytes: Buffer): mqttPacket.Packet[] {
  const parser = mqttPacket.parser({ protocolVersion: bytes[8] === 5 ? 5 : 4 })
  const out: mqttPacket.Packet[] = []
  parser.on('packet', (p: mqttPacket.Packet) => { out.push(p) })
  parser.parse(bytes)
  return out
}

test('a crafted CONNECT (junk inside its remaining length) never reaches the upstream; an MQTT 5 device gets CONNACK 0x81', { timeout: 10_000 }, async (t) => {
  for (const version of [4, 5] as const) {
    const up = await startUpstream(t)
    const { device, client } = await socketPair(t)
    const plain = version === 4 ? connectV4() : connectV5()
    const crafted = Buffer.concat([plain, Buffer.alloc(12, 0x41)])
    crafted[1] = (crafted[1] as number) + 12
    client.write(crafted)
    const reply = readUntilEnd(client)
    const opened = await createMqttForwarder(options(up.target)).open(dc(device))
    assert.ok(!opened.ok)
    assert.equal(opened.reason, 'mqtt_protocol_error')
    assert.deepEqual(await reply, version === 5 ? Buffer.from([0x20, 0x03, 0x00, 0x81, 0x00]) : Buffer.alloc(0))
    assert.equal(up.connections.length, 0, 'the upstream was contacted')
  }
})
