// What this proves: PROXY headers from a balancer parse strictly: v1 TCP4/TCP6/UNKNOWN lines and
// v2 PROXY (TCP over IPv4/IPv6, UNSPEC) and LOCAL headers, delivered whole or byte by byte; every
// malformed variant (bad signature, version, family, addresses, ports, overlong line or TLV block,
// truncated address block) is refused with a reason, never guessed at. Headers certgate itself
// writes (v2, with TLVs) are read back with their addresses.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseProxyHeader, startsWithProxyHeader, V2_MAX, type ParsedHeader } from '../read-header.js'
import { encodeV2 } from '../v2-header.js'

function whole (bytes: Buffer): ParsedHeader {
  // Every proper prefix is 'more' (or already a clear refusal), never a wrong success.
  for (let n = 0; n < bytes.length; n++) {
    const p = parseProxyHeader(bytes.subarray(0, n))
    assert.notEqual(p.kind, 'ok', `prefix of ${n} bytes parsed as a whole header`)
  }
  return parseProxyHeader(Buffer.concat([bytes, Buffer.from([0x16, 0x03, 0x01])]))
}

const v1 = (line: string): Buffer => Buffer.from(line + '\r\n', 'latin1')

test('v1: TCP4, TCP6, UNKNOWN', () => {
  assert.deepEqual(whole(v1('PROXY TCP4 203.0.113.7 10.0.0.1 51000 8883')), { kind: 'ok', length: 44, source: { address: '203.0.113.7', port: 51000 }, destination: { address: '10.0.0.1', port: 8883 } })
  const six = whole(v1('PROXY TCP6 2001:db8::7 2001:db8::1 1 65535'))
  assert.ok(six.kind === 'ok')
  assert.deepEqual(six.source, { address: '2001:db8::7', port: 1 })
  const unknown = whole(v1('PROXY UNKNOWN ffff::1 ffff::2 1 2'))
  assert.ok(unknown.kind === 'ok' && unknown.source === undefined)
})

test('v1: malformed lines are refused', () => {
  for (const line of ['PROXY TCP4 203.0.113.7 10.0.0.1 51000', 'PROXY TCP4 2001:db8::7 10.0.0.1 1 2', 'PROXY TCP6 1.2.3.4 5.6.7.8 1 2', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 1', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 1', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2', 'PROXY TCP4 1.2.3.4  5.6.7.8 1 2']) {
    const p = parseProxyHeader(v1(line))
    assert.equal(p.kind, 'invalid', line)
  }
  const long = parseProxyHeader(Buffer.from('PROXY TCP4 ' + '1'.repeat(120)))
  assert.ok(long.kind === 'invalid' && /longer than 107/.test(long.detail))
})

test('v2: what certgate writes reads back (TCP4, TCP6), TLVs skipped', () => {
  const device = { deviceId: 'd', caName: 'c', thumbprint: 'ab'.repeat(32), tlsVersion: 'TLSv1.3', cipher: undefined }
  const four = whole(encodeV2({ ...device, source: { address: '198.51.100.7', port: 40000 }, destination: { address: '10.0.0.1', port: 8883 } }))
  assert.ok(four.kind === 'ok')
  assert.deepEqual([four.source, four.destination], [{ address: '198.51.100.7', port: 40000 }, { address: '10.0.0.1', port: 8883 }])
  const six = whole(encodeV2({ ...device, source: { address: '2001:db8::7', port: 1 }, destination: { address: '::1', port: 2 } }))
  assert.ok(six.kind === 'ok')
  assert.deepEqual(six.source, { address: '2001:db8:0:0:0:0:0:7', port: 1 })
})

test('v2: LOCAL and UNSPEC carry no address (the balancer\'s own connection)', () => {
  const sig = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')
  const local = whole(Buffer.concat([sig, Buffer.from([0x20, 0x00, 0x00, 0x00])]))
  assert.ok(local.kind === 'ok' && local.source === undefined && local.length === 16)
  const unspec = whole(Buffer.concat([sig, Buffer.from([0x21, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00])]))
  assert.ok(unspec.kind === 'ok' && unspec.source === undefined && unspec.length === 19)
})

test('v2: malformed headers are refused', () => {
  const sig = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')
  const cases: Array<[string, Buffer, RegExp]> = [
    ['version 1 in a v2 header', Buffer.concat([sig, Buffer.from([0x11, 0x11, 0x00, 0x0c]), Buffer.alloc(12)]), /version\/command/],
    ['command 2', Buffer.concat([sig, Buffer.from([0x22, 0x11, 0x00, 0x0c]), Buffer.alloc(12)]), /version\/command/],
    ['UDP over IPv4', Buffer.concat([sig, Buffer.from([0x21, 0x12, 0x00, 0x0c]), Buffer.alloc(12)]), /not TCP/],
    ['unix socket', Buffer.concat([sig, Buffer.from([0x21, 0x31, 0x00, 0xd8]), Buffer.alloc(216)]), /not TCP/],
    ['short TCP4 block', Buffer.concat([sig, Buffer.from([0x21, 0x11, 0x00, 0x04]), Buffer.alloc(4)]), /short/],
    ['short TCP6 block', Buffer.concat([sig, Buffer.from([0x21, 0x21, 0x00, 0x0c]), Buffer.alloc(12)]), /short/],
    ['oversized TLVs', Buffer.concat([sig, Buffer.from([0x21, 0x11, 0xff, 0xff])]), new RegExp(`exceeds ${V2_MAX}`)]
  ]
  for (const [what, bytes, reason] of cases) {
    const p = parseProxyHeader(bytes)
    assert.ok(p.kind === 'invalid', what)
    assert.match(p.detail, reason, what)
  }
})

test('TLS and other first bytes are not PROXY headers', () => {
  assert.equal(startsWithProxyHeader(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])), false)
  assert.equal(startsWithProxyHeader(Buffer.from('GET / HTTP/1.1')), false)
  assert.equal(startsWithProxyHeader(Buffer.from('PRO')), 'more')
  assert.equal(startsWithProxyHeader(Buffer.from([0x0d, 0x0a])), 'more')
  assert.equal(startsWithProxyHeader(Buffer.from('PROXY ')), true)
  const p = parseProxyHeader(Buffer.from([0x16, 0x03, 0x01]))
  assert.ok(p.kind === 'invalid' && /does not start with a PROXY protocol header/.test(p.detail))
})
