// What this proves: the guard frames a device's MQTT stream however it is cut into chunks (headers
// split byte by byte, 1-4 byte remaining lengths, bodies spanning many chunks) without ever
// flagging a client's packets, and it flags the first CONNECT (or server-only packet) after the
// first at exactly its first byte, so everything before it, and nothing after, is forwarded.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqttPacket from 'mqtt-packet'
import { mqttStreamGuard } from '../mqtt-stream-guard.js'

/** A deterministic PRNG so a failure can be replayed. */
function rng (seed: number): () => number {
  let x = seed
  return () => { x = (x * 1103515245 + 12345) & 0x7fffffff; return x / 0x80000000 }
}

function clientPacket (r: () => number, version: 4 | 5): Buffer {
  const k = Math.floor(r() * 6)
  const payloadSize = [0, 10, 127, 128, 16_383, 16_384, 2_097_152][Math.floor(r() * 7)] ?? 0
  switch (k) {
    case 0: return mqttPacket.generate({ cmd: 'publish', topic: 't/x', payload: Buffer.alloc(payloadSize, 0x61), qos: 0, retain: false, dup: false }, { protocolVersion: version })
    case 1: return mqttPacket.generate({ cmd: 'publish', topic: 't/y', payload: Buffer.alloc(payloadSize % 300), qos: 1, messageId: 7, retain: false, dup: false }, { protocolVersion: version })
    case 2: return mqttPacket.generate({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'a/#', qos: 1 }] }, { protocolVersion: version })
    case 3: return mqttPacket.generate({ cmd: 'puback', messageId: 9 }, { protocolVersion: version })
    case 4: return mqttPacket.generate({ cmd: 'pingreq' })
    default: return mqttPacket.generate({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['a/#'] }, { protocolVersion: version })
  }
}

function chunks (bytes: Buffer, r: () => number): Buffer[] {
  const out: Buffer[] = []
  for (let i = 0; i < bytes.length;) {
    const n = r() < 0.3 ? 1 : 1 + Math.floor(r() * (r() < 0.5 ? 8 : 70_000))
    out.push(bytes.subarray(i, i + n))
    i += n
  }
  return out
}

test('client packets in any chunking pass; a second CONNECT is caught at its first byte', () => {
  for (let seed = 1; seed <= 60; seed++) {
    const r = rng(seed)
    const version = r() < 0.5 ? 4 : 5
    const before = Array.from({ length: 1 + Math.floor(r() * 12) }, () => clientPacket(r, version))
    const intruder = r() < 0.5
      ? mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: 'other', clean: true, keepalive: 10 })
      : Buffer.from([0x20, 0x02, 0x00, 0x00])
    const stream = Buffer.concat([...before, intruder, clientPacket(r, version)])
    const guard = mqttStreamGuard(version)
    let forwarded = 0
    let caught: { at: number, detail: string } | undefined
    for (const c of chunks(stream, r)) {
      const bad = guard(c)
      if (bad === undefined) { forwarded += c.length; continue }
      caught = bad
      forwarded += bad.at
      break
    }
    assert.ok(caught !== undefined, `seed ${seed}: the intruder was not caught`)
    assert.equal(forwarded, Buffer.concat(before).length, `seed ${seed}: forwarded exactly the packets before it`)
    assert.match(caught.detail, /second CONNECT|only a server may send/)
  }
})

test('MQTT 5 gets DISCONNECT 0x82 as farewell; 3.1.1 none; AUTH is allowed only in 5', () => {
  const connect = Buffer.from([0x10, 0x00])
  assert.deepEqual(mqttStreamGuard(5)(connect)?.farewell, Buffer.from([0xe0, 0x02, 0x82, 0x00]))
  assert.equal(mqttStreamGuard(4)(connect)?.farewell, undefined)
  assert.equal(mqttStreamGuard(5)(Buffer.from([0xf0, 0x00])), undefined)
  assert.match(mqttStreamGuard(4)(Buffer.from([0xf0, 0x00]))?.detail ?? '', /AUTH/)
})

test('a remaining length of more than 4 bytes is caught, even split across chunks', () => {
  const guard = mqttStreamGuard(4)
  assert.equal(guard(Buffer.from([0x30, 0xff, 0xff])), undefined)
  assert.match(guard(Buffer.from([0xff, 0xff, 0x01]))?.detail ?? '', /malformed remaining length/)
})
