// What this proves: the bytes certgate itself sends MQTT devices are the spec's (CONNACK 5 / 0x87
// for a refusal, none for a transient one, DISCONNECT reason codes per close reason, as mqtt-packet
// parses them); the packet-boundary tracker knows, however the broker's stream is split into
// chunks, whether a DISCONNECT may be written without landing inside a packet; and a broker's
// refusing CONNACK is recognised (3.1.1 and 5), a successful one is not.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqttPacket from 'mqtt-packet'
import { brokerConnackWatch, disconnectPacket, refusalAnswer, refusingConnack } from '../mqtt-replies.js'
import { mqttPacketBoundary } from '../mqtt-packet-boundary.js'

function parse (bytes: Buffer, protocolVersion: number): mqttPacket.Packet {
  const parser = mqttPacket.parser({ protocolVersion })
  let packet: mqttPacket.Packet | undefined
  parser.on('packet', (p: mqttPacket.Packet) => { packet = p })
  parser.on('error', (e: Error) => { throw e })
  parser.parse(bytes)
  assert.ok(packet !== undefined)
  return packet
}

test('refusals: not authorized at the CONNECT\'s protocol level; transient ones and answered ones get nothing', () => {
  assert.equal(refusalAnswer('device_disabled'), 'not_authorized')
  assert.equal(refusalAnswer('chain_untrusted'), 'not_authorized')
  for (const r of ['upstream_unavailable', 'overloaded', 'registry_unavailable', 'validator_failed', 'mqtt_protocol_error', 'mqtt_client_id_mismatch'] as const) assert.equal(refusalAnswer(r), 'none', r)
  const v4 = parse(refusingConnack('not_authorized', 4), 4) as mqttPacket.IConnackPacket
  assert.equal(v4.cmd, 'connack')
  assert.equal(v4.returnCode, 5)
  const v5 = parse(refusingConnack('not_authorized', 5), 5) as mqttPacket.IConnackPacket
  assert.equal(v5.reasonCode, 0x87)
  assert.equal((parse(refusingConnack('bad_credentials', 4), 4) as mqttPacket.IConnackPacket).returnCode, 4)
  assert.equal((parse(refusingConnack('bad_credentials', 5), 5) as mqttPacket.IConnackPacket).reasonCode, 0x86)
})

test('DISCONNECT reason codes per close reason', () => {
  const code = (r: Parameters<typeof disconnectPacket>[0]): number | undefined => (parse(disconnectPacket(r), 5) as mqttPacket.IDisconnectPacket).reasonCode
  assert.equal(code('device_disabled'), 0x98)
  assert.equal(code('device_deleted'), 0x98)
  assert.equal(code('ca_removed'), 0x98)
  assert.equal(code('shutdown'), 0x8b)
  assert.equal(code('idle'), 0x8d)
  assert.equal(code('max_age'), 0xa0)
})

test('packet boundary: whole packets in any chunking are a boundary; a packet cut short is not', () => {
  const stream = Buffer.concat([
    mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }),
    mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(300, 7), qos: 0, retain: false, dup: false }),
    mqttPacket.generate({ cmd: 'pingresp' })
  ])
  const ends = new Set([4, 4 + 300 + 3 + 3, stream.length]) // CONNACK 4 bytes; PUBLISH 2-byte length
  for (let cut = 1; cut < stream.length; cut++) {
    const b = mqttPacketBoundary()
    b.feed(stream.subarray(0, cut))
    assert.equal(b.atBoundary(), ends.has(cut), `after ${cut} bytes`)
    b.feed(stream.subarray(cut))
    assert.equal(b.atBoundary(), true)
  }
  const lost = mqttPacketBoundary()
  lost.feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))
  assert.equal(lost.atBoundary(), false, 'a remaining length over 4 bytes loses the framing for good')
})

test('a broker\'s refusing CONNACK is recognised, split or whole; an accepting one is not', () => {
  const w4 = brokerConnackWatch()
  const refused4 = mqttPacket.generate({ cmd: 'connack', returnCode: 5, sessionPresent: false })
  w4.feed(refused4.subarray(0, 1))
  w4.feed(refused4.subarray(1))
  assert.match(w4.refusal() ?? '', /return code 0x05 \(not authorized\)/)
  const w5 = brokerConnackWatch()
  w5.feed(mqttPacket.generate({ cmd: 'connack', reasonCode: 0x84, sessionPresent: false }, { protocolVersion: 5 }))
  assert.match(w5.refusal() ?? '', /reason 0x84 \(Unsupported Protocol Version\)/)
  const ok = brokerConnackWatch()
  ok.feed(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }))
  assert.equal(ok.refusal(), undefined)
})
