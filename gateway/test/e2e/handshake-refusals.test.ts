// What this proves: a device whose certificate OpenSSL will not use in the TLS handshake is told
// nothing new on the wire (the handshake fails) but is no longer invisible to the operator. A
// device with a secp256k1 key (made with the openssl CLI; TLS allows no such curve, OpenSSL says
// "wrong curve") is logged at info as handshake_refused with the OpenSSL reason and its address,
// counted in certgate_handshakes_failed_total{bucket="bad_certificate"}, and the log is limited to
// one line a minute per address: a second attempt from 127.0.0.1 is counted but not logged, while
// the first from 127.0.0.2 is logged.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect as tcpConnect } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHarness, type Harness } from '../support/harness.js'

async function attempt (h: Harness, cert: string, key: string, localAddress: string): Promise<void> {
  await new Promise<void>((resolve) => {
    // TLS 1.2: in TLS 1.3 OpenSSL clients find no signature scheme for the key and send no certificate.
    const raw = tcpConnect({ host: '127.0.0.1', port: h.gw.device.port, localAddress })
    raw.on('error', () => undefined)
    const s = tlsConnect({ socket: raw, ca: h.serverCa, servername: 'localhost', cert, key, maxVersion: 'TLSv1.2' })
    s.once('secureConnect', () => { s.destroy(); resolve() })
    s.once('error', () => { resolve() })
  })
}

async function failedCount (h: Harness): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
  return Number(/certgate_handshakes_failed_total\{listener="device",bucket="bad_certificate"\} (\d+)/.exec(text)?.[1] ?? NaN)
}

test('a secp256k1 device certificate: handshake_refused at info with OpenSSL\'s reason, once a minute per address', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-k1-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  execFileSync('openssl', ['ecparam', '-name', 'secp256k1', '-genkey', '-noout', '-out', join(dir, 'k1.key')])
  execFileSync('openssl', ['req', '-new', '-x509', '-key', join(dir, 'k1.key'), '-subj', '/CN=k1-dev', '-days', '2', '-out', join(dir, 'k1.pem')])
  const cert = readFileSync(join(dir, 'k1.pem'), 'utf8')
  const key = readFileSync(join(dir, 'k1.key'), 'utf8')
  const h = await startHarness()
  t.after(async () => { await h.close() })

  await attempt(h, cert, key, '127.0.0.1')
  const line = await h.waitForLog((l) => l.event === 'handshake_refused')
  assert.equal(line.level, 30, 'info')
  assert.match(line.detail ?? '', /wrong curve/i)
  assert.equal((line as unknown as { remote: string }).remote, '127.0.0.1')

  await attempt(h, cert, key, '127.0.0.1')
  await attempt(h, cert, key, '127.0.0.2')
  await h.waitForLog((l) => l.event === 'handshake_refused' && (l as unknown as { remote: string }).remote === '127.0.0.2')
  // All three were counted before the log is checked: the second from 127.0.0.1 was held back.
  assert.equal(await failedCount(h), 3)
  assert.equal(h.logs.filter((l) => l.event === 'handshake_refused').length, 2)
})
