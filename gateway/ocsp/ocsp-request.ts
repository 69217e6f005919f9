// The OCSP request for one certificate (RFC 6960 §4.1): its CertID — SHA-1 of the issuer's
// Name and of its public key, and the certificate's serial (§4.1.1, as `openssl ocsp` builds it) —
// in an unsigned OCSPRequest. No nonce: answers are cached until nextUpdate anyway, and
// responders serving pre-produced answers (RFC 5019) ignore it.
import { createHash } from 'node:crypto'
import { bitStringBytes, children, expect, TAG } from '../../workers/der.js'
import type { Certificate } from '../../workers/certificate.js'
import { integerFromContent, nullValue, objectIdentifier, octetString, sequence } from './der-writer.js'

export const SHA1_OID = '1.3.14.3.2.26'

/** What identifies a certificate to a responder, and what its answer must repeat. */
export interface CertId {
  readonly issuerNameHash: Uint8Array
  readonly issuerKeyHash: Uint8Array
  /** The serialNumber INTEGER's content octets. */
  readonly serial: Uint8Array
}

const sha1 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha1').update(b).digest())

/** The subjectPublicKey BIT STRING's bytes of a certificate (not the whole SubjectPublicKeyInfo, §4.1.1). */
export function subjectPublicKeyBytes (cert: Certificate): Uint8Array {
  const tbs = expect(cert.tbs, 0, cert.tbs.length, TAG.SEQUENCE, 'TBSCertificate')
  const fields = children(cert.tbs, tbs, 10)
  // version [0] is optional; then serial, signature, issuer, validity, subject, subjectPublicKeyInfo.
  const spki = fields[fields[0]?.tag === 0xa0 ? 6 : 5]
  if (spki?.tag !== TAG.SEQUENCE) throw new Error('no subjectPublicKeyInfo')
  const [, key] = children(cert.tbs, spki, 2)
  if (key === undefined) throw new Error('no subjectPublicKey')
  return bitStringBytes(cert.tbs, key)
}

/** RFC 6960 §4.1.1: the hashes are over the issuer's subject Name (DER) and its key's bits. */
export function certIdFor (issuer: Certificate, serialHex: string): CertId {
  return { issuerNameHash: sha1(issuer.subject), issuerKeyHash: sha1(subjectPublicKeyBytes(issuer)), serial: new Uint8Array(Buffer.from(serialHex, 'hex')) }
}

export function encodeCertId (id: CertId): Uint8Array {
  return sequence(sequence(objectIdentifier(SHA1_OID), nullValue()), octetString(id.issuerNameHash), octetString(id.issuerKeyHash), integerFromContent(id.serial))
}

/** OCSPRequest ::= SEQUENCE { tbsRequest SEQUENCE { requestList SEQUENCE OF Request { reqCert } } } (v1, unsigned). */
export function ocspRequest (id: CertId): Uint8Array {
  return sequence(sequence(sequence(sequence(encodeCertId(id)))))
}
