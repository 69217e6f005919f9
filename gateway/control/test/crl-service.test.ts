// What this proves: CRLs made by `openssl ca -gencrl` are read by certgate's own DER reader (issuer,
// times, cRLNumber, revoked serials matching the certificates' serials), including a 100,000-entry
// CRL, which the service stores and the revocation look-up answers by serial; the look-up refuses
// a path holding a revoked certificate and lets an unrelated one through.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { issue } from '../../pki/issue.js'
import { parseCertificate } from '../../../workers/certificate.js'
import { checkCrlIssuer, parseCrl } from '../../../workers/crl.js'
import { buildRevocationSet, revocationProblem } from '../../../workers/revocation.js'
import { openSqliteRegistry } from '../../registry/sqlite-registry.js'
import { createCrlService, crlDer } from '../crl-service.js'
import { asn1Time, opensslCrl } from '../../test/support/openssl-crl.js'
import { sha256Hex } from '../../../workers/validate-chain.js'

test('an openssl CRL is read by the DER reader and checked against its CA', async () => {
  const ca = await issue({ cn: 'crl unit CA', ca: true })
  const other = await issue({ cn: 'crl unit CA', ca: true })
  const leaf = await issue({ cn: 'crl-unit-leaf', issuer: ca })
  const crl = parseCrl(crlDer(await opensslCrl({ ca, revoked: [leaf], crlNumber: 0x1234 })))
  assert.equal(crl.crlNumber, 0x1234n)
  assert.deepEqual(crl.serials, [parseCertificate(leaf.der).serial])
  assert.ok(crl.nextUpdate !== undefined && crl.nextUpdate > crl.thisUpdate)
  assert.equal(checkCrlIssuer(crl, parseCertificate(ca.der)).result, 'ok')
  assert.equal(checkCrlIssuer(crl, parseCertificate(other.der)).result, 'crl_bad_signature')
  assert.equal(checkCrlIssuer(crl, parseCertificate(leaf.der)).result, 'crl_issuer_mismatch')

  const set = buildRevocationSet({ denied: [], crls: [{ source: 'CA "unit"', issuer: crl.issuerKey, serials: crl.serials }] })
  const revoked = revocationProblem([parseCertificate(leaf.der), parseCertificate(ca.der)], set)
  assert.equal(revoked?.reason, 'cert_revoked')
  assert.match(revoked.detail, /device certificate with serial .* CRL of CA "unit"/)
  const fine = await issue({ cn: 'crl-unit-fine', issuer: ca })
  assert.equal(revocationProblem([parseCertificate(fine.der), parseCertificate(ca.der)], set), undefined)
  const denied = buildRevocationSet({ denied: [sha256Hex(ca.der).toUpperCase()], crls: [] })
  assert.match(revocationProblem([parseCertificate(fine.der), parseCertificate(ca.der)], denied)?.detail ?? '', /registered CA .* deny-list/)
})

test('a 100,000-entry CRL from openssl is parsed, stored and looked up by serial', async () => {
  const ca = await issue({ cn: 'crl big CA', ca: true })
  const leaf = await issue({ cn: 'crl-big-leaf', issuer: ca })
  const dir = mkdtempSync(join(tmpdir(), 'certgate-bigcrl-'))
  try {
    const when = asn1Time(new Date(Date.now() - 60_000)).slice(2)
    const lines: string[] = []
    for (let i = 1; i <= 99_999; i++) lines.push(`R\t491231235959Z\t${when}\t${(0x100000 + i).toString(16).toUpperCase()}\tunknown\t/CN=d${i}`)
    lines.push(`R\t491231235959Z\t${when}\t${parseCertificate(leaf.der).serial.toUpperCase()}\tunknown\t/CN=leaf`)
    writeFileSync(join(dir, 'index.txt'), lines.join('\n') + '\n')
    writeFileSync(join(dir, 'crlnumber'), '01\n')
    writeFileSync(join(dir, 'ca.pem'), ca.pem)
    writeFileSync(join(dir, 'ca.key'), ca.keyPem)
    writeFileSync(join(dir, 'ca.cnf'), `[ ca ]\ndefault_ca = d\n[ d ]\ndatabase = ${join(dir, 'index.txt')}\ncrlnumber = ${join(dir, 'crlnumber')}\ndefault_md = sha256\ndefault_crl_days = 1\n`)
    execFileSync('openssl', ['ca', '-gencrl', '-batch', '-config', join(dir, 'ca.cnf'), '-keyfile', join(dir, 'ca.key'), '-cert', join(dir, 'ca.pem'), '-out', join(dir, 'crl.pem')])
    const pem = readFileSync(join(dir, 'crl.pem'), 'utf8')
    const registry = openSqliteRegistry(join(dir, 'registry.sqlite'))
    try {
      const c = parseCertificate(ca.der)
      await registry.putCa({ name: 'big', certificateDer: ca.der, subject: 'CN=crl big CA', thumbprint: sha256Hex(ca.der), notAfter: new Date(c.notAfter).toISOString() })
      const stored = await createCrlService(registry).upload('big', pem)
      assert.equal(stored.revokedCount, 100_000)
      const crl = parseCrl((await registry.getCrl('big'))?.der ?? new Uint8Array())
      const set = buildRevocationSet({ denied: [], crls: [{ source: 'CA "big"', issuer: crl.issuerKey, serials: crl.serials }] })
      assert.equal(set.byIssuer.get(crl.issuerKey)?.[0]?.serials.size, 100_000)
      assert.equal(revocationProblem([parseCertificate(leaf.der), c], set)?.reason, 'cert_revoked')
    } finally {
      await registry.close()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
