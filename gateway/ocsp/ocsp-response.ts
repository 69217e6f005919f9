// Reads and checks an OCSP response for one certificate (RFC 6960 §4.2, §3.2): a successful
// BasicOCSPResponse, signed by the issuer itself or by a responder certificate the issuer signed
// for id-kp-OCSPSigning and included in the response (§4.2.2.2), holding a SingleResponse for
// exactly the CertID asked about, current at `now`. Anything else is a failure with a reason —
// never "good". Parsing is bounded (the DER reader checks every length against its parent).
import { constants, verify } from 'node:crypto'
import { bitStringBytes, bytesEqual, children, expect, oidString, readBoolean, readTime, TAG, value, whole, type Tlv } from '../../workers/der.js'
import { parseCertificate, type Certificate } from '../../workers/certificate.js'
import { readSignatureAlgorithm } from '../../workers/algorithms.js'
import { verifySignature } from '../../workers/validate-chain.js'
import { SHA1_OID, type CertId } from './ocsp-request.js'

export const OCSP_FAILURES = [
  'unreachable', 'http_error', 'too_large', 'malformed', 'not_successful', 'bad_signature', 'no_matching_response', 'not_yet_valid', 'expired'
] as const
export type OcspFailureReason = typeof OCSP_FAILURES[number]

export type OcspCertStatus = 'good' | 'revoked' | 'unknown'

export type OcspResult =
  | { readonly status: OcspCertStatus, readonly thisUpdate: number, readonly nextUpdate: number | undefined, readonly revokedAt?: number }
  | { readonly status: 'failed', readonly reason: OcspFailureReason, readonly detail: string }

export interface ResponseCheck {
  /** The certificate that issued the one asked about. */
  readonly issuer: Certificate
  readonly id: CertId
  readonly now: number
  /** Clock skew tolerated on thisUpdate and nextUpdate. */
  readonly skewMs: number
}

const BASIC = '1.3.6.1.5.5.7.48.1.1' // id-pkix-ocsp-basic, §4.2.1
const OCSP_SIGNING = '1.3.6.1.5.5.7.3.9' // id-kp-OCSPSigning, §4.2.2.2
const MAX_RESPONSES = 16
const MAX_CERTS = 4
const RESPONSE_STATUS = ['successful', 'malformedRequest', 'internalError', 'tryLater', '(unused)', 'sigRequired', 'unauthorized']

class Refused extends Error {
  constructor (readonly reason: OcspFailureReason, message: string) { super(message) }
}

export function readOcspResponse (der: Uint8Array, check: ResponseCheck): OcspResult {
  try {
    return read(der, check)
  } catch (err) {
    if (err instanceof Refused) return { status: 'failed', reason: err.reason, detail: err.message }
    return { status: 'failed', reason: 'malformed', detail: `the OCSP response does not parse: ${(err as Error).message}` }
  }
}

function read (der: Uint8Array, check: ResponseCheck): OcspResult {
  // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
  const outer = expect(der, 0, der.length, TAG.SEQUENCE, 'OCSPResponse')
  if (outer.end !== der.length) throw new Refused('malformed', 'trailing bytes after the OCSP response')
  const [statusTlv, bytesWrap] = children(der, outer, 2)
  if (statusTlv?.tag !== 0x0a || statusTlv.end - statusTlv.valueStart !== 1) throw new Refused('malformed', 'no responseStatus')
  const status = der[statusTlv.valueStart] as number
  if (status !== 0) throw new Refused('not_successful', `the responder answered ${RESPONSE_STATUS[status] ?? `status ${status}`} (RFC 6960 §4.2.1)`)
  if (bytesWrap?.tag !== 0xa0) throw new Refused('malformed', 'a successful response without responseBytes')
  const [rb] = children(der, bytesWrap, 1)
  if (rb?.tag !== TAG.SEQUENCE) throw new Refused('malformed', 'bad ResponseBytes')
  const [typeTlv, octets] = children(der, rb, 2)
  if (typeTlv === undefined || oidString(der, typeTlv) !== BASIC || octets?.tag !== TAG.OCTET_STRING) throw new Refused('malformed', 'not a BasicOCSPResponse')
  return basic(value(der, octets), check)
}

/** BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL } */
function basic (b: Uint8Array, check: ResponseCheck): OcspResult {
  const top = expect(b, 0, b.length, TAG.SEQUENCE, 'BasicOCSPResponse')
  if (top.end !== b.length) throw new Refused('malformed', 'trailing bytes after the BasicOCSPResponse')
  const [tbs, alg, sig, certsWrap, extra] = children(b, top, 5)
  if (tbs?.tag !== TAG.SEQUENCE || alg?.tag !== TAG.SEQUENCE || sig === undefined || extra !== undefined) throw new Refused('malformed', 'bad BasicOCSPResponse')
  const signer = signedBy(b, { tbs: whole(b, tbs), alg, signature: bitStringBytes(b, sig) }, certsIn(b, certsWrap), check)
  if (signer === undefined) throw new Refused('bad_signature', 'the response is signed neither by the issuer nor by an OCSP signing certificate the issuer signed (RFC 6960 §4.2.2.2)')
  return single(b, tbs, check)
}

function certsIn (b: Uint8Array, wrap: Tlv | undefined): Certificate[] {
  if (wrap === undefined) return []
  if (wrap.tag !== 0xa0) throw new Refused('malformed', 'bad certs field')
  const [list] = children(b, wrap, 1)
  if (list?.tag !== TAG.SEQUENCE) throw new Refused('malformed', 'bad certs field')
  return children(b, list, MAX_CERTS).map((c) => parseCertificate(new Uint8Array(whole(b, c))))
}

interface Signed { readonly tbs: Uint8Array, readonly alg: Tlv, readonly signature: Uint8Array }

/** The issuer, or an included certificate it delegated OCSP signing to, whose key verifies the response. */
function signedBy (b: Uint8Array, s: Signed, certs: readonly Certificate[], check: ResponseCheck): Certificate | undefined {
  const algorithm = readSignatureAlgorithm(b, s.alg)
  if (!algorithm.ok) throw new Refused('bad_signature', `the response is signed with ${algorithm.detail}, which is not accepted`)
  const verifies = (key: Certificate): boolean => {
    if (key.keyType !== algorithm.keyType) return false
    try {
      const k = algorithm.pssSaltLength === undefined ? key.publicKey() : { key: key.publicKey(), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: algorithm.pssSaltLength }
      return verify(algorithm.hash, s.tbs, k, s.signature)
    } catch {
      return false
    }
  }
  if (verifies(check.issuer)) return check.issuer
  // §4.2.2.2: a delegated responder's certificate is issued directly by the CA that issued the
  // certificate in question and carries id-kp-OCSPSigning.
  return certs.find((c) => c.issuerKey === check.issuer.subjectKey() && c.extKeyUsage?.includes(OCSP_SIGNING) === true &&
    check.now >= c.notBefore && check.now <= c.notAfter && verifySignature(c, check.issuer) && verifies(c))
}

/** ResponseData ::= SEQUENCE { version [0] DEFAULT v1, responderID, producedAt, responses SEQUENCE OF SingleResponse, responseExtensions [1] OPTIONAL } */
function single (b: Uint8Array, tbs: Tlv, check: ResponseCheck): OcspResult {
  const f = children(b, tbs, 5)
  let i = 0
  if (f[0]?.tag === 0xa0) i++ // version: only v1 exists
  const responder = f[i++]
  if (responder?.tag !== 0xa1 && responder?.tag !== 0xa2) throw new Refused('malformed', 'bad responderID')
  const produced = f[i++]
  if (produced?.tag !== TAG.GENERALIZED_TIME) throw new Refused('malformed', 'bad producedAt')
  const responses = f[i++]
  if (responses?.tag !== TAG.SEQUENCE) throw new Refused('malformed', 'bad responses')
  if (f[i] !== undefined) criticalExtensions(b, f[i] as Tlv, 0xa1)
  for (const r of children(b, responses, MAX_RESPONSES)) {
    const [id, certStatus, thisTlv, ...rest] = children(b, r, 5)
    if (id?.tag !== TAG.SEQUENCE || certStatus === undefined || thisTlv?.tag !== TAG.GENERALIZED_TIME) throw new Refused('malformed', 'bad SingleResponse')
    if (!sameCertId(b, id, check.id)) continue
    let nextUpdate: number | undefined
    for (const opt of rest) {
      if (opt.tag === 0xa0) nextUpdate = readTime(b, expect(b, opt.valueStart, opt.end, TAG.GENERALIZED_TIME, 'nextUpdate'))
      else criticalExtensions(b, opt, 0xa1)
    }
    const thisUpdate = readTime(b, thisTlv)
    // §4.2.2.1 / §3.2 (5)-(6): thisUpdate sufficiently recent, nextUpdate (if set) not passed.
    if (thisUpdate > check.now + check.skewMs) throw new Refused('not_yet_valid', `the answer's thisUpdate ${new Date(thisUpdate).toISOString()} is in the future`)
    if (nextUpdate !== undefined && nextUpdate < check.now - check.skewMs) throw new Refused('expired', `the answer's nextUpdate ${new Date(nextUpdate).toISOString()} has passed`)
    switch (certStatus.tag) {
      case 0x80: return { status: 'good', thisUpdate, nextUpdate }
      case 0xa1: {
        const [when] = children(b, certStatus, 2)
        return { status: 'revoked', thisUpdate, nextUpdate, ...(when?.tag === TAG.GENERALIZED_TIME ? { revokedAt: readTime(b, when) } : {}) }
      }
      case 0x82: return { status: 'unknown', thisUpdate, nextUpdate }
      default: throw new Refused('malformed', 'bad certStatus')
    }
  }
  throw new Refused('no_matching_response', 'the response holds no answer for the certificate asked about (CertID mismatch)')
}

function sameCertId (b: Uint8Array, t: Tlv, id: CertId): boolean {
  const [alg, nameHash, keyHash, serial] = children(b, t, 4)
  if (alg?.tag !== TAG.SEQUENCE || nameHash?.tag !== TAG.OCTET_STRING || keyHash?.tag !== TAG.OCTET_STRING || serial?.tag !== TAG.INTEGER) return false
  const [oid] = children(b, alg, 2)
  // Only SHA-1 CertIDs are asked for, so only they can match.
  return oid !== undefined && oidString(b, oid) === SHA1_OID && bytesEqual(value(b, nameHash), id.issuerNameHash) &&
    bytesEqual(value(b, keyHash), id.issuerKeyHash) && bytesEqual(value(b, serial), id.serial)
}

/** An extension marked critical that certgate does not know makes the answer unusable (RFC 5280 §4.2 applies to OCSP extensions, RFC 6960 §4.4). */
function criticalExtensions (b: Uint8Array, wrap: Tlv, tag: number): void {
  if (wrap.tag !== tag) throw new Refused('malformed', 'unexpected field in the response')
  const [list] = children(b, wrap, 1)
  if (list?.tag !== TAG.SEQUENCE) throw new Refused('malformed', 'bad extensions')
  for (const e of children(b, list, 16)) {
    const [oid, maybeCritical] = children(b, e, 3)
    if (oid === undefined) throw new Refused('malformed', 'empty extension')
    if (maybeCritical?.tag === TAG.BOOLEAN && readBoolean(b, maybeCritical)) throw new Refused('malformed', `unknown critical extension ${oidString(b, oid)}`)
  }
}
