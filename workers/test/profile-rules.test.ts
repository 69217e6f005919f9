// The rules the conformance suites made certgate adopt (docs/validation.md), each on a chain built
// at test time, and the compatibility guard: chains made by OpenSSL 3 with its usual commands and
// sections (`req -x509`, `x509 -req` with and without v3_ca / usr_cert, `ca`) still validate.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
// issue.js first: it loads reflect-metadata and sets the crypto provider @peculiar/x509 needs.
import { generateKeys, issue, issueHierarchy, type Issued, type IssueOptions } from '../../gateway/pki/issue.js'
import * as x509 from '@peculiar/x509'
import { validateChain, type ValidateChainInput } from '../../index.js'

const DAY = 86_400_000
const KU = x509.KeyUsageFlags
const { root, int1, int2 } = await issueHierarchy()

function chain (leaf: Issued | Uint8Array, intermediates: ReadonlyArray<Issued | Uint8Array>, anchors: ReadonlyArray<Issued | Uint8Array>): ValidateChainInput {
  const der = (c: Issued | Uint8Array): Uint8Array => c instanceof Uint8Array ? c : c.der
  return { leaf: der(leaf), intermediates: intermediates.map(der), anchors: anchors.map(der) }
}

function device (issuer: Issued, opts: Partial<IssueOptions> = {}): Promise<Issued> {
  return issue({ cn: 'device-1', issuer, ...opts })
}

function tlv (tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(parts)
  const n = body.length
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff]
  return Uint8Array.from([tag, ...len, ...body])
}

function dnsConstraints (permitted: readonly string[], excluded: readonly string[] = [], critical = true): x509.Extension {
  const subtrees = (tag: number, list: readonly string[]): Uint8Array[] => list.length === 0 ? [] : [tlv(tag, ...list.map((d) => tlv(0x30, tlv(0x82, Buffer.from(d, 'ascii')))))]
  return new x509.Extension('2.5.29.30', critical, tlv(0x30, ...subtrees(0xa0, permitted), ...subtrees(0xa1, excluded)))
}

async function constrained (nc: x509.Extension, sanDns: readonly string[]): Promise<ValidateChainInput> {
  const ca = await issue({ cn: 'Constrained CA', ca: true, issuer: root, extraExtensions: [nc] })
  return chain(await device(ca, { sanDns }), [ca], [root])
}

const utf8 = (s: string): Uint8Array => tlv(0x0c, Buffer.from(s, 'utf8'))
const atv = (oid: number[], v: Uint8Array): Uint8Array => tlv(0x31, tlv(0x30, Uint8Array.from([0x06, oid.length, ...oid]), v))
const O = [0x55, 0x04, 0x0a]
const CN = [0x55, 0x04, 0x03]

/**
 * A device whose issuer Name is the intermediate's, re-encoded: UTF8String instead of
 * PrintableString, other capitals, doubled inner and trailing spaces (RFC 5280 §7.1).
 */
async function reencodedIssuerChain (): Promise<ValidateChainInput> {
  const ca = await issue({ cn: 'Device CA', ca: true, issuer: root })
  return chain(await leafNamed(ca, [{ O: ['certgate'] }, { CN: ['device-1'] }], new x509.Name(tlv(0x30, atv(O, utf8('CERTGATE')), atv(CN, utf8('device  ca '))))), [ca], [root])
}

/** A device under `ca` with the given subject and issuer Names, as encoded. */
async function leafNamed (ca: Issued, subject: x509.JsonName | x509.Name, issuer: x509.Name): Promise<Uint8Array> {
  const keys = await generateKeys('P-256')
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '0a1b',
    subject,
    issuer,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey)]
  })
  return new Uint8Array(cert.rawData)
}

/** RFC 5280 §4.2.1.10: an excluded directoryName binds a re-encoded, re-capitalised subject too. */
async function excludedDirReencoded (): Promise<ValidateChainInput> {
  const excluded = new x509.Extension('2.5.29.30', true, tlv(0x30, tlv(0xa1, tlv(0x30, tlv(0xa4, tlv(0x30, atv(O, Uint8Array.from([0x13, 4, ...Buffer.from('Evil')]))))))))
  const ca = await issue({ cn: 'Excluding CA', ca: true, issuer: root, extraExtensions: [excluded] })
  const subject = new x509.Name(tlv(0x30, atv(O, utf8(' EVIL')), atv(CN, utf8('device-1'))))
  return chain(await leafNamed(ca, subject, new x509.Name(new x509.X509Certificate(ca.der).subjectName.toArrayBuffer())), [ca], [root])
}

const POLICY = Uint8Array.of(0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb2, 0x03, 0x07) // 1.3.6.1.4.1.55555.7
const OTHER_POLICY = Uint8Array.of(0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xb2, 0x03, 0x08)
const ANY_POLICY = Uint8Array.of(0x06, 0x04, 0x55, 0x1d, 0x20, 0x00)
const policies = (...oids: Uint8Array[]): x509.Extension => new x509.Extension('2.5.29.32', false, tlv(0x30, ...oids.map((o) => tlv(0x30, o))))
/** requireExplicitPolicy 0: every certificate below must assert a policy valid for the whole path (RFC 5280 §4.2.1.11). */
const requireExplicit = new x509.Extension('2.5.29.36', true, tlv(0x30, tlv(0x80, Uint8Array.of(0))))

/** A CA under the root with `caExtensions`, and a device under it with `leafExtensions`. */
async function policyChain (caExtensions: x509.Extension[], leafExtensions: x509.Extension[]): Promise<ValidateChainInput> {
  const ca = await issue({ cn: 'Policy CA', ca: true, issuer: root, extraExtensions: caExtensions })
  return chain(await device(ca, { extraExtensions: leafExtensions }), [ca], [root])
}

interface Row { readonly name: string, readonly expect: string, readonly detail?: RegExp, readonly build: () => Promise<ValidateChainInput> }

const rows: Row[] = [
  // RFC 5280 profile rules: 'nonconforming_certificate'.
  { name: 'name constraints in the device certificate', expect: 'nonconforming_certificate', detail: /name constraints/, build: async () => chain(await device(int2, { extraExtensions: [dnsConstraints(['example.com'])] }), [int2, int1], [root]) },
  { name: 'intermediate with non-critical name constraints', expect: 'nonconforming_certificate', detail: /nameConstraints is not critical/, build: () => constrained(dnsConstraints(['example.com'], [], false), ['a.example.com']) },
  { name: 'intermediate with non-critical basicConstraints', expect: 'nonconforming_certificate', detail: /basicConstraints is not critical/, build: async () => { const ca = await issue({ cn: 'Soft CA', ca: true, issuer: root, basicConstraints: 'non-critical' }); return chain(await device(ca), [ca], [root]) } },
  { name: 'root with non-critical basicConstraints', expect: 'nonconforming_certificate', detail: /registered CA.*basicConstraints/, build: async () => { const r = await issue({ cn: 'Soft Root', ca: true, basicConstraints: 'non-critical' }); return chain(await device(r), [], [r]) } },
  { name: 'intermediate without a subjectKeyIdentifier', expect: 'nonconforming_certificate', detail: /subjectKeyIdentifier/, build: async () => { const ca = await issue({ cn: 'No SKI CA', ca: true, issuer: root, omitKeyIds: ['ski'] }); return chain(await device(ca), [ca], [root]) } },
  { name: 'device certificate (v3) without an authorityKeyIdentifier', expect: 'nonconforming_certificate', detail: /authorityKeyIdentifier/, build: async () => chain(await device(int2, { omitKeyIds: ['aki'] }), [int2, int1], [root]) },
  { name: 'intermediate without an authorityKeyIdentifier', expect: 'nonconforming_certificate', detail: /intermediate.*authorityKeyIdentifier/, build: async () => { const ca = await issue({ cn: 'No AKI CA', ca: true, issuer: root, omitKeyIds: ['aki'] }); return chain(await device(ca), [ca], [root]) } },
  { name: 'critical authorityInfoAccess on the device certificate', expect: 'nonconforming_certificate', detail: /authorityInfoAccess/, build: async () => chain(await device(int2, { extraExtensions: [new x509.Extension('1.3.6.1.5.5.7.1.1', true, tlv(0x30))] }), [int2, int1], [root]) },
  { name: 'keyCertSign on a device certificate that is not a CA', expect: 'leaf_key_usage', detail: /keyCertSign/, build: async () => chain(await device(int2, { keyUsage: KU.digitalSignature | KU.keyCertSign }), [int2, int1], [root]) },

  // Name constraints.
  { name: 'wildcard SAN against an excluded host it covers (CVE-2025-61727)', expect: 'name_constraints_violated', detail: /excluded/, build: () => constrained(dnsConstraints(['example.com'], ['bad.example.com']), ['*.example.com']) },
  { name: 'wildcard SAN inside the permitted subtree', expect: 'ok', build: () => constrained(dnsConstraints(['example.com'], ['bad.other.com']), ['*.example.com']) },
  { name: 'dNSName constraint with a leading period is malformed', expect: 'name_constraints_violated', detail: /malformed/, build: () => constrained(dnsConstraints(['.example.com']), ['a.example.com']) },
  { name: 'malformed SAN under a permitted subtree', expect: 'name_constraints_violated', detail: /malformed/, build: () => constrained(dnsConstraints(['example.com']), ['.example.com']) },
  { name: 'underscore SAN under a permitted subtree', expect: 'name_constraints_violated', detail: /malformed/, build: () => constrained(dnsConstraints(['example.com']), ['a_b.example.com']) },
  { name: 'excluded directoryName O=Evil binds a subject O=" EVIL" in UTF8String', expect: 'name_constraints_violated', detail: /excluded/, build: excludedDirReencoded },
  { name: 'underscore SAN with no name constraints (names are not certgate\'s business)', expect: 'ok', build: async () => chain(await device(int2, { sanDns: ['a_b.example.com'] }), [int2, int1], [root]) },

  // Certificate policies (RFC 5280 §6.1 with user-initial-policy-set = anyPolicy).
  { name: 'explicit policy required, CA and device assert the same policy', expect: 'ok', build: () => policyChain([requireExplicit, policies(POLICY)], [policies(POLICY)]) },
  { name: 'explicit policy required, the device asserts another policy', expect: 'policy_constraints_violated', build: () => policyChain([requireExplicit, policies(POLICY)], [policies(OTHER_POLICY)]) },
  { name: 'explicit policy required, CA asserts anyPolicy, device a policy', expect: 'ok', build: () => policyChain([requireExplicit, policies(ANY_POLICY)], [policies(POLICY)]) },
  { name: 'explicit policy required, CA maps its policy to the device\'s', expect: 'ok', build: () => policyChain([requireExplicit, policies(POLICY), new x509.Extension('2.5.29.33', false, tlv(0x30, tlv(0x30, POLICY, OTHER_POLICY)))], [policies(OTHER_POLICY)]) },
  { name: 'a policy mapping to anyPolicy', expect: 'policy_constraints_violated', detail: /anyPolicy/, build: () => policyChain([policies(POLICY), new x509.Extension('2.5.29.33', false, tlv(0x30, tlv(0x30, POLICY, ANY_POLICY)))], [policies(POLICY)]) },
  { name: 'no policy required: a device without policies under a CA with policies', expect: 'ok', build: () => policyChain([policies(POLICY)], []) },

  // Parsing and path building.
  {
    // readName decodes only CN and emailAddress; every other string is checked as strictly (the
    // subject's comparison keys are computed later, when a constraint asks for them).
    name: 'invalid UTF-8 in an attribute of the device subject that is not its CN',
    expect: 'malformed_certificate',
    detail: /UTF-8/,
    build: async () => {
      // The generator re-encodes strings, so the bad byte is put in afterwards (over a '~'): the
      // certificate is refused while it is parsed, before its signature is looked at.
      const leaf = await leafNamed(int2, new x509.Name(tlv(0x30, atv(O, utf8('A~')), atv(CN, utf8('device-1')))), new x509.Name(new x509.X509Certificate(int2.der).subjectName.toArrayBuffer()))
      const at = Buffer.from(leaf).indexOf(Buffer.from([0x0c, 0x02, 0x41, 0x7e]))
      assert.ok(at > 0)
      leaf[at + 3] = 0xc3
      return chain(leaf, [int2, int1], [root])
    }
  },
  {
    name: 'unneeded intermediate with an unknown critical extension whose value is empty',
    expect: 'ok',
    build: async () => chain(await device(int2), [int2, await issue({ cn: 'Odd CA', ca: true, issuer: root, extraExtensions: [new x509.Extension('1.3.6.1.4.1.55555.9', true, new Uint8Array(0))] }), int1], [root])
  },
  { name: 'device certificate with an unknown critical extension whose value is empty', expect: 'unknown_critical_extension', build: async () => chain(await device(int2, { extraExtensions: [new x509.Extension('1.3.6.1.4.1.55555.9', true, new Uint8Array(0))] }), [int2, int1], [root]) },
  { name: 'issuer Name re-encoded (UTF8String, capitals, spaces) still chains (RFC 5280 §7.1)', expect: 'ok', build: reencodedIssuerChain }
]

for (const row of rows) {
  test(`profile rules: ${row.name}`, async () => {
    const r = await validateChain(await row.build())
    if (row.expect === 'ok') {
      assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.detail}`)
      assert.equal(r.deviceId, 'device-1')
    } else {
      assert.equal(r.ok ? 'ok' : r.reason, row.expect, r.ok ? '' : r.detail)
      if (row.detail !== undefined && !r.ok) assert.match(r.detail, row.detail)
    }
  })
}

// ---- OpenSSL 3 defaults ----------------------------------------------------------------------

/** The v3_ca and usr_cert sections as OpenSSL ships them, and a minimal `openssl ca` setup. */
const OPENSSL_CNF = `
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
default_days = 30
policy = policy_anything
copy_extensions = none
[ policy_anything ]
commonName = supplied
organizationName = optional
[ req ]
distinguished_name = req_dn
x509_extensions = v3_ca
[ req_dn ]
[ v3_ca ]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical,CA:true
[ usr_cert ]
basicConstraints = CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
`

test('OpenSSL 3: req -x509 root, x509 -req v3_ca intermediate, devices from x509 -req (bare and usr_cert) and ca', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-openssl-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' }) }
  const pemDer = (file: string): Uint8Array => {
    const b64 = readFileSync(join(dir, file), 'utf8').replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '')
    return new Uint8Array(Buffer.from(b64, 'base64'))
  }
  writeFileSync(join(dir, 'openssl.cnf'), OPENSSL_CNF)
  writeFileSync(join(dir, 'index.txt'), '')
  writeFileSync(join(dir, 'serial'), '1000\n')
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  ssl('req', '-x509', ...ec, '-keyout', 'root.key', '-out', 'root.pem', '-subj', '/O=Fleet/CN=Fleet Root', '-days', '30', '-config', 'openssl.cnf')
  ssl('req', '-new', ...ec, '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/O=Fleet/CN=Fleet Issuing CA', '-config', 'openssl.cnf')
  ssl('x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-out', 'int.pem', '-days', '30', '-extfile', 'openssl.cnf', '-extensions', 'v3_ca')
  for (const d of ['bare', 'usr', 'ca']) ssl('req', '-new', ...ec, '-keyout', `${d}.key`, '-out', `${d}.csr`, '-subj', `/CN=device-${d}`, '-config', 'openssl.cnf')
  ssl('x509', '-req', '-in', 'bare.csr', '-CA', 'int.pem', '-CAkey', 'int.key', '-out', 'bare.pem', '-days', '30') // v1, no extensions
  ssl('x509', '-req', '-in', 'usr.csr', '-CA', 'int.pem', '-CAkey', 'int.key', '-out', 'usr.pem', '-days', '30', '-extfile', 'openssl.cnf', '-extensions', 'usr_cert')
  ssl('ca', '-batch', '-config', 'openssl.cnf', '-cert', 'int.pem', '-keyfile', 'int.key', '-extensions', 'usr_cert', '-in', 'ca.csr', '-out', 'ca.pem', '-notext')
  for (const d of ['bare', 'usr', 'ca']) {
    const r = await validateChain({ leaf: pemDer(`${d}.pem`), intermediates: [pemDer('int.pem')], anchors: [pemDer('root.pem')] })
    assert.ok(r.ok, r.ok ? '' : `device-${d}: ${r.reason}: ${r.detail}`)
    assert.equal(r.deviceId, `device-${d}`)
  }

  // A root with a chosen SKI: OpenSSL 3.0 writes the key's hash as its AKI, so AKI != SKI.
  ssl('req', '-x509', ...ec, '-keyout', 'own.key', '-out', 'own.pem', '-subj', '/O=Fleet/CN=Own SKI Root', '-days', '30', '-config', 'openssl.cnf', '-addext', 'subjectKeyIdentifier=0102030405060708')
  ssl('req', '-new', ...ec, '-keyout', 'own-dev.key', '-out', 'own-dev.csr', '-subj', '/CN=device-own', '-config', 'openssl.cnf')
  ssl('x509', '-req', '-in', 'own-dev.csr', '-CA', 'own.pem', '-CAkey', 'own.key', '-out', 'own-dev.pem', '-days', '30', '-extfile', 'openssl.cnf', '-extensions', 'usr_cert')
  const own = await validateChain({ leaf: pemDer('own-dev.pem'), intermediates: [], anchors: [pemDer('own.pem')] })
  assert.ok(own.ok, own.ok ? '' : `device-own: ${own.reason}: ${own.detail}`)
})
