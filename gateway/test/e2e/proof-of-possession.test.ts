// What this proves: a client that presents a registered device's certificate without holding its
// private key never gets in. OpenSSL's s_client is made to send a valid device certificate with
// a different key (an LD_PRELOAD shim disables its own "key matches certificate" check); the
// handshake fails at CertificateVerify, certgate counts it as bad_certificate_proof, and the
// device is never authenticated. The same device with its own key is let in (control).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'

let h: Harness
let dir: string
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  h = await startHarness({ CERTGATE_PROTOCOL: 'tcp' })
  pki = await issueHierarchy()
  await h.registerCa('root', pki.root)
  dir = mkdtempSync(join(tmpdir(), 'certgate-pop-'))
  writeFileSync(join(dir, 'shim.c'), 'int X509_check_private_key(const void *x, const void *k) { (void)x; (void)k; return 1; }\n')
  execFileSync('cc', ['-shared', '-fPIC', '-o', join(dir, 'shim.so'), join(dir, 'shim.c')])
})
after(async () => {
  await h.close()
  rmSync(dir, { recursive: true, force: true })
})

async function sClient (leaf: Issued, keyPem: string, tlsVersion: '-tls1_3' | '-tls1_2'): Promise<string> {
  writeFileSync(join(dir, 'cert.pem'), leaf.pem)
  writeFileSync(join(dir, 'chain.pem'), pki.int2.pem + pki.int1.pem)
  writeFileSync(join(dir, 'key.pem'), keyPem)
  writeFileSync(join(dir, 'server-ca.pem'), h.serverCa)
  const child = spawn('openssl', ['s_client', tlsVersion, '-connect', `127.0.0.1:${h.gw.device.port}`, '-servername', 'localhost',
    '-CAfile', join(dir, 'server-ca.pem'), '-cert', join(dir, 'cert.pem'), '-cert_chain', join(dir, 'chain.pem'), '-key', join(dir, 'key.pem')], {
    env: { ...process.env, LD_PRELOAD: join(dir, 'shim.so') }, stdio: ['pipe', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  // Keep stdin open briefly so TLS 1.3's post-handshake server flight is read, then quit.
  setTimeout(() => { child.stdin.end() }, 700)
  await new Promise((resolve) => child.once('exit', resolve))
  return out
}

for (const version of ['-tls1_3', '-tls1_2'] as const) {
  test(`a device certificate presented with the wrong key fails the handshake (${version})`, async () => {
    const id = `pop${version}`
    await h.addDevice(id)
    const leaf = await issue({ cn: id, issuer: pki.int2 })
    const stranger = await issue({ cn: 'someone' })
    const before = h.logs.length
    const out = await sClient(leaf, stranger.keyPem, version)
    const failed = await h.waitForLog((l) => h.logs.indexOf(l) >= before && l.event === 'handshake_failed')
    assert.equal((failed as unknown as { bucket: string }).bucket, 'bad_certificate_proof', `${JSON.stringify(failed)}\n${out}`)
    assert.ok(!h.logs.some((l) => l.event === 'authenticated' && l.deviceId === id), 'the device must not be authenticated')

    // Control: the same certificate with its own key is authenticated, so the shim did not break s_client.
    await sClient(leaf, leaf.keyPem, version)
    await h.waitForLog((l) => l.event === 'authenticated' && l.deviceId === id)
  })
}
