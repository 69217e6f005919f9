// What this proves: the OCSP request certgate builds is byte for byte the one `openssl ocsp
// -no_nonce` builds (SHA-1 CertID of the issuer's name and key, the leaf's serial), and the answers
// of a real `openssl ocsp -index` responder are read as it meant them: good, revoked (with the time),
// unknown — signed by the CA itself or by a delegated responder certificate with id-kp-OCSPSigning.
// A responder certificate without that EKU, a responder of another CA, a tampered signature, an
// answer about another certificate, an answer whose nextUpdate passed or whose thisUpdate is in the
// future, and garbage are failures with their reasons, never "good".
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { issue, type Issued } from '../../pki/issue.js'
import { parseCertificate } from '../../../workers/certificate.js'
import { certIdFor, ocspRequest } from '../ocsp-request.js'
import { readOcspResponse, type OcspResult } from '../ocsp-response.js'
import { postOcsp } from '../ocsp-post.js'
import { startOpensslOcsp, type OcspResponder } from '../../test/support/openssl-ocsp.js'

const run = promisify(execFile)
const OCSP_SIGNING = '1.3.6.1.5.5.7.3.9'

let ca: Issued
let good: Issued
let bad: Issued
let stranger: Issued
let direct: OcspResponder
const started: OcspResponder[] = []

before(async () => {
  ca = await issue({ cn: 'certgate OCSP test CA', ca: true })
  good = await issue({ cn: 'ocsp-good', issuer: ca })
  bad = await issue({ cn: 'ocsp-bad', issuer: ca })
  stranger = await issue({ cn: 'ocsp-stranger', issuer: ca })
  direct = await startOpensslOcsp({ ca, nextUpdateMinutes: 5 })
  started.push(direct)
  direct.setIndex([good], [bad])
})
after(async () => { for (const r of started) await r.close() })

async function ask (url: string, leaf: Issued, now = Date.now(), issuer: Issued = ca): Promise<OcspResult> {
  const id = certIdFor(parseCertificate(issuer.der), parseCertificate(leaf.der).serial)
  const der = await postOcsp(url, ocspRequest(id), { timeoutMs: 3000, maxBytes: 64 * 1024 })
  return readOcspResponse(new Uint8Array(der), { issuer: parseCertificate(issuer.der), id, now, skewMs: 60_000 })
}

test('the request is the one openssl ocsp builds', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-ocsp-req-'))
  try {
    writeFileSync(join(dir, 'ca.pem'), ca.pem)
    writeFileSync(join(dir, 'leaf.pem'), good.pem)
    await run('openssl', ['ocsp', '-issuer', join(dir, 'ca.pem'), '-cert', join(dir, 'leaf.pem'), '-no_nonce', '-reqout', join(dir, 'req.der')])
    const ours = ocspRequest(certIdFor(parseCertificate(ca.der), parseCertificate(good.der).serial))
    assert.deepEqual(Buffer.from(ours), readFileSync(join(dir, 'req.der')))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('good, revoked and unknown answers of a CA-signed responder', async () => {
  const g = await ask(direct.url, good)
  assert.ok(g.status === 'good' && g.nextUpdate !== undefined && g.nextUpdate > Date.now(), JSON.stringify(g))
  const r = await ask(direct.url, bad)
  assert.ok(r.status === 'revoked' && r.revokedAt !== undefined && r.revokedAt < Date.now(), JSON.stringify(r))
  assert.equal((await ask(direct.url, stranger)).status, 'unknown', 'a certificate not in the index')
})

test('answers out of their time window are failures', async () => {
  const late = await ask(direct.url, good, Date.now() + 3_600_000)
  assert.deepEqual(late.status === 'failed' && late.reason, 'expired')
  const early = await ask(direct.url, good, Date.now() - 3_600_000)
  assert.deepEqual(early.status === 'failed' && early.reason, 'not_yet_valid')
})

test('a delegated responder with id-kp-OCSPSigning is believed; one without it, or another CA\'s, is not', async () => {
  const delegated = await startOpensslOcsp({ ca, signer: await issue({ cn: 'certgate OCSP signer', issuer: ca, eku: [OCSP_SIGNING] }) })
  started.push(delegated)
  delegated.setIndex([good], [bad])
  assert.equal((await ask(delegated.url, bad)).status, 'revoked')
  assert.equal((await ask(delegated.url, good)).status, 'good')

  const noEku = await startOpensslOcsp({ ca, signer: await issue({ cn: 'certgate not an OCSP signer', issuer: ca, eku: [] }) })
  started.push(noEku)
  noEku.setIndex([good], [])
  const refused = await ask(noEku.url, good)
  assert.equal(refused.status === 'failed' && refused.reason, 'bad_signature')

  const otherCa = await issue({ cn: 'certgate OCSP test CA', ca: true })
  const impostor = await startOpensslOcsp({ ca: otherCa, signer: await issue({ cn: 'certgate impostor signer', issuer: otherCa, eku: [OCSP_SIGNING] }) })
  started.push(impostor)
  impostor.setIndex([good], [])
  const forged = await ask(impostor.url, good)
  assert.equal(forged.status === 'failed' && forged.reason, 'bad_signature', 'another key of the same name signed it')
})

test('tampering, an answer about another certificate and garbage are failures with their reasons', async () => {
  const issuer = parseCertificate(ca.der)
  const id = certIdFor(issuer, parseCertificate(good.der).serial)
  const der = new Uint8Array(await postOcsp(direct.url, ocspRequest(id), { timeoutMs: 3000, maxBytes: 64 * 1024 }))
  const check = { issuer, id, now: Date.now(), skewMs: 60_000 }
  assert.equal(readOcspResponse(der, check).status, 'good')

  // One second later in producedAt (GeneralizedTime, 15 bytes): still well formed, no longer what was signed.
  const tampered = new Uint8Array(der)
  const at = Buffer.from(der).indexOf(Buffer.from([0x18, 0x0f])) + 2 + 13
  tampered[at] = 0x30 + (((tampered[at] as number) - 0x30 + 1) % 10)
  const t = readOcspResponse(tampered, check)
  assert.equal(t.status === 'failed' && t.reason, 'bad_signature')

  const other = readOcspResponse(der, { ...check, id: certIdFor(issuer, parseCertificate(bad.der).serial) })
  assert.equal(other.status === 'failed' && other.reason, 'no_matching_response')

  for (const junk of [new Uint8Array(0), Uint8Array.from([0x30, 0x03, 0x0a, 0x01, 0x00]), Buffer.from('<html>not OCSP</html>')]) {
    const j = readOcspResponse(new Uint8Array(junk), check)
    assert.equal(j.status === 'failed' && j.reason, 'malformed')
  }
  // tryLater (3): not successful.
  const later = readOcspResponse(Uint8Array.from([0x30, 0x03, 0x0a, 0x01, 0x03]), check)
  assert.equal(later.status === 'failed' && later.reason, 'not_successful')
})
