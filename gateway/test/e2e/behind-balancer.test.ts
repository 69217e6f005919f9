// What this proves: behind a load balancer that speaks the PROXY protocol (v1 or v2), certgate
// takes the device's address from the header of a trusted balancer only: logs, the per-address
// handshake limit and the PROXY v2 header certgate sends upstream all see the device, not the
// balancer. A PROXY header from an address that is not trusted is refused before TLS (so no one
// can claim another address), while devices connecting directly still work; a trusted balancer
// that sends no header, or a malformed one, is refused too.
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { once } from 'node:events'
import { issueHierarchy, issue, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { startProxyV2Upstream } from '../support/proxy-v2-upstream.js'

let pki: { root: Issued, int1: Issued, int2: Issued }
let leaf: Issued
before(async () => {
  pki = await issueHierarchy()
  leaf = await issue({ cn: 'lb-dev', issuer: pki.int2 })
})

async function gateway (upstreamPort: number, env: Record<string, string>): Promise<Harness> {
  const h = await startHarness({ CERTGATE_PROTOCOL: 'tcp', CERTGATE_UPSTREAM: `127.0.0.1:${upstreamPort}`, CERTGATE_UPSTREAM_PROXY_PROTOCOL: 'v2', ...env })
  await h.registerCa('root', pki.root)
  await h.addDevice('lb-dev')
  return h
}

/** Connects from `localAddress`, sends `header` (if any), then does TLS as the device. Resolves 'secure' or the error. */
async function viaBalancer (h: Harness, header: Buffer | undefined, localAddress = '127.0.0.1'): Promise<string> {
  const raw: Socket = tcpConnect({ host: '127.0.0.1', port: h.gw.device.port, localAddress })
  await once(raw, 'connect')
  if (header !== undefined) raw.write(header)
  const tls = tlsConnect({ socket: raw, ca: h.serverCa, servername: 'localhost', cert: leaf.pem + pki.int2.pem + pki.int1.pem, key: leaf.keyPem })
  return await new Promise((resolve) => {
    tls.once('secureConnect', () => { resolve('secure'); setTimeout(() => tls.destroy(), 200) })
    tls.once('error', (err: Error) => { resolve(err.message) })
    tls.once('close', () => { resolve('closed') })
  })
}

const v1 = (src: string, sport: number): Buffer => Buffer.from(`PROXY TCP4 ${src} 198.51.100.1 ${sport} 8883\r\n`)

function metric (text: string, series: string): number {
  return Number(text.split('\n').find((l) => l.startsWith(series + ' '))?.split(' ')[1] ?? NaN)
}

test('a trusted balancer\'s v1 and v2 headers name the device: upstream PROXY header, logs', { timeout: 30_000 }, async () => {
  const up = await startProxyV2Upstream()
  const h = await gateway(up.port, { CERTGATE_TRUSTED_PROXIES: '127.0.0.0/8' })
  try {
    assert.equal(await viaBalancer(h, v1('203.0.113.7', 40001)), 'secure')
    await up.waitFor(1)
    const first = up.connections[0]?.header
    assert.ok(typeof first === 'object')
    assert.deepEqual(first.source, { address: '203.0.113.7', port: 40001 })
    assert.deepEqual(first.destination, { address: '198.51.100.1', port: 8883 })
    await h.waitForLog((l) => l.event === 'authenticated' && (l as { remote?: string }).remote === '203.0.113.7')

    // v2, TCP over IPv6, with a TLV the balancer added.
    const v2 = Buffer.concat([
      Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21, 0x21, 0x00, 36 + 7]),
      Buffer.from('20010db8000000000000000000000042', 'hex'), Buffer.from('20010db8000000000000000000000001', 'hex'),
      Buffer.from([0xc3, 0x50, 0x22, 0xb3]), Buffer.from([0x04, 0x00, 0x04, 0x61, 0x62, 0x63, 0x64])
    ])
    assert.equal(await viaBalancer(h, v2), 'secure')
    await up.waitFor(2)
    const second = up.connections[1]?.header
    assert.ok(typeof second === 'object')
    assert.equal(second.family, 'TCP6')
    assert.deepEqual(second.source, { address: '2001:db8:0:0:0:0:0:42', port: 50000 })
  } finally {
    await h.close()
    await up.close()
  }
})

test('the per-address handshake limit counts the device\'s address, not the balancer\'s', { timeout: 30_000 }, async () => {
  const up = await startProxyV2Upstream()
  const h = await gateway(up.port, { CERTGATE_TRUSTED_PROXIES: '127.0.0.1', CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '1' })
  try {
    // A rate of 1/s allows a burst of 2 per address.
    assert.equal(await viaBalancer(h, v1('203.0.113.9', 1)), 'secure')
    assert.equal(await viaBalancer(h, v1('203.0.113.9', 2)), 'secure')
    assert.notEqual(await viaBalancer(h, v1('203.0.113.9', 3)), 'secure')
    assert.equal(await viaBalancer(h, v1('203.0.113.10', 4)), 'secure', 'another device behind the same balancer is not limited')
    const metrics = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
    assert.equal(metric(metrics, 'certgate_handshakes_failed_total{listener="device",bucket="rate_limited"}'), 1)
  } finally {
    await h.close()
    await up.close()
  }
})

test('PROXY headers from an untrusted address are refused; direct devices still work; a trusted balancer must send one', { timeout: 30_000 }, async () => {
  const up = await startProxyV2Upstream()
  const h = await gateway(up.port, { CERTGATE_TRUSTED_PROXIES: '127.0.0.2' })
  try {
    assert.notEqual(await viaBalancer(h, v1('203.0.113.7', 1), '127.0.0.1'), 'secure', 'an untrusted peer claimed another address')
    assert.equal(await viaBalancer(h, undefined, '127.0.0.1'), 'secure', 'a direct device')
    assert.notEqual(await viaBalancer(h, undefined, '127.0.0.2'), 'secure', 'the trusted balancer sent no header')
    assert.notEqual(await viaBalancer(h, Buffer.from('PROXY TCP4 nonsense\r\n'), '127.0.0.2'), 'secure')
    assert.equal(await viaBalancer(h, v1('203.0.113.7', 9), '127.0.0.2'), 'secure')
    await up.waitFor(2)
    const sources = up.connections.map((c) => typeof c.header === 'object' ? c.header.source?.address : c.header)
    assert.deepEqual(sources, ['127.0.0.1', '203.0.113.7'])
    const metrics = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
    assert.equal(metric(metrics, 'certgate_handshakes_failed_total{listener="device",bucket="proxy_header_untrusted"}'), 1)
    assert.equal(metric(metrics, 'certgate_handshakes_failed_total{listener="device",bucket="proxy_header_invalid"}'), 2)
  } finally {
    await h.close()
    await up.close()
  }
})
