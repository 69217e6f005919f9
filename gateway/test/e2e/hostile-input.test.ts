// What this proves: hostile input on the device port is answered with a clear refusal and a
// metric, and the gateway keeps serving: garbage bytes, plain HTTP, a truncated ClientHello, a
// client that stalls the handshake (timeout), a 100-certificate chain, a 64 KB certificate, CNs
// holding NUL, newline or non-ASCII characters, several CN attributes, and CNs of 64, 65 and
// 129 characters (the first two are valid deviceIds, the last is not). After all of it a good
// device still connects.
import 'reflect-metadata' // before @peculiar/x509
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect as netConnect } from 'node:net'
import * as x509 from '@peculiar/x509'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness, type LogLine } from '../support/harness.js'
import { connectDevice } from '../support/device.js'

let h: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  h = await startHarness({ CERTGATE_HANDSHAKE_TIMEOUT_MS: '400' })
  pki = await issueHierarchy()
  await h.registerCa('root', pki.root)
})
after(async () => { await h.close() })

const since = (n: number) => (pred: (l: LogLine) => boolean) => async () => await h.waitForLog((l) => h.logs.indexOf(l) >= n && pred(l))

async function rawSend (bytes: Buffer | string, holdMs = 100): Promise<void> {
  await new Promise<void>((resolve) => {
    const s = netConnect(h.gw.device.port, '127.0.0.1', () => { s.write(bytes); setTimeout(() => { s.destroy(); resolve() }, holdMs) })
    s.on('error', () => { resolve() })
    s.on('close', () => { resolve() })
  })
}

const handshakeFailure = async (bucket: string, from: number): Promise<void> => {
  await since(from)((l) => l.event === 'handshake_failed' && (l as unknown as { bucket: string }).bucket === bucket)()
}

test('garbage bytes and plain HTTP on the TLS port are counted as not TLS', async () => {
  let n = h.logs.length
  await rawSend(Buffer.from('\x16\x03\x01\xff\xff' + 'garbage'.repeat(50), 'latin1'))
  await rawSend('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  await handshakeFailure('not_tls', n)
  n = h.logs.length
  await rawSend(Buffer.from('\x00\x01\x02\x03 definitely not tls'))
  await since(n)((l) => l.event === 'handshake_failed')()
})

test('a truncated ClientHello and a client that stalls the handshake are cut off', async () => {
  const n = h.logs.length
  // The first bytes of a ClientHello (record header announcing 512 bytes), then silence:
  // the handshake timeout must fire.
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
  const started = Date.now()
  await rawSend(hello, 900)
  await handshakeFailure('timeout', n)
  assert.ok(Date.now() - started < 2000)
})

test('a 100-certificate chain is refused as chain_too_long', async () => {
  await h.addDevice('long-1')
  const leaf = await issue({ cn: 'long-1', issuer: pki.int2 })
  const filler = await issue({ cn: 'filler CA', ca: true })
  const chain = [pki.int2, pki.int1, ...Array.from({ length: 97 }, () => filler)]
  const n = h.logs.length
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain }))
  const l = await since(n)((x) => x.event === 'refused' && x.deviceId === 'long-1')()
  assert.equal(l.reason, 'chain_too_long')
})

test('a 64 KB certificate is refused, not parsed', async () => {
  await h.addDevice('fat-1')
  const blob = new x509.Extension('1.3.6.1.4.1.55555.1', false, new Uint8Array(64 * 1024).fill(0x41))
  const leaf = await issue({ cn: 'fat-1', issuer: pki.int2, extraExtensions: [blob] })
  assert.ok(leaf.der.length > 64 * 1024)
  const n = h.logs.length
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] }))
  // OpenSSL accepts it in the handshake; certgate's parser refuses it by size before parsing.
  const l = await since(n)((x) => x.event === 'refused')()
  assert.equal(l.reason, 'malformed_certificate')
  assert.match(l.detail ?? '', /limit 16384/)
})

test('CNs with NUL, newline, non-ASCII, several CNs and a 129-character CN are refused; 64 and 65 characters are fine', async () => {
  const cases: Array<[string | string[], string]> = [
    ['bad\u0000id', 'invalid_device_id'],
    ['bad\nid', 'invalid_device_id'],
    ['caf\u00e9', 'invalid_device_id'],
    [['twin-a', 'twin-b'], 'ambiguous_device_id'],
    ['x'.repeat(129), 'invalid_device_id']
  ]
  for (const [cn, reason] of cases) {
    const n = h.logs.length
    const leaf = await issue({ cn, issuer: pki.int2 })
    await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1], clientId: 'x' }))
    const l = await since(n)((x) => x.event === 'refused')()
    assert.equal(l.reason, reason, JSON.stringify(cn))
    assert.ok(!(l.detail ?? '').includes('\n') || reason !== 'invalid_device_id', 'the log detail does not carry raw control characters')
  }
  for (const len of [64, 65]) {
    const id = 'd'.repeat(len)
    await h.addDevice(id)
    const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: id, issuer: pki.int2 }), chain: [pki.int2, pki.int1] })
    await c.endAsync()
  }
})

test('after all of it the gateway is healthy and a good device connects', async () => {
  assert.equal((await fetch(`http://127.0.0.1:${h.gw.admin.port}/healthz`)).status, 200)
  await h.addDevice('fine-1')
  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'fine-1', issuer: pki.int2 }), chain: [pki.int2, pki.int1] })
  await c.endAsync()
  const metrics = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
  for (const reason of ['chain_too_long', 'invalid_device_id', 'ambiguous_device_id']) {
    assert.match(metrics, new RegExp(`certgate_auth_total\\{listener="device",result="refused",reason="${reason}"\\} [1-9]`))
  }
  assert.match(metrics, /certgate_handshakes_failed_total\{listener="device",bucket="timeout"\} [1-9]/)
})
