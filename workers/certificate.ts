// Parses one X.509 certificate (RFC 5280 §4.1) into exactly the facts path validation needs.
// Pure: no I/O, no trust decisions. Parsing is done in JS over the DER (fast for the ~400-byte
// certificates devices send); only the public key goes through Node's native crypto, which also
// proves the key itself is well formed (an EC point on its curve, a sane RSA modulus).
import { createPublicKey, type KeyObject } from 'node:crypto'
import {
  DerError, TAG, bitStringBytes, bytesEqual, children, expect, oidString, readBits, readBoolean,
  readSmallUint, readString, readTime, readTlv, value, whole, type Tlv
} from './der.js'
import { readSignatureAlgorithm, readSpki, type KeyType, type SignatureCheck } from './algorithms.js'
import { CertificateError } from './certificate-error.js'

export { CertificateError }
export type { KeyType, SignatureCheck }

export const MAX_CERT_BYTES = 16 * 1024

export const OID = {
  commonName: '2.5.4.3',
  emailAddress: '1.2.840.113549.1.9.1',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  nameConstraints: '2.5.29.30',
  anyExtendedKeyUsage: '2.5.29.37.0',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  serverAuth: '1.3.6.1.5.5.7.3.1'
} as const

/**
 * Extensions certgate recognises without acting on them. They may be critical: none of them
 * narrows what a chain may do for client authentication with no policy requirement
 * (RFC 5280 §4.2: a critical extension must be recognised or the certificate rejected).
 */
const RECOGNISED_PASSIVE = new Set([
  '2.5.29.32', // certificatePolicies: certgate requires no policy (user-initial-policy-set = any-policy)
  '2.5.29.18', // issuerAltName
  '2.5.29.31', // cRLDistributionPoints
  '2.5.29.46', // freshestCRL
  '1.3.6.1.5.5.7.1.1', // authorityInfoAccess
  '1.3.6.1.5.5.7.1.11', // subjectInfoAccess
  '2.5.29.9', // subjectDirectoryAttributes
  '1.3.6.1.4.1.11129.2.4.2' // CT precertificate SCTs
])

export const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5 } as const

export type GeneralName =
  | { readonly kind: 'dns' | 'email' | 'uri', readonly text: string }
  | { readonly kind: 'ip', readonly bytes: Uint8Array }
  | { readonly kind: 'dir', readonly rdns: readonly Uint8Array[] }
  | { readonly kind: 'other', readonly tag: number }

export interface GeneralSubtree { readonly base: GeneralName }

export interface NameConstraints {
  readonly permitted: readonly GeneralSubtree[]
  readonly excluded: readonly GeneralSubtree[]
}

export interface Certificate {
  readonly der: Uint8Array
  readonly tbs: Uint8Array
  readonly signature: Uint8Array
  readonly signatureCheck: SignatureCheck
  /** DER of the issuer and subject Names; byte equality is the name-chaining rule used. */
  readonly issuer: Uint8Array
  readonly subject: Uint8Array
  readonly issuerKey: string
  readonly subjectKey: string
  /** The serialNumber INTEGER's content bytes, hex (how CRLs name it, RFC 5280 §5.1.2.6). */
  readonly serial: string
  readonly selfIssued: boolean
  readonly subjectRdns: readonly Uint8Array[]
  readonly commonNames: readonly string[]
  readonly emailAddresses: readonly string[]
  readonly notBefore: number
  readonly notAfter: number
  /** The key's algorithm, read from the SubjectPublicKeyInfo in JS. */
  readonly keyType: KeyType
  /**
   * The public key as a native KeyObject, decoded on first use and kept. Decoding costs more
   * than the rest of the parse (OpenSSL 3.0 decoders), and a leaf's key is never needed for path
   * validation (OpenSSL already used it to check the handshake's CertificateVerify).
   * Throws CertificateError if the key does not decode.
   */
  readonly publicKey: () => KeyObject
  /** Why the key itself is refused, if it is. */
  readonly keyProblem: string | undefined
  readonly basicConstraints: { readonly ca: boolean, readonly pathLen: number | undefined, readonly critical: boolean } | undefined
  readonly keyUsage: readonly boolean[] | undefined
  readonly extKeyUsage: readonly string[] | undefined
  readonly subjectKeyId: Uint8Array | undefined
  readonly authorityKeyId: Uint8Array | undefined
  readonly subjectAltNames: readonly GeneralName[] | undefined
  readonly nameConstraints: NameConstraints | undefined
  /** OID of the first critical extension certgate does not understand. */
  readonly unknownCritical: string | undefined
}

/** Parses DER bytes; throws DerError/CertificateError for anything malformed. */
export function parseCertificate (der: Uint8Array): Certificate {
  if (der.length > MAX_CERT_BYTES) throw new CertificateError(`certificate is ${der.length} bytes (limit ${MAX_CERT_BYTES})`)
  const cert = expect(der, 0, der.length, TAG.SEQUENCE, 'Certificate')
  if (cert.end !== der.length) throw new CertificateError('trailing bytes after the certificate')
  const [tbsTlv, outerAlg, sigTlv, extra] = children(der, cert, 4)
  if (tbsTlv === undefined || outerAlg === undefined || sigTlv === undefined || extra !== undefined) throw new CertificateError('Certificate must have 3 fields')
  if (tbsTlv.tag !== TAG.SEQUENCE || outerAlg.tag !== TAG.SEQUENCE) throw new CertificateError('bad Certificate structure')

  const f = children(der, tbsTlv, 10)
  let i = 0
  let version = 1
  if (f[0]?.tag === 0xa0) {
    const [v] = children(der, f[0], 1)
    if (v === undefined) throw new CertificateError('empty version')
    version = readSmallUint(der, v) + 1
    if (version < 2 || version > 3) throw new CertificateError(`unsupported version ${version}`) // v1 is encoded by omission (DER DEFAULT)
    i++
  }
  const serial = need(f[i++], TAG.INTEGER, 'serialNumber')
  if (serial.end === serial.valueStart) throw new CertificateError('empty serialNumber')
  const innerAlg = need(f[i++], TAG.SEQUENCE, 'signature')
  // RFC 5280 §4.1.1.2: the algorithm in tbsCertificate must equal the outer one.
  if (!bytesEqual(whole(der, innerAlg), whole(der, outerAlg))) throw new CertificateError('signature algorithm mismatch between tbsCertificate and Certificate')
  const issuerTlv = need(f[i++], TAG.SEQUENCE, 'issuer')
  const validity = need(f[i++], TAG.SEQUENCE, 'validity')
  const subjectTlv = need(f[i++], TAG.SEQUENCE, 'subject')
  const spkiTlv = need(f[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo')
  let extTlv: Tlv | undefined
  for (; i < f.length; i++) {
    const t = f[i] as Tlv
    if (t.tag === 0x81 || t.tag === 0x82) { if (version < 2) throw new CertificateError('unique IDs need v2+'); continue }
    if (t.tag === 0xa3 && extTlv === undefined) { if (version !== 3) throw new CertificateError('extensions need v3'); extTlv = t; continue }
    throw new CertificateError(`unexpected field in tbsCertificate (tag 0x${t.tag.toString(16)})`)
  }

  const [nb, na, vExtra] = children(der, validity, 3)
  if (nb === undefined || na === undefined || vExtra !== undefined) throw new CertificateError('bad validity')
  const notBefore = readTime(der, nb)
  const notAfter = readTime(der, na)

  const issuer = whole(der, issuerTlv)
  const subject = whole(der, subjectTlv)
  const names = readName(der, subjectTlv)
  readName(der, issuerTlv) // well-formedness only
  const spki = whole(der, spkiTlv)
  const key = readSpki(der, spkiTlv)
  let publicKey: KeyObject | undefined
  const sigBits = readTlv(der, sigTlv.start, sigTlv.end)
  const signature = bitStringBytes(der, sigBits)
  const ext = extTlv === undefined ? undefined : readExtensions(der, extTlv)

  return {
    der,
    tbs: whole(der, tbsTlv),
    signature,
    signatureCheck: readSignatureAlgorithm(der, outerAlg),
    issuer,
    subject,
    issuerKey: Buffer.from(issuer).toString('latin1'),
    subjectKey: Buffer.from(subject).toString('latin1'),
    serial: Buffer.from(value(der, serial)).toString('hex'),
    selfIssued: bytesEqual(issuer, subject),
    subjectRdns: names.rdns,
    commonNames: names.commonNames,
    emailAddresses: names.emails,
    notBefore,
    notAfter,
    keyType: key.type,
    publicKey: () => {
      if (publicKey !== undefined) return publicKey
      try {
        publicKey = createPublicKey({ key: Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength), format: 'der', type: 'spki' })
      } catch (err) {
        throw new CertificateError(`unreadable public key: ${(err as Error).message}`)
      }
      return publicKey
    },
    keyProblem: key.problem,
    basicConstraints: ext?.basicConstraints,
    keyUsage: ext?.keyUsage,
    extKeyUsage: ext?.extKeyUsage,
    subjectKeyId: ext?.subjectKeyId,
    authorityKeyId: ext?.authorityKeyId,
    subjectAltNames: ext?.subjectAltNames,
    nameConstraints: ext?.nameConstraints,
    unknownCritical: ext?.unknownCritical
  }
}

function need (tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined) throw new CertificateError(`missing ${what}`)
  if (tlv.tag !== tag) throw new CertificateError(`${what}: unexpected tag 0x${tlv.tag.toString(16)}`)
  return tlv
}

interface NameFacts { rdns: Uint8Array[], commonNames: string[], emails: string[] }

function readName (der: Uint8Array, name: Tlv): NameFacts {
  const out: NameFacts = { rdns: [], commonNames: [], emails: [] }
  for (const rdn of children(der, name, 64)) {
    if (rdn.tag !== TAG.SET) throw new CertificateError('RDN must be a SET')
    out.rdns.push(whole(der, rdn))
    const atvs = children(der, rdn, 16)
    if (atvs.length === 0) throw new CertificateError('empty RDN')
    for (const atv of atvs) {
      if (atv.tag !== TAG.SEQUENCE) throw new CertificateError('AttributeTypeAndValue must be a SEQUENCE')
      const [typeTlv, valueTlv, extra] = children(der, atv, 3)
      if (typeTlv === undefined || valueTlv === undefined || extra !== undefined) throw new CertificateError('bad AttributeTypeAndValue')
      const type = oidString(der, typeTlv)
      if (type === OID.commonName) out.commonNames.push(readString(der, valueTlv))
      else if (type === OID.emailAddress) out.emails.push(readString(der, valueTlv))
    }
  }
  return out
}

interface ExtensionFacts {
  basicConstraints: Certificate['basicConstraints']
  keyUsage: boolean[] | undefined
  extKeyUsage: string[] | undefined
  subjectKeyId: Uint8Array | undefined
  authorityKeyId: Uint8Array | undefined
  subjectAltNames: GeneralName[] | undefined
  nameConstraints: NameConstraints | undefined
  unknownCritical: string | undefined
}

function readExtensions (der: Uint8Array, wrapper: Tlv): ExtensionFacts {
  const [seq] = children(der, wrapper, 1)
  if (seq?.tag !== TAG.SEQUENCE) throw new CertificateError('extensions must be a SEQUENCE')
  const list = children(der, seq, 64)
  // RFC 5280 §4.1.2.9: if present, at least one extension.
  if (list.length === 0) throw new CertificateError('empty extensions')
  const out: ExtensionFacts = {
    basicConstraints: undefined, keyUsage: undefined, extKeyUsage: undefined, subjectKeyId: undefined,
    authorityKeyId: undefined, subjectAltNames: undefined, nameConstraints: undefined, unknownCritical: undefined
  }
  const seen = new Set<string>()
  for (const e of list) {
    if (e.tag !== TAG.SEQUENCE) throw new CertificateError('Extension must be a SEQUENCE')
    const parts = children(der, e, 3)
    const oidTlv = parts[0]
    if (oidTlv === undefined) throw new CertificateError('empty Extension')
    const oid = oidString(der, oidTlv)
    // RFC 5280 §4.2: a certificate must not include more than one instance of an extension.
    if (seen.has(oid)) throw new CertificateError(`duplicate extension ${oid}`)
    seen.add(oid)
    let critical = false
    let valueTlv = parts[1]
    if (valueTlv?.tag === TAG.BOOLEAN) { critical = readBoolean(der, valueTlv); valueTlv = parts[2] }
    else if (parts.length > 2) throw new CertificateError('bad Extension')
    if (valueTlv?.tag !== TAG.OCTET_STRING) throw new CertificateError(`extension ${oid}: extnValue must be an OCTET STRING`)
    const body = readTlv(der, valueTlv.valueStart, valueTlv.end)
    if (body.end !== valueTlv.end) throw new CertificateError(`extension ${oid}: trailing bytes`)
    switch (oid) {
      case OID.basicConstraints: {
        if (body.tag !== TAG.SEQUENCE) throw new CertificateError('basicConstraints must be a SEQUENCE')
        let ca = false
        let pathLen: number | undefined
        for (const item of children(der, body, 2)) {
          if (item.tag === TAG.BOOLEAN) ca = readBoolean(der, item)
          else pathLen = readSmallUint(der, item)
        }
        out.basicConstraints = { ca, pathLen, critical }
        break
      }
      case OID.keyUsage: {
        const bits = readBits(der, body)
        if (!bits.includes(true)) throw new CertificateError('keyUsage with no bit set') // RFC 5280 §4.2.1.3
        out.keyUsage = bits
        break
      }
      case OID.extKeyUsage: {
        if (body.tag !== TAG.SEQUENCE) throw new CertificateError('extKeyUsage must be a SEQUENCE')
        const oids = children(der, body, 64).map((t) => oidString(der, t))
        if (oids.length === 0) throw new CertificateError('empty extKeyUsage')
        out.extKeyUsage = oids
        break
      }
      case OID.subjectKeyId:
        if (body.tag !== TAG.OCTET_STRING) throw new CertificateError('subjectKeyIdentifier must be an OCTET STRING')
        out.subjectKeyId = value(der, body)
        break
      case OID.authorityKeyId: {
        if (body.tag !== TAG.SEQUENCE) throw new CertificateError('authorityKeyIdentifier must be a SEQUENCE')
        for (const item of children(der, body, 3)) if (item.tag === 0x80) out.authorityKeyId = value(der, item)
        break
      }
      case OID.subjectAltName: {
        if (body.tag !== TAG.SEQUENCE) throw new CertificateError('subjectAltName must be a SEQUENCE')
        const names = children(der, body, 256).map((t) => readGeneralName(der, t))
        if (names.length === 0) throw new CertificateError('empty subjectAltName')
        out.subjectAltNames = names
        break
      }
      case OID.nameConstraints:
        out.nameConstraints = readNameConstraints(der, body)
        break
      default:
        if (critical && !RECOGNISED_PASSIVE.has(oid) && out.unknownCritical === undefined) out.unknownCritical = oid
    }
  }
  return out
}

const ascii = new TextDecoder('latin1')

function readGeneralName (der: Uint8Array, t: Tlv, inConstraint = false): GeneralName {
  switch (t.tag) {
    case 0x81: return { kind: 'email', text: ascii.decode(value(der, t)) }
    case 0x82: return { kind: 'dns', text: ascii.decode(value(der, t)) }
    case 0x86: return { kind: 'uri', text: ascii.decode(value(der, t)) }
    case 0x87: {
      const bytes = value(der, t)
      // RFC 5280 §4.2.1.6: an address is 4 or 16 bytes; §4.2.1.10: a constraint adds a mask of the same size.
      const ok = inConstraint ? bytes.length === 8 || bytes.length === 32 : bytes.length === 4 || bytes.length === 16
      if (!ok) throw new CertificateError(`bad iPAddress length ${bytes.length}`)
      return { kind: 'ip', bytes }
    }
    case 0xa4: {
      const [name] = children(der, t, 1)
      if (name?.tag !== TAG.SEQUENCE) throw new CertificateError('bad directoryName')
      return { kind: 'dir', rdns: readName(der, name).rdns }
    }
    default:
      return { kind: 'other', tag: t.tag }
  }
}

function readNameConstraints (der: Uint8Array, body: Tlv): NameConstraints {
  if (body.tag !== TAG.SEQUENCE) throw new CertificateError('nameConstraints must be a SEQUENCE')
  const permitted: GeneralSubtree[] = []
  const excluded: GeneralSubtree[] = []
  const parts = children(der, body, 2)
  // RFC 5280 §4.2.1.10: at least one of permittedSubtrees or excludedSubtrees.
  if (parts.length === 0) throw new CertificateError('empty nameConstraints')
  for (const part of parts) {
    const into = part.tag === 0xa0 ? permitted : part.tag === 0xa1 ? excluded : undefined
    if (into === undefined) throw new CertificateError('bad nameConstraints field')
    const subtrees = children(der, part, 256)
    if (subtrees.length === 0) throw new CertificateError('empty GeneralSubtrees')
    for (const st of subtrees) {
      if (st.tag !== TAG.SEQUENCE) throw new CertificateError('GeneralSubtree must be a SEQUENCE')
      const [base, ...rest] = children(der, st, 3)
      if (base === undefined) throw new CertificateError('empty GeneralSubtree')
      // RFC 5280 §4.2.1.10: minimum must be zero and maximum absent.
      if (rest.length > 0) throw new CertificateError('GeneralSubtree minimum/maximum are not allowed')
      into.push({ base: readGeneralName(der, base, true) })
    }
  }
  return { permitted, excluded }
}

export { DerError }
