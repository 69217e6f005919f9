// The CRL URLs certgate fetches from a registered CA certificate (RFC 5280 §4.2.1.13): only the
// http(s) URIs of its distribution points, in order; none without the extension.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { issue } from '../../gateway/pki/issue.js'
import { crlDistributionPointUrls } from '../crl-distribution-points.js'

test('only the http and https URIs of the distribution points, in order', async () => {
  const ca = await issue({ cn: 'CDP CA', ca: true, crlUrls: ['ldap://dir.example/cn=ca?certificateRevocationList', 'http://crl.example/ca.crl', 'file:///etc/passwd', 'https://crl2.example/ca.crl'] })
  assert.deepEqual(crlDistributionPointUrls(ca.der), ['http://crl.example/ca.crl', 'https://crl2.example/ca.crl'])
})

test('no extension, no URLs', async () => {
  const ca = await issue({ cn: 'plain CA', ca: true })
  assert.deepEqual(crlDistributionPointUrls(ca.der), [])
})

test('an openssl-made certificate: several URIs in one point, and a point with a cRLIssuer (indirect) skipped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-cdp-'))
  try {
    writeFileSync(join(dir, 'x.cnf'), [
      '[ req ]', 'distinguished_name = dn', 'x509_extensions = ext', 'prompt = no', '[ dn ]', 'CN = openssl CDP CA',
      '[ ext ]', 'basicConstraints = critical,CA:true', 'crlDistributionPoints = dp1, dp2',
      '[ dp1 ]', 'fullname = URI:http://a.example/1.crl, URI:https://b.example/1.crl',
      '[ dp2 ]', 'fullname = URI:http://indirect.example/2.crl', 'CRLissuer = dirName:issuer_dn',
      '[ issuer_dn ]', 'CN = someone else', ''
    ].join('\n'))
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.der'), '-outform', 'DER', '-days', '1', '-config', join(dir, 'x.cnf')])
    assert.deepEqual(crlDistributionPointUrls(new Uint8Array(readFileSync(join(dir, 'c.der')))), ['http://a.example/1.crl', 'https://b.example/1.crl'])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
