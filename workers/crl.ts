// Parses and checks one X.509 CRL (RFC 5280 §5) with the project's DER reader: the facts an
// operator sees (issuer, thisUpdate, nextUpdate, crlNumber, count), the revoked serials, and
// whether a given CA signed it. Pure: no I/O, no storage. Only complete, direct CRLs are
// accepted: delta CRLs and indirect CRLs (entries for other issuers) are refused as unsupported.
import { constants, verify } from 'node:crypto'
import {
  DerError, TAG, bitStringBytes, bytesEqual, children, expect, oidString, readBoolean, readSmallUint,
  readTime, readTlv, value, whole, type Tlv
} from './der.js'
import { readSignatureAlgorithm, type SignatureCheck } from './algorithms.js'
import { nameKey } from './name-compare.js'
import type { Certificate } from './certificate.js'

/** A CRL larger than this is refused before parsing (a 100,000-entry CRL is about 4 MB). */
export const MAX_CRL_BYTES = 32 * 1024 * 1024
/** Entries read at most. */
export const MAX_CRL_ENTRIES = 1_000_000

const OID = {
  crlNumber: '2.5.29.20',
  deltaCrlIndicator: '2.5.29.27',
  issuingDistributionPoint: '2.5.29.28',
  authorityKeyId: '2.5.29.35',
  reasonCode: '2.5.29.21',
  invalidityDate: '2.5.29.24',
  certificateIssuer: '2.5.29.29'
} as const

/** RFC 5280 §4.2.1.3 keyUsage bit 6. */
const CRL_SIGN = 6

export class CrlError extends Error {
  override name = 'CrlError'
}

const crlErrorIssuers = new WeakMap<object, string>()

/** For an error parseCrl threw: the issuer Name's comparison key, when the CRL was read that far (whose CRL it was). */
export function crlErrorIssuer (err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? crlErrorIssuers.get(err) : undefined
}

export interface Crl {
  readonly der: Uint8Array
  readonly tbs: Uint8Array
  readonly signature: Uint8Array
  readonly signatureCheck: SignatureCheck
  /** The issuer Name's DER, and its RFC 5280 §7.1 comparison key (as Certificate.issuerKey). */
  readonly issuer: Uint8Array
  readonly issuerKey: string
  readonly thisUpdate: number
  readonly nextUpdate: number | undefined
  /** RFC 5280 §5.2.3; up to 20 octets, hence a bigint. */
  readonly crlNumber: bigint | undefined
  readonly authorityKeyId: Uint8Array | undefined
  /** Hex of each revoked serialNumber's content bytes, as in Certificate.serial. */
  readonly serials: readonly string[]
  /** RFC 5280 §5.2.3: cRLNumber is non-critical; a critical one is recorded (the library refuses such CRLs). */
  readonly crlNumberCritical: boolean
}

/** Parses DER; throws CrlError/DerError for anything malformed or unsupported. */
export function parseCrl (der: Uint8Array): Crl {
  if (der.length > MAX_CRL_BYTES) throw new CrlError(`the CRL is ${der.length} bytes (limit ${MAX_CRL_BYTES})`)
  const outer = expect(der, 0, der.length, TAG.SEQUENCE, 'CertificateList')
  if (outer.end !== der.length) throw new CrlError('trailing bytes after the CRL')
  const [tbsTlv, algTlv, sigTlv, extra] = children(der, outer, 4)
  if (tbsTlv?.tag !== TAG.SEQUENCE || algTlv?.tag !== TAG.SEQUENCE || sigTlv === undefined || extra !== undefined) throw new CrlError('a CertificateList has 3 fields')
  const f = children(der, tbsTlv, 8)
  let i = 0
  // RFC 5280 §5.1.2.1: version v2 (1) when present; v1 CRLs omit it and carry no extensions.
  let v2 = false
  if (f[0]?.tag === TAG.INTEGER) {
    if (readSmallUint(der, f[0]) !== 1) throw new CrlError('unsupported CRL version')
    v2 = true
    i++
  }
  const innerAlg = need(f[i++], TAG.SEQUENCE, 'signature')
  // RFC 5280 §5.1.1.2: the inner algorithm must equal the outer one.
  if (!bytesEqual(whole(der, innerAlg), whole(der, algTlv))) throw new CrlError('signature algorithm mismatch between tbsCertList and CertificateList')
  const issuerTlv = need(f[i++], TAG.SEQUENCE, 'issuer')
  try {
    return parseAfterIssuer(der, f, i, v2, tbsTlv, algTlv, sigTlv, issuerTlv)
  } catch (err) {
    // Unsupported scope (delta, partitioned, indirect, unknown critical extension) or malformed past
    // the issuer: say whose CRL it was, so a caller can refuse to decide for that issuer only.
    if (err instanceof CrlError || err instanceof DerError) {
      try { crlErrorIssuers.set(err, nameKey(der, issuerTlv)) } catch { /* a malformed name: whose CRL it was stays unknown */ }
    }
    throw err
  }
}

function parseAfterIssuer (der: Uint8Array, f: Tlv[], start: number, v2: boolean, tbsTlv: Tlv, algTlv: Tlv, sigTlv: Tlv, issuerTlv: Tlv): Crl {
  let i = start
  const thisTlv = f[i++]
  if (thisTlv === undefined) throw new CrlError('missing thisUpdate')
  const thisUpdate = readTime(der, thisTlv)
  let nextUpdate: number | undefined
  const maybeNext = f[i]
  if (maybeNext !== undefined && (maybeNext.tag === TAG.UTC_TIME || maybeNext.tag === TAG.GENERALIZED_TIME)) { nextUpdate = readTime(der, maybeNext); i++ }
  let serials: string[] = []
  if (f[i]?.tag === TAG.SEQUENCE) serials = readEntries(der, f[i++] as Tlv, v2)
  let crlNumber: bigint | undefined
  let authorityKeyId: Uint8Array | undefined
  let crlNumberCritical = false
  if (f[i]?.tag === 0xa0) {
    if (!v2) throw new CrlError('extensions need a v2 CRL')
    const ext = readCrlExtensions(der, f[i++] as Tlv)
    crlNumber = ext.crlNumber
    authorityKeyId = ext.authorityKeyId
    crlNumberCritical = ext.crlNumberCritical
  }
  if (i !== f.length) throw new CrlError('unexpected field in tbsCertList')
  return {
    der,
    tbs: whole(der, tbsTlv),
    signature: bitStringBytes(der, readTlv(der, sigTlv.start, sigTlv.end)),
    signatureCheck: readSignatureAlgorithm(der, algTlv),
    issuer: whole(der, issuerTlv),
    issuerKey: nameKey(der, issuerTlv),
    thisUpdate,
    nextUpdate,
    crlNumber,
    authorityKeyId,
    serials,
    crlNumberCritical
  }
}

function need (tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv?.tag !== tag) throw new CrlError(`missing or malformed ${what}`)
  return tlv
}

function readEntries (der: Uint8Array, list: Tlv, v2: boolean): string[] {
  const out: string[] = []
  for (const entry of children(der, list, MAX_CRL_ENTRIES)) {
    if (entry.tag !== TAG.SEQUENCE) throw new CrlError('a revoked entry must be a SEQUENCE')
    const [serial, date, ext, more] = children(der, entry, 4)
    if (serial?.tag !== TAG.INTEGER || serial.end === serial.valueStart || date === undefined || more !== undefined) throw new CrlError('bad revoked entry')
    readTime(der, date)
    if (ext !== undefined) {
      if (!v2 || ext.tag !== TAG.SEQUENCE) throw new CrlError('bad entry extensions')
      for (const e of children(der, ext, 16)) {
        const { oid, critical } = extensionHead(der, e)
        // RFC 5280 §5.3.3: certificateIssuer makes the CRL indirect; any unknown critical entry extension refuses the CRL.
        if (oid === OID.certificateIssuer) throw new CrlError('indirect CRLs (certificateIssuer entries) are not supported')
        if (critical && oid !== OID.reasonCode && oid !== OID.invalidityDate) throw new CrlError(`unknown critical entry extension ${oid}`)
      }
    }
    out.push(Buffer.from(value(der, serial)).toString('hex'))
  }
  return out
}

function extensionHead (der: Uint8Array, e: Tlv): { oid: string, critical: boolean, body: Tlv } {
  if (e.tag !== TAG.SEQUENCE) throw new CrlError('an Extension must be a SEQUENCE')
  const parts = children(der, e, 3)
  const oidTlv = parts[0]
  if (oidTlv === undefined) throw new CrlError('empty Extension')
  let critical = false
  let v = parts[1]
  if (v?.tag === TAG.BOOLEAN) { critical = readBoolean(der, v); v = parts[2] } else if (parts.length > 2) throw new CrlError('bad Extension')
  if (v?.tag !== TAG.OCTET_STRING) throw new CrlError('extnValue must be an OCTET STRING')
  const body = readTlv(der, v.valueStart, v.end)
  if (body.end !== v.end) throw new CrlError('trailing bytes in an extension')
  return { oid: oidString(der, oidTlv), critical, body }
}

function readCrlExtensions (der: Uint8Array, wrapper: Tlv): { crlNumber: bigint | undefined, authorityKeyId: Uint8Array | undefined, crlNumberCritical: boolean } {
  const [seq] = children(der, wrapper, 1)
  if (seq?.tag !== TAG.SEQUENCE) throw new CrlError('crlExtensions must be a SEQUENCE')
  let crlNumber: bigint | undefined
  let authorityKeyId: Uint8Array | undefined
  let crlNumberCritical = false
  for (const e of children(der, seq, 32)) {
    const { oid, critical, body } = extensionHead(der, e)
    switch (oid) {
      case OID.crlNumber: {
        // RFC 5280 §5.2.3: a non-negative integer of at most 20 octets.
        const bytes = value(der, body)
        if (body.tag !== TAG.INTEGER || bytes.length === 0 || bytes.length > 21 || ((bytes[0] as number) & 0x80) !== 0) throw new CrlError('bad cRLNumber')
        crlNumber = BigInt('0x' + Buffer.from(bytes).toString('hex'))
        crlNumberCritical = critical
        break
      }
      case OID.authorityKeyId:
        if (body.tag !== TAG.SEQUENCE) throw new CrlError('bad authorityKeyIdentifier')
        for (const item of children(der, body, 3)) if (item.tag === 0x80) authorityKeyId = value(der, item)
        break
      case OID.deltaCrlIndicator:
        throw new CrlError('delta CRLs are not supported; upload the complete CRL')
      case OID.issuingDistributionPoint:
        // A partitioned or indirect CRL covers only part of the issuer's certificates: refused (fail closed on scope).
        throw new CrlError('CRLs with an issuingDistributionPoint (partitioned or indirect) are not supported')
      default:
        if (critical) throw new CrlError(`unknown critical CRL extension ${oid}`)
    }
  }
  return { crlNumber, authorityKeyId, crlNumberCritical }
}

export type CrlCheck = 'ok' | 'crl_issuer_mismatch' | 'crl_bad_signature'

/** Is `crl` issued and signed by `ca`? RFC 5280 §6.3.3 (f)-(g): names match, cRLSign, signature. */
export function checkCrlIssuer (crl: Crl, ca: Certificate): { result: CrlCheck, detail: string } {
  // RFC 5280 §6.3.3 (b)(1), names compared as §7.1 says (the key certificates chain by).
  if (crl.issuerKey !== ca.subjectKey()) return { result: 'crl_issuer_mismatch', detail: 'the CRL\'s issuer name is not this CA\'s subject' }
  if (crl.authorityKeyId !== undefined && ca.subjectKeyId !== undefined && !bytesEqual(crl.authorityKeyId, ca.subjectKeyId)) {
    return { result: 'crl_issuer_mismatch', detail: 'the CRL\'s authorityKeyIdentifier is not this CA\'s subjectKeyIdentifier (another key of the same name signed it)' }
  }
  if (ca.keyUsage !== undefined && ca.keyUsage[CRL_SIGN] !== true) return { result: 'crl_issuer_mismatch', detail: 'this CA\'s keyUsage does not allow cRLSign' }
  const check = crl.signatureCheck
  if (!check.ok) return { result: 'crl_bad_signature', detail: `the CRL is signed with ${check.detail}, which is not accepted` }
  if (check.keyType !== ca.keyType) return { result: 'crl_bad_signature', detail: 'the CRL\'s signature algorithm does not fit this CA\'s key' }
  let good = false
  try {
    const key = ca.publicKey()
    const k = check.pssSaltLength === undefined ? key : { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: check.pssSaltLength }
    good = verify(check.hash, crl.tbs, k, crl.signature)
  } catch {
    good = false
  }
  return good ? { result: 'ok', detail: '' } : { result: 'crl_bad_signature', detail: 'the CRL\'s signature does not verify with this CA\'s key' }
}

export { DerError }
