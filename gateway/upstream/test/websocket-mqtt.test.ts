// What this proves: the WebSocket MQTT filter decodes a device's masked frames however they are
// chunked (7-, 16- and 64-bit lengths, headers split byte by byte, fragmented messages, pings in
// between) into the MQTT stream, lets through exactly that stream re-framed for the upstream once
// the CONNECT's clientId is the deviceId (username rewritten when configured), passes control
// frames as they came, and ends the connection, telling the device why, on a clientId that is not
// the deviceId, a second CONNECT, a text frame, a reserved bit or an unmasked frame.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import mqttPacket from 'mqtt-packet'
import { webSocketMqttFilter } from '../websocket-mqtt.js'
import type { StreamFilter } from '../forwarder.js'

function frame (opcode: number, payload: Buffer, opts: { fin?: boolean, masked?: boolean, rsv?: number } = {}): Buffer {
  const n = payload.length
  const b0 = ((opts.fin ?? true) ? 0x80 : 0) | (opts.rsv ?? 0) | opcode
  const m = (opts.masked ?? true) ? 0x80 : 0
  const head = n < 126 ? Buffer.from([b0, m | n]) : n < 65536 ? Buffer.from([b0, m | 126, n >> 8, n & 0xff]) : Buffer.concat([Buffer.from([b0, m | 127]), Buffer.alloc(8)])
  if (n >= 65536) head.writeBigUInt64BE(BigInt(n), 2)
  if (m === 0) return Buffer.concat([head, payload])
  const key = randomBytes(4)
  const masked = Buffer.from(payload.map((b, i) => b ^ (key[i & 3] as number)))
  return Buffer.concat([head, key, masked])
}

/** Decodes certgate's frames to the upstream: returns the MQTT bytes and the control frames. */
function decode (bytes: Buffer): { mqtt: Buffer, control: number[] } {
  const mqtt: Buffer[] = []
  const control: number[] = []
  for (let i = 0; i < bytes.length;) {
    const b0 = bytes[i] as number
    const len7 = (bytes[i + 1] as number) & 0x7f
    let len = len7
    let at = i + 2
    if (len7 === 126) { len = bytes.readUInt16BE(at); at += 2 } else if (len7 === 127) { len = Number(bytes.readBigUInt64BE(at)); at += 8 }
    const key = bytes.subarray(at, at + 4)
    at += 4
    const payload = Buffer.from(bytes.subarray(at, at + len).map((b, k) => b ^ (key[k & 3] as number)))
    if ((b0 & 0x0f) >= 0x8) control.push(b0 & 0x0f)
    else mqtt.push(payload)
    i = at + len
  }
  return { mqtt: Buffer.concat(mqtt), control }
}

function run (filter: StreamFilter, stream: Buffer, chunkSizes: () => number): { upstream: Buffer, ended?: { detail: string, farewell?: Buffer | undefined } } {
  const out: Buffer[] = []
  for (let i = 0; i < stream.length;) {
    const n = Math.max(1, chunkSizes())
    const r = filter(stream.subarray(i, i + n))
    out.push(...r.out)
    i += n
    if (r.detail !== undefined) return { upstream: Buffer.concat(out), ended: { detail: r.detail, farewell: r.farewell } }
  }
  return { upstream: Buffer.concat(out) }
}

const connect = (clientId: string, version: 4 | 5 = 4, username?: string): Buffer =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId, clean: true, keepalive: 30, ...(username === undefined ? {} : { username }) })
/** An MQTT 5 CONNECT for dev-1 with 4 bytes after its last field, inside its remaining length. */
const junkConnect = (): Buffer => {
  const c = Buffer.concat([connect('dev-1', 5), Buffer.from('junk')])
  c[1] = (c[1] as number) + 4
  return c
}
const publish = (size: number): Buffer => mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(size, 0x62), qos: 0, retain: false, dup: false })
const filterFor = (refusals: string[] = [], usernameIsDeviceId = false): StreamFilter =>
  webSocketMqttFilter({ deviceId: 'dev-1', usernameIsDeviceId, maxConnectBytes: 65_536, onRefused: (reason) => refusals.push(reason) })

function rng (seed: number): () => number {
  let x = seed
  return () => { x = (x * 1103515245 + 12345) & 0x7fffffff; return x / 0x80000000 }
}

test('any chunking: the upstream gets exactly the MQTT stream, control frames passed through', () => {
  for (let seed = 1; seed <= 25; seed++) {
    const r = rng(seed)
    const packets = [connect('dev-1'), publish(10), publish(300), publish(70_000), mqttPacket.generate({ cmd: 'pingreq' })]
    const mqttStream = Buffer.concat(packets)
    // Split the MQTT stream into messages at arbitrary points; some fragmented; a ping in between.
    const frames: Buffer[] = []
    for (let i = 0; i < mqttStream.length;) {
      const n = 1 + Math.floor(r() * 90_000)
      const part = mqttStream.subarray(i, i + n)
      if (r() < 0.3 && part.length > 2) {
        frames.push(frame(0x2, part.subarray(0, 1), { fin: false }), frame(0x9, Buffer.from('hi')), frame(0x0, part.subarray(1)))
      } else frames.push(frame(0x2, part))
      i += n
    }
    const result = run(filterFor(), Buffer.concat(frames), () => r() < 0.3 ? 1 : Math.floor(r() * 20_000))
    assert.equal(result.ended, undefined, `seed ${seed}: ${result.ended?.detail ?? ''}`)
    const { mqtt } = decode(result.upstream)
    assert.ok(mqtt.equals(mqttStream), `seed ${seed}: the MQTT stream changed`)
  }
})

test('the username policy rewrites the CONNECT inside the frames', () => {
  const result = run(filterFor([], true), frame(0x2, connect('dev-1', 5, 'dev-2')), () => 7)
  const parser = mqttPacket.parser({ protocolVersion: 5 })
  let seen: mqttPacket.Packet | undefined
  parser.on('packet', (p: mqttPacket.Packet) => { seen = p })
  parser.parse(decode(result.upstream).mqtt)
  assert.equal(seen?.cmd, 'connect')
  assert.equal(seen.username, 'dev-1')
})

test('refusals: the device is told (CONNACK or DISCONNECT in a frame, then a close frame), nothing reaches the upstream', () => {
  const cases: Array<[string, Buffer, string, RegExp]> = [
    // CONNACK "identifier rejected" in a binary frame, then close 1008 (policy violation).
    ['another clientId', frame(0x2, connect('dev-2')), 'mqtt_client_id_mismatch', /^82042002000288[0-9a-f]{2}03f0/],
    // Close 1002 (protocol error), the reason as its text.
    ['a first packet that is not CONNECT', frame(0x2, publish(3)), 'mqtt_protocol_error', /^88[0-9a-f]{2}03ea/],
    // A CONNECT with bytes its fields do not account for: an MQTT 5 device gets CONNACK 0x81 "Malformed Packet".
    ['a crafted CONNECT (junk inside its remaining length)', frame(0x2, junkConnect()), 'mqtt_protocol_error', /^820520030081008[0-9a-f]/],
    ['a text frame', frame(0x1, Buffer.from('hello')), 'mqtt_protocol_error', /^88[0-9a-f]{2}03ea/],
    ['a reserved bit (compression)', frame(0x2, connect('dev-1'), { rsv: 0x40 }), 'mqtt_protocol_error', /^88[0-9a-f]{2}03ea/],
    ['an unmasked frame', frame(0x2, connect('dev-1'), { masked: false }), 'mqtt_protocol_error', /^88[0-9a-f]{2}03ea/]
  ]
  for (const [what, bytes, reason, farewell] of cases) {
    const refusals: string[] = []
    const result = run(filterFor(refusals), bytes, () => 3)
    assert.ok(result.ended !== undefined, what)
    assert.deepEqual(refusals, [reason], what)
    assert.equal(result.upstream.length, 0, what)
    assert.match(result.ended.farewell?.toString('hex') ?? '', farewell, what)
  }
})

test('a second CONNECT inside the frames: what came before it passes, it does not (MQTT 5 gets DISCONNECT 0x82)', () => {
  const refusals: string[] = []
  const before = Buffer.concat([connect('dev-1', 5), publish(20)])
  const result = run(filterFor(refusals), Buffer.concat([frame(0x2, before), frame(0x2, Buffer.concat([publish(5).subarray(0, 3)])), frame(0x2, Buffer.concat([publish(5).subarray(3), connect('dev-2', 5)]))]), () => 1000)
  assert.deepEqual(refusals, ['mqtt_protocol_error'])
  assert.match(result.ended?.detail ?? '', /second CONNECT/)
  assert.ok(decode(result.upstream).mqtt.equals(Buffer.concat([before, publish(5)])))
  assert.match(result.ended?.farewell?.toString('hex') ?? '', /^8204e0028200/)
})
