// What this proves: the gateway's own server certificate (CERTGATE_TLS_CERT/CERTGATE_TLS_KEY)
// is rotated without a restart. With 1,000 authenticated device connections held open (tcp mode,
// an echo upstream), the pair is replaced by an atomic rename, as ACME clients and cert-manager
// do: the next handshake presents the new certificate (checked by fingerprint) within a second of
// the rename, and every held connection still echoes. Then files that cannot be served (a
// certificate with someone else's key, a malformed PEM, an expired certificate) change nothing:
// one logged error each, the reload-failure counter moves, and handshakes keep the last good one.
// A SIGHUP-style reload (the gateway's reloadServerCertificates) of an unchanged pair is a no-op.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { createHash } from 'node:crypto'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness } from '../support/harness.js'

const HELD = 1000
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
const fingerprint = (c: Issued): string => createHash('sha256').update(c.der).digest('hex')

/** Replaces a file the way renewal tools do: write a temporary file, rename it over the old one. */
function replace (dir: string, name: string, text: string): void {
  const tmp = join(dir, `.${name}.tmp`)
  writeFileSync(tmp, text)
  renameSync(tmp, join(dir, name))
}

test(`server certificate rotation: ${HELD} held connections survive, new handshakes see the new pair within 1 s, bad pairs change nothing`, { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-rotation-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const serverCa = await issue({ cn: 'Rotation Server CA', ca: true })
  const first = await issue({ cn: 'localhost', sanDns: ['localhost'], eku: [SERVER_AUTH], issuer: serverCa })
  const second = await issue({ cn: 'localhost', sanDns: ['localhost'], eku: [SERVER_AUTH], issuer: serverCa })
  writeFileSync(join(dir, 'tls.crt'), first.pem)
  writeFileSync(join(dir, 'tls.key'), first.keyPem)

  // The upstream echoes, so a held connection can prove it still forwards.
  const upstreamSockets = new Set<Socket>()
  const upstream = createServer((s) => { upstreamSockets.add(s); s.on('error', () => undefined); s.pipe(s) })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  const upstreamPort = (upstream.address() as { port: number }).port
  t.after(() => { for (const s of upstreamSockets) s.destroy(); upstream.close() })

  const h = await startHarness({
    CERTGATE_PROTOCOL: 'tcp',
    CERTGATE_UPSTREAM: `127.0.0.1:${upstreamPort}`,
    CERTGATE_TLS_CERT: join(dir, 'tls.crt'),
    CERTGATE_TLS_KEY: join(dir, 'tls.key'),
    CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '0'
  })
  t.after(async () => { await h.close() })
  const pki = await issueHierarchy()
  await h.registerCa('root', pki.root)
  await h.addDevice('holder')
  const leaf = await issue({ cn: 'holder', issuer: pki.int2 })
  const dial = async (): Promise<TLSSocket> => await new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: h.gw.device.port, ca: serverCa.pem, servername: 'localhost', cert: leaf.pem + pki.int2.pem + pki.int1.pem, key: leaf.keyPem })
    s.once('secureConnect', () => { s.off('error', reject); resolve(s) })
    s.once('error', reject)
  })
  const servedFingerprint = async (): Promise<string> => {
    const s = await dial()
    const fp = (s.getPeerX509Certificate()?.fingerprint256 ?? '').replaceAll(':', '').toLowerCase()
    s.destroy()
    return fp
  }
  const echoes = async (s: TLSSocket): Promise<boolean> => await new Promise((resolve) => {
    if (s.destroyed) { resolve(false); return }
    s.once('data', (d: Buffer) => { resolve(d.toString() === 'x') })
    s.write('x')
  })

  // Hold the connections, in batches so the handshakes do not all queue at once.
  const held: TLSSocket[] = []
  t.after(() => { for (const s of held) s.destroy() })
  for (let i = 0; i < HELD; i += 50) held.push(...await Promise.all(Array.from({ length: Math.min(50, HELD - i) }, dial)))
  for (const s of held) s.on('error', () => undefined)
  assert.equal((await Promise.all(held.map(echoes))).filter(Boolean).length, HELD, 'every held connection forwards before the rotation')
  assert.equal(await servedFingerprint(), fingerprint(first))

  // Rotate: key first then certificate, each by rename (the watch settles before reading the pair).
  const rotatedAt = Date.now()
  replace(dir, 'tls.key', second.keyPem)
  replace(dir, 'tls.crt', second.pem)
  let seen = ''
  while (seen !== fingerprint(second) && Date.now() - rotatedAt < 5000) {
    seen = await servedFingerprint()
    if (seen !== fingerprint(second)) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const tookMs = Date.now() - rotatedAt
  assert.equal(seen, fingerprint(second), 'the new certificate is served')
  assert.ok(tookMs < 1000, `the new certificate was served ${tookMs} ms after the rename`)
  t.diagnostic(`new certificate served ${tookMs} ms after the rename, with ${HELD} connections held`)
  await h.waitForLog((l) => l.event === 'server_certificate_reloaded')
  assert.equal((await Promise.all(held.map(echoes))).filter(Boolean).length, HELD, 'every held connection survived the rotation')

  // Pairs that cannot be served: each is one error, and the last good pair stays.
  const stranger = await issue({ cn: 'localhost', sanDns: ['localhost'], eku: [SERVER_AUTH], issuer: serverCa })
  const expired = await issue({ cn: 'localhost', sanDns: ['localhost'], eku: [SERVER_AUTH], issuer: serverCa, keys: second.keys, notBefore: new Date(Date.now() - 20 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) })
  const bad: Array<[string, () => void, RegExp]> = [
    ['a certificate with another key', () => { replace(dir, 'tls.crt', stranger.pem) }, /cannot be served together/],
    ['a malformed certificate', () => { replace(dir, 'tls.crt', '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n') }, /not a PEM certificate/],
    ['an expired certificate', () => { replace(dir, 'tls.crt', expired.pem) }, /expired/]
  ]
  for (const [what, write, why] of bad) {
    const before = h.logs.filter((l) => l.event === 'server_certificate_reload_failed').length
    write()
    await h.waitForLog((l) => l.event === 'server_certificate_reload_failed' && why.test(l.detail ?? '') && h.logs.filter((x) => x.event === 'server_certificate_reload_failed').length > before)
    h.gw.reloadServerCertificates() // the same problem again (a SIGHUP): not logged twice
    assert.equal(h.logs.filter((l) => l.event === 'server_certificate_reload_failed').length, before + 1, `${what}: one error`)
    assert.equal(await servedFingerprint(), fingerprint(second), `${what}: the last good certificate is still served`)
  }
  replace(dir, 'tls.crt', second.pem)
  h.gw.reloadServerCertificates() // back to the pair in use: nothing to reload
  assert.equal(h.logs.filter((l) => l.event === 'server_certificate_reloaded').length, 1)

  const metrics = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
  assert.match(metrics, /certgate_server_certificate_reloads_total\{listener="device",outcome="reloaded"\} 1/)
  assert.match(metrics, /certgate_server_certificate_reloads_total\{listener="device",outcome="failed"\} 3/)
  const expiry = /certgate_server_certificate_expiry_seconds\{listener="device"\} (\d+)/.exec(metrics)
  assert.ok(expiry !== null, 'the served certificate\'s expiry is exported')
  assert.ok(Number(expiry[1]) > 86_400, `expiry ${expiry[1]} s`)
  assert.equal((await Promise.all(held.map(echoes))).filter(Boolean).length, HELD, 'every held connection is still there')
})
