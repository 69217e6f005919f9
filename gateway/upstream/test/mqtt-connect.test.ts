// What this proves: the broker only ever gets the CONNECT certgate parsed and checked, encoded
// again from its fields — never the device's own bytes. Hand-crafted CONNECTs that two parsers
// could read differently (bytes after the last field inside the remaining length, a repeated
// MQTT 5 property, a non-minimal remaining length, invalid UTF-8, U+0000 in a string) are refused
// as malformed (MQTT 5 devices get CONNACK 0x81, MQTT 3.1.1 devices are closed: it has no code
// for it) and nothing reaches the upstream; well-formed ones, from mqtt.js's encoder or with
// their properties in another order, reach it as exactly the re-encoded packet.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqttPacket from 'mqtt-packet'
import { admitConnect, frameConnect } from '../mqtt-connect.js'

type Connect = Omit<mqttPacket.IConnectPacket, 'cmd'>
const packet = (fields: Partial<Connect> = {}): mqttPacket.IConnectPacket =>
  ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'dev-1', clean: true, keepalive: 30, ...fields })
const v5 = (fields: Partial<Connect> = {}): mqttPacket.IConnectPacket =>
  packet({ protocolVersion: 5, properties: { sessionExpiryInterval: 60, receiveMaximum: 10 }, ...fields })

/** Adds `extra` bytes at `at` and fixes the (one-byte) remaining length, and the v5 property length if `propsAt`. */
function splice (bytes: Buffer, at: number, extra: Buffer, propsAt?: number): Buffer {
  const out = Buffer.concat([bytes.subarray(0, at), extra, bytes.subarray(at)])
  out[1] = (out[1] as number) + extra.length
  if (propsAt !== undefined) out[propsAt] = (out[propsAt] as number) + extra.length
  return out
}

/** What admitConnect decides for `bytes` alone, as device dev-1. */
const admit = (bytes: Buffer, usernameIsDeviceId = false): ReturnType<typeof admitConnect> => {
  const framed = frameConnect(bytes, 65_536)
  assert.equal(framed.state, 'complete')
  return admitConnect(bytes, bytes.length, 'dev-1', usernameIsDeviceId)
}

test('crafted CONNECTs are refused as malformed, with CONNACK 0x81 for MQTT 5 and nothing for 3.1.1', () => {
  const plain4 = mqttPacket.generate(packet())
  const plain5 = mqttPacket.generate(v5())
  // In plain5: fixed header (2) + protocol name (6) + level, flags, keepalive (4) = 12: the property length.
  const propsAt = 12
  assert.equal(plain5[propsAt], 8)
  const withUser = mqttPacket.generate(packet({ username: 'alice' }))
  const cases: Array<[string, Buffer, 4 | 5]> = [
    ['12 bytes after the clientId inside the remaining length (3.1.1)', splice(plain4, plain4.length, Buffer.alloc(12, 0x41)), 4],
    ['bytes after the clientId inside the remaining length (5)', splice(plain5, plain5.length, Buffer.from('junk')), 5],
    ['sessionExpiryInterval twice (5)', splice(plain5, propsAt + 1, Buffer.from([0x11, 0, 0, 0, 9]), propsAt), 5],
    ['a remaining length in two bytes where one does', Buffer.concat([Buffer.from([0x10, (plain4[1] as number) | 0x80, 0x00]), plain4.subarray(2)]), 4],
    ['invalid UTF-8 in the username', Buffer.concat([withUser.subarray(0, -5), Buffer.from([0x61, 0xc3, 0x28, 0x61, 0x61])]), 4],
    ['U+0000 in the username', Buffer.concat([withUser.subarray(0, -5), Buffer.from('al\u0000ce')]), 4]
  ]
  for (const [what, bytes, version] of cases) {
    const r = admit(bytes)
    assert.equal(r.ok, false, what)
    assert.ok(!r.ok)
    assert.equal(r.reason, 'mqtt_protocol_error', what)
    assert.match(r.detail, /malformed CONNECT/, what)
    assert.deepEqual(r.reply, version === 5 ? Buffer.from([0x20, 0x03, 0x00, 0x81, 0x00]) : undefined, what)
  }
})

test('well-formed CONNECTs reach the upstream as exactly the packet encoded again from their fields', () => {
  const will = { topic: 'devices/dev-1/status', payload: Buffer.from('gone'), qos: 1 as const, retain: true, properties: { willDelayInterval: 5, userProperties: { a: ['1', '2'] } } }
  const full5 = mqttPacket.generate(v5({ username: 'u', password: Buffer.from([0, 1, 2]), will, properties: { sessionExpiryInterval: 60, userProperties: { k: 'v' } } }))
  const plain5 = mqttPacket.generate(v5())
  // The same two properties in the other order: a different byte string with the same fields.
  const reordered = Buffer.concat([plain5.subarray(0, 13), plain5.subarray(18, 21), plain5.subarray(13, 18), plain5.subarray(21)])
  assert.notDeepEqual(reordered, plain5)
  for (const [what, bytes] of [['3.1.1', mqttPacket.generate(packet())], ['5 with will, password and user properties', full5], ['5 with properties reordered', reordered]] as const) {
    const r = admit(bytes)
    assert.ok(r.ok, what)
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    let parsed: mqttPacket.Packet | undefined
    parser.on('packet', (p: mqttPacket.Packet) => { parsed = p })
    parser.parse(bytes)
    assert.ok(parsed !== undefined)
    assert.deepEqual(Buffer.concat(r.forward), mqttPacket.generate(parsed), what)
  }
  // With the username policy the forwarded CONNECT is re-encoded with the deviceId as username.
  const renamed = admit(mqttPacket.generate(packet({ username: 'mallory', password: Buffer.from('pw') })), true)
  assert.ok(renamed.ok)
  assert.deepEqual(Buffer.concat(renamed.forward), mqttPacket.generate(packet({ username: 'dev-1', password: Buffer.from('pw') })))
})
