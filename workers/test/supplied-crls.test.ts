// What this proves: the library's validateChain takes CRLs made by `openssl ca -gencrl` (DER bytes,
// PEM string or PEM bytes) and, once given any, decides every certificate of the path but the anchor
// from them: a device or intermediate they list is refused `cert_revoked` (even from a CRL past its
// nextUpdate), and one no usable CRL of its issuer clears is refused `revocation_unknown` — no CRL
// for it, a CRL signed by another key of the issuer's name, one past its nextUpdate, one issued
// after the validation time, or a delta CRL of its issuer. Bad `crls` input is an answer, never a
// throw; without `crls` nothing about revocation is checked.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { issue, issueHierarchy } from '../../gateway/pki/issue.js'
import { validateChain, type ValidateChainInput } from '../../index.js'
import { opensslCrl } from '../../gateway/test/support/openssl-crl.js'

const der = (pem: string): Uint8Array => new Uint8Array(Buffer.from(pem.replace(/-----[A-Z0-9 ]+-----/g, '').replace(/\s+/g, ''), 'base64'))
const HOUR = 3_600_000

test('supplied CRLs decide every certificate of the path but the anchor', async () => {
  const pki = await issueHierarchy({ rootCn: 'lib crl root' })
  const leaf = await issue({ cn: 'lib-crl-leaf', issuer: pki.int2 })
  const other = await issue({ cn: 'lib-crl-other', issuer: pki.int2 })
  const base: ValidateChainInput = { leaf: leaf.der, intermediates: [pki.int2.der, pki.int1.der], anchors: [pki.root.der] }
  const rootCrl = await opensslCrl({ ca: pki.root, crlNumber: 1 })
  const int1Crl = await opensslCrl({ ca: pki.int1, crlNumber: 1 })
  const int2Crl = await opensslCrl({ ca: pki.int2, revoked: [other], crlNumber: 1 })
  const all = [rootCrl, int1Crl, int2Crl]

  assert.deepEqual(await validateChain({ ...base, crls: all }), { ok: true, deviceId: 'lib-crl-leaf', anchor: pki.root.der })
  // The same CRLs as DER bytes and as PEM bytes.
  assert.equal((await validateChain({ ...base, crls: all.map(der) })).ok, true)
  assert.equal((await validateChain({ ...base, crls: all.map((p) => new TextEncoder().encode(p)) })).ok, true)

  const revoked = await validateChain({ ...base, leaf: other.der, crls: all })
  assert.equal(!revoked.ok && revoked.reason, 'cert_revoked')
  assert.match(!revoked.ok ? revoked.detail : '', /device certificate with serial .* supplied CRL #3/)

  const intRevoked = await validateChain({ ...base, crls: [await opensslCrl({ ca: pki.root, revoked: [pki.int1], crlNumber: 2 }), int1Crl, int2Crl] })
  assert.equal(!intRevoked.ok && intRevoked.reason, 'cert_revoked')
  assert.match(!intRevoked.ok ? intRevoked.detail : '', /intermediate "certgate Intermediate 1"/)

  // No CRL of int1 (which issued int2): int2's status is undecided.
  const missing = await validateChain({ ...base, crls: [rootCrl, int2Crl] })
  assert.equal(!missing.ok && missing.reason, 'revocation_unknown')
  assert.match(!missing.ok ? missing.detail : '', /intermediate "certgate Intermediate 2" .* no CRL of its issuer/)

  // Another key of int2's name signed it: ignored, so nothing clears the leaf.
  const impostor = await issue({ cn: 'certgate Intermediate 2', ca: true })
  const forged = await validateChain({ ...base, crls: [rootCrl, int1Crl, await opensslCrl({ ca: impostor, crlNumber: 9 })] })
  assert.equal(!forged.ok && forged.reason, 'revocation_unknown')

  // Past its nextUpdate at the validation time: cannot clear, still revokes.
  const later = new Date(Date.now() + 3 * 24 * HOUR)
  const late = await validateChain({ ...base, at: later, crls: all })
  assert.equal(!late.ok && late.reason, 'revocation_unknown')
  assert.match(!late.ok ? late.detail : '', /nextUpdate .* before the validation time/)
  const lateRevoked = await validateChain({ ...base, leaf: other.der, at: later, crls: all })
  assert.equal(!lateRevoked.ok && lateRevoked.reason, 'cert_revoked')

  // Issued after the validation time: says nothing about it.
  const early = await validateChain({ ...base, at: new Date(Date.now() - 2 * HOUR), crls: all })
  assert.equal(!early.ok && early.reason, 'revocation_unknown')

  // Without crls, nothing is checked; with an empty list, nothing can be decided.
  assert.equal((await validateChain({ ...base, leaf: other.der })).ok, true)
  assert.equal((await validateChain({ ...base, crls: [] })).ok, false)
})

test('a delta CRL of an issuer leaves its certificates undecided; unreadable or ill-typed crls are answers, not throws', async () => {
  const ca = await issue({ cn: 'lib crl delta CA', ca: true })
  const leaf = await issue({ cn: 'lib-crl-delta', issuer: ca })
  const base: ValidateChainInput = { leaf: leaf.der, intermediates: [], anchors: [ca.der] }
  const complete = await opensslCrl({ ca, crlNumber: 1 })
  assert.equal((await validateChain({ ...base, crls: [complete] })).ok, true)

  // A deltaCRLIndicator (RFC 5280 §5.2.4) spliced into a real CRL's extensions: parsed up to it, then refused.
  const bytes = der(complete)
  const deltaLike = Buffer.from(bytes)
  // Turn the cRLNumber OID (2.5.29.20 → 55 1d 14) into deltaCRLIndicator (2.5.29.27 → 55 1d 1b): same shape.
  const at = deltaLike.indexOf(Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x14]))
  assert.ok(at > 0)
  deltaLike[at + 4] = 0x1b
  const delta = await validateChain({ ...base, crls: [complete, new Uint8Array(deltaLike)] })
  assert.equal(!delta.ok && delta.reason, 'revocation_unknown')
  assert.match(!delta.ok ? delta.detail : '', /CRL #2 of its issuer cannot be applied: delta CRLs/)

  const garbage = await validateChain({ ...base, crls: [complete, 'not a CRL'] })
  assert.equal(!garbage.ok && garbage.reason, 'revocation_unknown')
  assert.match(!garbage.ok ? garbage.detail : '', /CRL #2 cannot be read/)
  const notArray = await validateChain({ ...base, crls: 'x' as unknown as string[] })
  assert.equal(!notArray.ok && notArray.reason, 'invalid_input')
  const wrongItem = await validateChain({ ...base, crls: [42] as unknown as string[] })
  assert.equal(!wrongItem.ok && wrongItem.reason, 'invalid_input')
  const tooMany = await validateChain({ ...base, crls: new Array<string>(65).fill(complete) })
  assert.equal(!tooMany.ok && tooMany.reason, 'invalid_input')
})
