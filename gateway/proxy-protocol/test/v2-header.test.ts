// What this proves: the PROXY v2 header certgate writes parses, by the spec's byte layout, into the
// device's addresses (IPv4, IPv6, IPv4-mapped IPv6 unmapped), PP2_TYPE_SSL with the "SSL, client
// certificate on this connection and session, verified" flags and verify = 0, the deviceId as
// PP2_SUBTYPE_SSL_CN, the TLS version and cipher, and certgate's CA-name and thumbprint TLVs.
// Control characters never leave in a TLV.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeV2, ipv6Bytes, sanitize } from '../v2-header.js'
import { parseV2, type ParsedV2 } from '../../test/support/proxy-v2-upstream.js'

const thumbprint = 'ab'.repeat(32)

function parsed (bytes: Buffer): ParsedV2 {
  const r = parseV2(bytes)
  assert.ok('header' in r, JSON.stringify(r))
  assert.equal(r.length, bytes.length, 'the header is exactly what was written')
  return r.header
}

test('IPv4 device: addresses, SSL TLV with sub-TLVs, certgate TLVs', () => {
  const h = parsed(encodeV2({ source: { address: '::ffff:192.0.2.7', port: 51234 }, destination: { address: '198.51.100.1', port: 8883 }, deviceId: 'sensor-42', caName: 'fleet-root', thumbprint, tlsVersion: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }))
  assert.equal(h.command, 'PROXY')
  assert.equal(h.family, 'TCP4')
  assert.deepEqual(h.source, { address: '192.0.2.7', port: 51234 })
  assert.deepEqual(h.destination, { address: '198.51.100.1', port: 8883 })
  assert.ok(h.ssl !== undefined)
  assert.equal(h.ssl.client, 0x07)
  assert.equal(h.ssl.verify, 0)
  assert.equal(h.ssl.sub.get(0x22)?.toString(), 'sensor-42')
  assert.equal(h.ssl.sub.get(0x21)?.toString(), 'TLSv1.3')
  assert.equal(h.ssl.sub.get(0x23)?.toString(), 'TLS_AES_256_GCM_SHA384')
  assert.equal(h.tlvs.get(0xe0)?.toString(), 'fleet-root')
  assert.equal(h.tlvs.get(0xe1)?.toString(), thumbprint)
})

test('IPv6 device; a selfSigned device has no CA-name TLV', () => {
  const h = parsed(encodeV2({ source: { address: '2001:db8::1', port: 1 }, destination: { address: '::1', port: 65535 }, deviceId: 'd', caName: undefined, thumbprint, tlsVersion: undefined, cipher: undefined }))
  assert.equal(h.family, 'TCP6')
  assert.deepEqual(h.source, { address: '2001:db8:0:0:0:0:0:1', port: 1 })
  assert.deepEqual(h.destination, { address: '0:0:0:0:0:0:0:1', port: 65535 })
  assert.equal(h.tlvs.has(0xe0), false)
  assert.equal(h.ssl?.sub.has(0x21), false)
})

test('unknown addresses are AF_UNSPEC, TLVs still there', () => {
  const h = parsed(encodeV2({ source: { address: '', port: 0 }, destination: { address: '', port: 0 }, deviceId: 'd', caName: 'c', thumbprint, tlsVersion: undefined, cipher: undefined }))
  assert.equal(h.family, 'UNSPEC')
  assert.equal(h.ssl?.sub.get(0x22)?.toString(), 'd')
})

test('control characters in the CN or CA name become U+FFFD (never a deviceId character)', () => {
  assert.equal(sanitize('a\u0000b\nc\u007fd\u0085e'), 'a\uFFFDb\uFFFDc\uFFFDd\uFFFDe')
  const h = parsed(encodeV2({ source: { address: '127.0.0.1', port: 1 }, destination: { address: '127.0.0.1', port: 2 }, deviceId: 'evil\r\nX', caName: 'ca\u0000', thumbprint, tlsVersion: undefined, cipher: undefined }))
  assert.equal(h.ssl?.sub.get(0x22)?.toString('utf8'), 'evil\uFFFD\uFFFDX')
  assert.equal(h.tlvs.get(0xe0)?.toString('utf8'), 'ca\uFFFD')
})

test('IPv6 text forms', () => {
  assert.equal(ipv6Bytes('::').toString('hex'), '0'.repeat(32))
  assert.equal(ipv6Bytes('::ffff:10.0.0.1').toString('hex'), '00000000000000000000ffff0a000001')
  assert.equal(ipv6Bytes('fe80::1%eth0').toString('hex'), 'fe800000000000000000000000000001')
  assert.equal(ipv6Bytes('1:2:3:4:5:6:7:8').toString('hex'), '00010002000300040005000600070008')
})
