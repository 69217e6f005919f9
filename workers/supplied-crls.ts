// Revocation from CRLs the library's caller supplies (validateChain's `crls`), RFC 5280 §6.3: every
// certificate of a candidate path except the trust anchor must have its status decided by a CRL
// of its issuer that verifies with the key of a certificate of that very path bearing the issuer's
// name — its issuer, or one above it of the same name after a key rollover (self-issued) — so the
// CRL issuer's path ends at the same trust anchor (§6.3.3 (f): names, authorityKeyIdentifier,
// cRLSign, signature). Listed there → `cert_revoked`; no usable
// CRL says "not revoked" → `revocation_unknown`. A CRL that does not verify is ignored (it can
// neither revoke nor clear), a CRL past its nextUpdate can still revoke but not clear. The gateway
// never gets here: its CRLs are checked at upload (revocation.ts). Pure, bounded: each (CRL, issuer
// certificate) pair is verified at most once per call, and the serials of a CRL are hashed once.
import { checkCrlIssuer, crlErrorIssuer, parseCrl, type Crl } from './crl.js'
import type { Certificate } from './certificate.js'
import type { Refusal } from './types.js'
import { errorMessage } from './errors.js'

/** CRLs taken per call. */
export const MAX_SUPPLIED_CRLS = 64

interface SuppliedCrl {
  readonly number: number
  readonly crl: Crl
  readonly serials: ReadonlySet<string>
  /** Why it cannot be used, whatever the issuer (nonconforming), else undefined. */
  readonly unusable: string | undefined
  /** Issuer certificate → why the CRL does not verify with it ('' when it does). */
  readonly checked: WeakMap<Certificate, string>
}

export interface SuppliedCrls {
  /** The supplied CRLs by issuer Name (comparison key). */
  readonly byIssuer: ReadonlyMap<string, readonly SuppliedCrl[]>
  /** Issuers (comparison key) with a CRL certgate cannot apply (delta, partitioned, indirect…): why. */
  readonly undecidable: ReadonlyMap<string, string>
}

/** PEM text (`X509 CRL`), as a string or its bytes, or DER bytes. */
function crlBytes (input: Uint8Array | string): Uint8Array {
  const text = typeof input === 'string' ? input : (input[0] === 0x2d ? Buffer.from(input).toString('latin1') : undefined)
  if (text === undefined) return input as Uint8Array
  const pem = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(text)
  const body = (pem === null ? text : pem[1] ?? '').replace(/\s+/g, '')
  if (body === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) throw new Error('neither a PEM "X509 CRL" block nor base64 of the DER')
  return new Uint8Array(Buffer.from(body, 'base64'))
}

/**
 * Parses the caller's CRLs. One outside what certgate supports (delta CRLs, issuingDistributionPoint,
 * certificateIssuer entries, unknown critical extensions) makes its issuer undecidable: ignoring it
 * could miss a revocation it carries. One that cannot be read at all refuses the whole call: whose
 * CRL it was, hence the certificates whose status it might decide, is unknown.
 */
export function readSuppliedCrls (inputs: ReadonlyArray<Uint8Array | string>): { ok: true, crls: SuppliedCrls } | { ok: false, detail: string } {
  if (inputs.length > MAX_SUPPLIED_CRLS) return { ok: false, detail: `${inputs.length} CRLs were supplied; at most ${MAX_SUPPLIED_CRLS} are taken` }
  const byIssuer = new Map<string, SuppliedCrl[]>()
  const undecidable = new Map<string, string>()
  for (const [i, input] of inputs.entries()) {
    let crl: Crl
    try {
      crl = parseCrl(crlBytes(input))
    } catch (err) {
      const issuer = crlErrorIssuer(err)
      if (issuer !== undefined) {
        if (!undecidable.has(issuer)) undecidable.set(issuer, `supplied CRL #${i + 1} of its issuer cannot be applied: ${errorMessage(err)}`)
        continue
      }
      return { ok: false, detail: `supplied CRL #${i + 1} cannot be read, so revocation cannot be decided for any certificate: ${errorMessage(err)}` }
    }
    // RFC 5280 §5.2.3: conforming CRL issuers MUST include a non-critical cRLNumber.
    const unusable = crl.crlNumber === undefined
      ? 'it has no cRLNumber (RFC 5280 §5.2.3)'
      : crl.crlNumberCritical ? 'its cRLNumber is marked critical (RFC 5280 §5.2.3)' : undefined
    const entry: SuppliedCrl = { number: i + 1, crl, serials: new Set(crl.serials), unusable, checked: new WeakMap() }
    const same = byIssuer.get(crl.issuerKey)
    if (same === undefined) byIssuer.set(crl.issuerKey, [entry])
    else same.push(entry)
  }
  return { ok: true, crls: { byIssuer, undecidable } }
}

/** Why `c` cannot be verified with `signer` ('' when it can), once per pair. */
function verifiedWith (c: SuppliedCrl, signer: Certificate): string {
  let why = c.checked.get(signer)
  if (why === undefined) {
    const { result, detail } = checkCrlIssuer(c.crl, signer)
    why = result === 'ok' ? '' : detail.replace(/this CA/g, 'the issuer in the path')
    c.checked.set(signer, why)
  }
  return why
}

/** Why `c` cannot speak at `at` for certificates issued under the name of `signers` (path certificates, nearest first); '' when it can. */
function problemWith (c: SuppliedCrl, signers: readonly Certificate[], at: number): string {
  if (c.unusable !== undefined) return c.unusable
  let why = ''
  for (const [k, signer] of signers.entries()) {
    const w = verifiedWith(c, signer)
    if (w === '') { why = ''; break }
    if (k === 0) why = w
  }
  if (why !== '') return why
  // RFC 5280 §5.1.2.4: a CRL issued after the validation time says nothing about it.
  return c.crl.thisUpdate > at ? `its thisUpdate ${new Date(c.crl.thisUpdate).toISOString()} is after the validation time` : ''
}

/** `chain` is leaf first, anchor last. The anchor is trusted as given (RFC 5280 §6.1): not checked. */
export function suppliedCrlProblem (chain: readonly Certificate[], crls: SuppliedCrls | undefined, at: number): Refusal | undefined {
  if (crls === undefined) return undefined
  for (let i = 0; i < chain.length - 1; i++) {
    const cert = chain[i] as Certificate
    // The issuer, then certificates above it of the same name (an earlier key of that CA).
    const signers = chain.slice(i + 1).filter((s) => s.subjectKey() === cert.issuerKey)
    const who = i === 0 ? 'the device certificate' : `intermediate "${(cert.commonNames[0] ?? 'without CN').slice(0, 64)}"`
    let current = false
    const notes: string[] = []
    for (const c of crls.byIssuer.get(cert.issuerKey) ?? []) {
      const problem = problemWith(c, signers, at)
      if (problem !== '') { notes.push(`CRL #${c.number}: ${problem}`); continue }
      // A verified CRL revokes even past its nextUpdate: revoking what it lists is never wrong.
      if (c.serials.has(cert.serial)) return { ok: false, reason: 'cert_revoked', detail: `${who} with serial ${cert.serial} is revoked by supplied CRL #${c.number}` }
      if (c.crl.nextUpdate === undefined || at <= c.crl.nextUpdate) current = true
      else notes.push(`CRL #${c.number}: its nextUpdate ${new Date(c.crl.nextUpdate).toISOString()} is before the validation time`)
    }
    // A CRL of this issuer that could not be applied might revoke it: undecided, whatever the others say.
    const unapplied = crls.undecidable.get(cert.issuerKey)
    if (unapplied !== undefined) return { ok: false, reason: 'revocation_unknown', detail: `the revocation status of ${who} cannot be decided: ${unapplied}` }
    if (!current) {
      const why = notes.length === 0 ? 'no CRL of its issuer was supplied' : notes.join('; ')
      return { ok: false, reason: 'revocation_unknown', detail: `the revocation status of ${who} cannot be decided from the CRLs supplied: ${why}` }
    }
  }
  return undefined
}
