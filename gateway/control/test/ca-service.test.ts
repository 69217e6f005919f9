// What this proves: the CA service, over a real SQLite registry, refuses every upload that is not
// exactly one usable CA certificate, and each refusal has its own code. Private keys of every PEM
// flavour are refused, as are PKCS#12 bundles (base64 or raw), device certificates, expired CAs,
// garbage, several certificates and bad names. The only path to a verified CA is the proof of
// possession. That proof needs a fresh code and a certificate whose CN is exactly that code,
// signed by the uploaded CA's own key, presented before the code expires and before the CA
// certificate is replaced. A code works once. deviceIdProblem accepts exactly the IoT Hub
// device-id alphabet up to 128 characters, and names the offending character or length otherwise.
import { test, before, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import forge from 'node-forge'
import { CaError, createCaService, type CaErrorCode, type CaService } from '../ca-service.js'
import { deviceIdProblem } from '../device-id.js'
import { openSqliteRegistry } from '../../registry/sqlite-registry.js'
import type { Registry } from '../../registry/types.js'
import { issue, toPem, type Issued } from '../../pki/issue.js'
import { KeyUsageFlags } from '@peculiar/x509'

const HOUR = 3_600_000
const DAY = 86_400_000
let dir: string
let fileNo = 0
let ca: Issued
let device: Issued

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'certgate-ca-service-'))
  ca = await issue({ cn: 'certgate Root CA', ca: true })
  device = await issue({ cn: 'dev-1', issuer: ca })
})
after(() => { rmSync(dir, { recursive: true, force: true }) })

interface Fixture { registry: Registry, svc: CaService, clock: { t: number } }

/** A service over a registry on a fresh file; `clock` is the injected now when `injected`. */
function fresh (t: TestContext, injected = false): Fixture {
  const registry = openSqliteRegistry(join(dir, `registry-${++fileNo}.db`))
  t.after(async () => { await registry.close() })
  const clock = { t: Date.now() }
  const svc = createCaService(registry, injected ? { verificationCodeTtlMs: HOUR, now: () => clock.t } : { verificationCodeTtlMs: HOUR })
  return { registry, svc, clock }
}

async function refuses (p: Promise<unknown>, code: CaErrorCode, status = 400): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof CaError, `expected a CaError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    assert.equal(err.status, status)
    assert.ok(err.message.length > 0)
    return true
  })
}

const sha256 = (der: Uint8Array): string => createHash('sha256').update(der).digest('hex')

/** Uploads `cert` as `name` and returns the outstanding verification code. */
async function uploadWithCode (f: Fixture, name: string, cert: Issued): Promise<string> {
  await f.svc.upload(name, cert.pem)
  const rec = await f.svc.generateVerificationCode(name)
  assert.ok(rec.verificationCode !== null)
  return rec.verificationCode
}

test('upload stores a CA unverified; the same certificate again changes nothing; a different one unverifies', async (t) => {
  const f = fresh(t)
  const { record, created } = await f.svc.upload('root', ca.pem)
  assert.equal(created, true)
  assert.equal(record.isVerified, false)
  assert.equal(record.thumbprint, sha256(ca.der))
  assert.match(record.subject, /CN=certgate Root CA/)
  assert.deepEqual(Buffer.from(record.certificateDer), Buffer.from(ca.der))

  const code = await uploadWithCode(f, 'root', ca)
  const verified = await f.svc.verify('root', (await issue({ cn: code, issuer: ca })).pem)
  assert.equal(verified.isVerified, true)

  const same = await f.svc.upload('root', ca.pem)
  assert.equal(same.created, false)
  assert.equal(same.record.isVerified, true, 'an idempotent re-upload must not unverify the CA')

  const other = await issue({ cn: 'certgate Root CA', ca: true })
  const replaced = await f.svc.upload('root', other.pem)
  assert.equal(replaced.created, false)
  assert.equal(replaced.record.isVerified, false, 'a different certificate must be proven again')
})

test('upload refuses private keys of every PEM flavour, alone or beside a certificate', async (t) => {
  const f = fresh(t)
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  const keys: Array<[string, string]> = [
    ['PRIVATE KEY', ca.keyPem],
    ['EC PRIVATE KEY', ec.export({ type: 'sec1', format: 'pem' }).toString()],
    ['RSA PRIVATE KEY', rsa.export({ type: 'pkcs1', format: 'pem' }).toString()],
    ['ENCRYPTED PRIVATE KEY', rsa.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }).toString()]
  ]
  for (const [label, pem] of keys) {
    assert.ok(pem.startsWith(`-----BEGIN ${label}-----`), `fixture for ${label}`)
    for (const upload of [pem, ca.pem + pem, pem + ca.pem]) {
      await refuses(f.svc.upload('root', upload), 'private_key_in_upload')
    }
  }
  assert.equal(await f.registry.getCa('root'), undefined, 'nothing is stored')
})

test('upload refuses PKCS#12 bundles, as base64 and as raw DER bytes', async (t) => {
  const f = fresh(t)
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 })
  const cert = forge.pki.createCertificate()
  cert.publicKey = keys.publicKey
  cert.serialNumber = '01'
  cert.validity.notBefore = new Date(Date.now() - DAY)
  cert.validity.notAfter = new Date(Date.now() + DAY)
  const attrs = [{ name: 'commonName', value: 'certgate p12 CA' }]
  cert.setSubject(attrs)
  cert.setIssuer(attrs)
  cert.setExtensions([{ name: 'basicConstraints', cA: true, critical: true }])
  cert.sign(keys.privateKey, forge.md.sha256.create())

  const bundles: Array<[string, string]> = []
  for (const [what, key] of [['certificate only', null], ['certificate and key', keys.privateKey]] as const) {
    const der = forge.asn1.toDer(forge.pkcs12.toPkcs12Asn1(key, [cert], 'pw')).getBytes()
    const b64 = forge.util.encode64(der)
    bundles.push([`${what}, base64`, b64])
    bundles.push([`${what}, base64 wrapped at 64 columns`, b64.replace(/(.{64})/g, '$1\n')])
    // forge's binary string is the DER decoded as latin1, one character per byte.
    bundles.push([`${what}, raw DER as latin1`, der])
  }
  for (const [what, upload] of bundles) {
    await assert.rejects(f.svc.upload('root', upload), (err: unknown) => {
      assert.ok(err instanceof CaError)
      assert.equal(err.code, 'pkcs12_in_upload', `${what}: ${err.message}`)
      return true
    })
  }
  assert.equal(await f.registry.getCa('root'), undefined)
})

test('upload refuses non-CA, nonconforming, expired, not-yet-valid and weak-keyed certificates', async (t) => {
  const f = fresh(t)
  await refuses(f.svc.upload('root', device.pem), 'not_a_ca')
  await refuses(f.svc.upload('root', (await issue({ cn: 'no bc', ca: true, basicConstraints: 'omit' })).pem), 'not_a_ca')
  // A CA whose keyUsage lacks keyCertSign.
  await refuses(f.svc.upload('root', (await issue({ cn: 'no keyCertSign', ca: true, keyUsage: KeyUsageFlags.digitalSignature | KeyUsageFlags.cRLSign })).pem), 'not_a_ca')
  // CAs the validator would refuse as a path's anchor (RFC 5280 §4.2.1.9, §4.2.1.2): refused now, not after verification.
  await refuses(f.svc.upload('root', (await issue({ cn: 'bc not critical', ca: true, basicConstraints: 'non-critical' })).pem), 'nonconforming_ca')
  await refuses(f.svc.upload('root', (await issue({ cn: 'no SKI', ca: true, omitKeyIds: ['ski'] })).pem), 'nonconforming_ca')
  const expired = await issue({ cn: 'old CA', ca: true, notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) })
  await refuses(f.svc.upload('root', expired.pem), 'ca_expired')
  const future = await issue({ cn: 'future CA', ca: true, notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 3 * DAY) })
  await refuses(f.svc.upload('root', future.pem), 'ca_not_yet_valid')
  await refuses(f.svc.upload('root', (await issue({ cn: 'weak CA', ca: true, keyAlgorithm: 'RSA-1024' })).pem), 'weak_ca_key')
  assert.equal(await f.registry.getCa('root'), undefined)
})

test('upload refuses garbage, broken certificate blocks and anything but exactly one certificate', async (t) => {
  const f = fresh(t)
  await refuses(f.svc.upload('root', 'this is not a certificate at all'), 'malformed_pem')
  await refuses(f.svc.upload('root', ''), 'malformed_pem')
  await refuses(f.svc.upload('root', '-----BEGIN CERTIFICATE-----\n!!** not base64 **!!\n-----END CERTIFICATE-----\n'), 'malformed_pem')
  await refuses(f.svc.upload('root', toPem(new Uint8Array(Buffer.from('hello, I am not DER at all')), 'CERTIFICATE')), 'malformed_certificate')
  await refuses(f.svc.upload('root', toPem(ca.der.subarray(0, ca.der.length - 10), 'CERTIFICATE')), 'malformed_certificate')
  await refuses(f.svc.upload('root', ca.pem + ca.pem), 'not_one_certificate')
  const other = await issue({ cn: 'another CA', ca: true })
  await refuses(f.svc.upload('root', ca.pem + other.pem), 'not_one_certificate')
  await refuses(f.svc.upload('root', ca.pem + toPem(new Uint8Array([0x30, 0x00]), 'X509 CRL')), 'not_one_certificate')
  assert.equal(await f.registry.getCa('root'), undefined)
})

test('upload refuses invalid CA names and accepts the edge of the valid ones', async (t) => {
  const f = fresh(t)
  for (const name of ['', '../x', 'a b', 'a'.repeat(129), '.hidden', '-dash', 'a/b', 'root\n', 'ré']) {
    await refuses(f.svc.upload(name, ca.pem), 'invalid_ca_name')
  }
  for (const name of ['a', 'a'.repeat(128), 'Root_CA-2.v1', '0']) {
    assert.equal((await f.svc.upload(name, ca.pem)).created, true, name)
  }
})

test('proof of possession: a certificate with CN = code signed by the CA verifies it', async (t) => {
  const f = fresh(t)
  await f.svc.upload('root', ca.pem)
  const before = Date.now()
  const rec = await f.svc.generateVerificationCode('root')
  const code = rec.verificationCode ?? ''
  assert.match(code, /^[0-9A-F]{32}$/)
  const expiry = Date.parse(rec.verificationCodeExpiry ?? '')
  assert.ok(expiry >= before + HOUR - 1000 && expiry <= Date.now() + HOUR + 1000, `expiry ${rec.verificationCodeExpiry ?? 'null'} is not about an hour ahead`)
  assert.equal(rec.isVerified, false)
  assert.notEqual((await f.svc.generateVerificationCode('root')).verificationCode, code, 'codes are random')
  const latest = (await f.svc.generateVerificationCode('root')).verificationCode ?? ''

  const verified = await f.svc.verify('root', (await issue({ cn: latest, issuer: ca })).pem)
  assert.equal(verified.isVerified, true)
  assert.equal(verified.verificationCode, null)
  assert.equal((await f.registry.getCa('root'))?.isVerified, true)
})

test('proof of possession: a wrong CN is verification_cn_mismatch and leaves the code usable', async (t) => {
  const f = fresh(t)
  const code = await uploadWithCode(f, 'root', ca)
  await refuses(f.svc.verify('root', (await issue({ cn: 'not-the-code', issuer: ca })).pem), 'verification_cn_mismatch')
  await refuses(f.svc.verify('root', (await issue({ cn: code.toLowerCase(), issuer: ca })).pem), 'verification_cn_mismatch')
  await refuses(f.svc.verify('root', (await issue({ cn: [code, code], issuer: ca })).pem), 'verification_cn_mismatch')
  assert.equal((await f.registry.getCa('root'))?.isVerified, false)
  assert.equal((await f.svc.verify('root', (await issue({ cn: code, issuer: ca })).pem)).isVerified, true)
})

test('proof of possession: a certificate signed by another key is verification_wrong_signer', async (t) => {
  const f = fresh(t)
  const code = await uploadWithCode(f, 'root', ca)
  const impostor = await issue({ cn: 'certgate Root CA', ca: true })
  await refuses(f.svc.verify('root', (await issue({ cn: code, issuer: impostor })).pem), 'verification_wrong_signer')
  await refuses(f.svc.verify('root', (await issue({ cn: code })).pem), 'verification_wrong_signer')
  assert.equal((await f.registry.getCa('root'))?.isVerified, false)
  assert.equal((await f.registry.getCa('root'))?.verificationCode, code, 'a failed proof does not spend the code')
})

test('proof of possession: a verification certificate outside its validity period is refused', async (t) => {
  const f = fresh(t)
  const code = await uploadWithCode(f, 'root', ca)
  const expired = await issue({ cn: code, issuer: ca, notBefore: new Date(Date.now() - 2 * DAY), notAfter: new Date(Date.now() - DAY) })
  await refuses(f.svc.verify('root', expired.pem), 'verification_cert_invalid_time')
  const future = await issue({ cn: code, issuer: ca, notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 2 * DAY) })
  await refuses(f.svc.verify('root', future.pem), 'verification_cert_invalid_time')
  assert.equal((await f.registry.getCa('root'))?.isVerified, false)
})

test('proof of possession: a code is single use', async (t) => {
  const f = fresh(t)
  const code = await uploadWithCode(f, 'root', ca)
  const proof = (await issue({ cn: code, issuer: ca })).pem
  assert.equal((await f.svc.verify('root', proof)).isVerified, true)
  await refuses(f.svc.verify('root', proof), 'no_verification_code')
  await refuses(f.svc.verify('root', (await issue({ cn: code, issuer: ca })).pem), 'no_verification_code')
})

test('proof of possession: a code is not good at or after its expiry (injected clock)', async (t) => {
  const f = fresh(t, true)
  const code = await uploadWithCode(f, 'root', ca)
  assert.equal(Date.parse((await f.registry.getCa('root'))?.verificationCodeExpiry ?? ''), f.clock.t + HOUR)
  f.clock.t += HOUR
  await refuses(f.svc.verify('root', (await issue({ cn: code, issuer: ca })).pem), 'verification_code_expired')
  assert.equal((await f.registry.getCa('root'))?.isVerified, false)

  // A fresh code, used one millisecond before it expires, works.
  const code2 = (await f.svc.generateVerificationCode('root')).verificationCode ?? ''
  f.clock.t += HOUR - 1
  assert.equal((await f.svc.verify('root', (await issue({ cn: code2, issuer: ca })).pem)).isVerified, true)
})

test('proof of possession: a code issued before the certificate was replaced is certificate_replaced', async (t) => {
  const f = fresh(t)
  const code = await uploadWithCode(f, 'root', ca)
  // The same key re-issued (a renewed CA): the proof's signature checks out, but the certificate changed.
  const renewed = await issue({ cn: 'certgate Root CA', ca: true, keys: ca.keys })
  assert.notEqual(sha256(renewed.der), sha256(ca.der))
  await f.svc.upload('root', renewed.pem)
  await refuses(f.svc.verify('root', (await issue({ cn: code, issuer: renewed })).pem), 'certificate_replaced')
  assert.equal((await f.registry.getCa('root'))?.isVerified, false)

  // A new code for the current certificate works.
  const code2 = (await f.svc.generateVerificationCode('root')).verificationCode ?? ''
  assert.equal((await f.svc.verify('root', (await issue({ cn: code2, issuer: renewed })).pem)).isVerified, true)
})

test('proof of possession: a code replaced by a newer one between read and consume is wrong_verification_code', async (t) => {
  const f = fresh(t)
  const code = await uploadWithCode(f, 'root', ca)
  // A registry whose consume runs just after a concurrent generateVerificationCode.
  const racing: Registry = {
    ...f.registry,
    consumeVerificationCode: async (name, c, thumbprint, now) => {
      await f.registry.setVerificationCode(name, 'NEWER', new Date(Date.now() + HOUR).toISOString())
      return await f.registry.consumeVerificationCode(name, c, thumbprint, now)
    }
  }
  const svc = createCaService(racing, { verificationCodeTtlMs: HOUR })
  await refuses(svc.verify('root', (await issue({ cn: code, issuer: ca })).pem), 'wrong_verification_code')
  assert.equal((await f.registry.getCa('root'))?.isVerified, false)
})

test('unknown CA names are ca_not_found with status 404', async (t) => {
  const f = fresh(t)
  await refuses(f.svc.generateVerificationCode('nope'), 'ca_not_found', 404)
  await refuses(f.svc.verify('nope', (await issue({ cn: 'ABC', issuer: ca })).pem), 'ca_not_found', 404)
  await refuses(f.svc.verify('root', device.pem), 'ca_not_found', 404)
})

test('deviceIdProblem accepts the IoT Hub alphabet up to 128 characters', () => {
  for (const id of ['dev-1', "-:.+%_#*?!(),=@;$'", 'ABCXYZabcxyz0123456789', 'a'.repeat(128), "a-b:c.d+e%f_g#h*i?j!k(l)m,n=o@p;q$r's"]) {
    assert.equal(deviceIdProblem(id), undefined, id)
  }
})

test('deviceIdProblem names the offending length or character', () => {
  const cases: Array<[string, RegExp]> = [
    ['a'.repeat(129), /129 characters.*at most 128/],
    ['', /empty/],
    ['a b', /U\+0020 at position 2/],
    ['a/b', /'\/' at position 2/],
    ['é', /U\+00E9 at position 1/],
    ['dev\u0000', /U\+0000 at position 4/],
    ['x"y', /'"' at position 2/],
    ['back\\slash', /'\\' at position 5/],
    ['tab\there', /U\+0009 at position 4/]
  ]
  for (const [id, expected] of cases) {
    const problem = deviceIdProblem(id)
    assert.ok(problem !== undefined, `${JSON.stringify(id)} must be refused`)
    assert.match(problem, expected, JSON.stringify(id))
  }
})

test('deviceIdProblem: the whole-id check and the per-character rule agree on every character', () => {
  // Connections take the one-regex path; refusals the loop that names the character. Neither may
  // let through what the other refuses (a trailing newline included: JS's $ is the end of input).
  const alphabet = "ABCXYZabcxyz0123456789-:.+%_#*?!(),=@;$'"
  for (let code = 0; code < 0x300; code++) {
    const ch = String.fromCharCode(code)
    const allowed = alphabet.includes(ch) || /[A-Za-z0-9]/.test(ch)
    for (const id of [ch, `dev-${ch}`, `${ch}-1`, `dev-1${ch}\n`]) {
      const problem = deviceIdProblem(id)
      const expected = allowed && !id.endsWith('\n') && id !== '.'
      assert.equal(problem === undefined, expected, `${JSON.stringify(id)}: ${problem ?? 'accepted'}`)
    }
  }
})

test('deviceIdProblem names a character outside the BMP by its code point', () => {
  const problem = deviceIdProblem('emoji-\u{1F600}')
  assert.ok(problem !== undefined, 'an emoji is refused (this part holds)')
  assert.match(problem, /U\+1F600 at position 7/)
})
