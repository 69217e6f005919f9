// Parses one X.509 certificate (RFC 5280 §4.1) into exactly the facts path validation needs.
// Pure: no I/O, no trust decisions. Parsing is done in JS over the DER (fast for the ~400-byte
// certificates devices send); only the public key goes through Node's native crypto, which also
// proves the key itself is well formed (an EC point on its curve, a sane RSA modulus).
import { createPublicKey, type KeyObject } from 'node:crypto'
import {
  ChildReader, DerError, TAG, bitStringBytes, bytesMemo, checkString, children, expect, oidString, onlyChild, readBits, readBoolean,
  readSmallUint, readString, readTime, readTlv, sameEncoding, value, whole, type Tlv
} from './der.js'
import { readSignatureAlgorithm, readSpki, type KeyType, type SignatureCheck } from './algorithms.js'
import { CertificateError } from './certificate-error.js'
import { STRING_TAGS, keyOf, nameKey, rdnKeys } from './name-compare.js'
import { errorMessage } from './errors.js'

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
  certificatePolicies: '2.5.29.32',
  policyMappings: '2.5.29.33',
  policyConstraints: '2.5.29.36',
  inhibitAnyPolicy: '2.5.29.54',
  anyPolicy: '2.5.29.32.0',
  anyExtendedKeyUsage: '2.5.29.37.0',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  serverAuth: '1.3.6.1.5.5.7.3.1'
} as const

/**
 * Extensions certgate recognises without acting on them. They may be critical: none of them
 * narrows what a chain may do for client authentication
 * (RFC 5280 §4.2: a critical extension must be recognised or the certificate rejected).
 */
const RECOGNISED_PASSIVE = new Set([
  '2.5.29.18', // issuerAltName
  '2.5.29.31', // cRLDistributionPoints
  '2.5.29.46', // freshestCRL
  '1.3.6.1.5.5.7.1.1', // authorityInfoAccess
  '1.3.6.1.5.5.7.1.11', // subjectInfoAccess
  '2.5.29.9', // subjectDirectoryAttributes
  '1.3.6.1.4.1.11129.2.4.2' // CT precertificate SCTs
])

const KNOWN_EXTENSIONS = new Set<string>([
  OID.basicConstraints, OID.keyUsage, OID.extKeyUsage, OID.subjectKeyId, OID.authorityKeyId, OID.subjectAltName, OID.nameConstraints,
  OID.certificatePolicies, OID.policyMappings, OID.policyConstraints, OID.inhibitAnyPolicy
])

export const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5 } as const

export type GeneralName =
  | { readonly kind: 'dns' | 'email' | 'uri', readonly text: string }
  | { readonly kind: 'ip', readonly bytes: Uint8Array }
  /** RFC 5280 §7.1 comparison keys of the RDNs (name-compare.ts). */
  | { readonly kind: 'dir', readonly rdns: readonly string[] }
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
  /** 1 or 3 (v2 is accepted and reported as 2). */
  readonly version: number
  /** Why the serial number breaks RFC 5280 §4.1.2.2 (zero, negative or over 20 octets), if it does. */
  readonly serialProblem: string | undefined
  /** DER of the issuer and subject Names. */
  readonly issuer: Uint8Array
  readonly subject: Uint8Array
  /**
   * RFC 5280 §7.1 comparison keys of the Names (name-compare.ts): equal keys chain, whatever the
   * encoding. The subject's is computed on the first call and kept: a leaf's is needed only when
   * it is self-issued or under a directoryName constraint, so most connections never compute it.
   */
  readonly issuerKey: string
  readonly subjectKey: () => string
  /** The serialNumber INTEGER's content bytes, hex (how CRLs name it, RFC 5280 §5.1.2.6). */
  readonly serial: string
  /** Issuer and subject are the same Name (RFC 5280 §6.1): computed on the first call. */
  readonly selfIssued: () => boolean
  /** RFC 5280 §7.1 comparison keys of the subject's RDNs, in order: computed on the first call. */
  readonly subjectRdns: () => readonly string[]
  /** The subject is the empty Name (no RDN). */
  readonly subjectIsEmpty: boolean
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
  /** The authorityKeyIdentifier extension is present (with or without its keyIdentifier). */
  readonly hasAuthorityKeyIdExtension: boolean
  /** The authorityKeyIdentifier carries authorityCertIssuer or authorityCertSerialNumber. */
  readonly authorityKeyIdNamesIssuer: boolean
  readonly subjectAltNames: readonly GeneralName[] | undefined
  readonly subjectAltNamesCritical: boolean
  readonly nameConstraints: NameConstraints | undefined
  readonly nameConstraintsCritical: boolean
  /** RFC 5280 §4.2.1.4-5, 4.2.1.11, 4.2.1.14: what policy processing (policy.ts) needs. */
  readonly policies: readonly string[] | undefined
  readonly policyMappings: ReadonlyArray<readonly [issuerDomain: string, subjectDomain: string]> | undefined
  readonly policyConstraints: { readonly requireExplicitPolicy: number | undefined, readonly inhibitPolicyMapping: number | undefined } | undefined
  readonly inhibitAnyPolicy: number | undefined
  /** An extension marked critical that RFC 5280 requires to be non-critical, by name. */
  readonly wronglyCritical: string | undefined
  /** OID of the first critical extension certgate does not understand. */
  readonly unknownCritical: string | undefined
}

const issuerKeys = bytesMemo<string>(256)

function rememberIssuerKey (der: Uint8Array, issuer: Tlv): string {
  const key = nameKey(der, issuer)
  issuerKeys.set(der, issuer.start, issuer.end, key)
  return key
}

/** Parses DER bytes; throws DerError/CertificateError for anything malformed. */
export function parseCertificate (der: Uint8Array): Certificate {
  if (der.length > MAX_CERT_BYTES) throw new CertificateError(`certificate is ${der.length} bytes (limit ${MAX_CERT_BYTES})`)
  const cert = expect(der, 0, der.length, TAG.SEQUENCE, 'Certificate')
  if (cert.end !== der.length) throw new CertificateError('trailing bytes after the certificate')
  const top = new ChildReader(der, cert, 4)
  const tbsTlv = top.next()
  const outerAlg = top.next()
  const sigTlv = top.next()
  if (tbsTlv === undefined || outerAlg === undefined || sigTlv === undefined || !top.done()) {
    throw new CertificateError('Certificate must have 3 fields')
  }
  if (tbsTlv.tag !== TAG.SEQUENCE || outerAlg.tag !== TAG.SEQUENCE) throw new CertificateError('bad Certificate structure')

  const fields = new ChildReader(der, tbsTlv, 10)
  let field = fields.next()
  let version = 1
  if (field?.tag === 0xa0) {
    const v = onlyChild(der, field)
    if (v === undefined) throw new CertificateError('empty version')
    version = readSmallUint(der, v) + 1
    if (version < 2 || version > 3) throw new CertificateError(`unsupported version ${version}`) // v1 is encoded by omission (DER DEFAULT)
    field = fields.next()
  }
  const serial = need(field, TAG.INTEGER, 'serialNumber')
  const serialProblem = checkSerial(der, serial)
  const innerAlg = need(fields.next(), TAG.SEQUENCE, 'signature')
  // RFC 5280 §4.1.1.2: the algorithm in tbsCertificate must equal the outer one.
  if (!sameEncoding(der, innerAlg, outerAlg)) throw new CertificateError('signature algorithm mismatch between tbsCertificate and Certificate')
  const issuerTlv = need(fields.next(), TAG.SEQUENCE, 'issuer')
  const validity = need(fields.next(), TAG.SEQUENCE, 'validity')
  const subjectTlv = need(fields.next(), TAG.SEQUENCE, 'subject')
  const spkiTlv = need(fields.next(), TAG.SEQUENCE, 'subjectPublicKeyInfo')
  let extTlv: Tlv | undefined
  for (let t = fields.next(); t !== undefined; t = fields.next()) {
    if (t.tag === 0x81 || t.tag === 0x82) { if (version < 2) throw new CertificateError('unique IDs need v2+'); continue }
    if (t.tag === 0xa3 && extTlv === undefined) { if (version !== 3) throw new CertificateError('extensions need v3'); extTlv = t; continue }
    throw new CertificateError(`unexpected field in tbsCertificate (tag 0x${t.tag.toString(16)})`)
  }

  const times = new ChildReader(der, validity, 3)
  const nb = times.next()
  const na = times.next()
  if (nb === undefined || na === undefined || !times.done()) throw new CertificateError('bad validity')
  const notBefore = readTime(der, nb)
  const notAfter = readTime(der, na)

  const issuer = whole(der, issuerTlv)
  const subject = whole(der, subjectTlv)
  const names = readName(der, subjectTlv)
  // A device's issuer is the same Name connection after connection: its key is remembered (a
  // remembered Name was read, and found well formed, when it was first seen).
  const knownIssuerKey = issuerKeys.get(der, issuerTlv.start, issuerTlv.end)
  if (knownIssuerKey === undefined) readName(der, issuerTlv) // well-formedness only
  // The subject's comparison keys are computed when first asked for (readName above already
  // refused anything rdnKeys could throw on). Functions, not getters: an object literal with an
  // accessor is built in V8's slow dictionary mode, ~100 times slower to create.
  let subjectRdns: string[] | undefined
  let subjectKey: string | undefined
  const sameName = sameEncoding(der, issuerTlv, subjectTlv)
  const rdnsOfSubject = (): string[] => (subjectRdns ??= rdnKeys(der, subjectTlv))
  const keyOfSubject = (): string => (subjectKey ??= keyOf(rdnsOfSubject()))
  const issuerKey = sameName ? keyOfSubject() : knownIssuerKey ?? rememberIssuerKey(der, issuerTlv)
  const key = readSpki(der, spkiTlv)
  let publicKey: KeyObject | undefined
  const signature = bitStringBytes(der, sigTlv)
  const ext = extTlv === undefined ? undefined : readExtensions(der, extTlv)

  return {
    der,
    tbs: whole(der, tbsTlv),
    signature,
    signatureCheck: readSignatureAlgorithm(der, outerAlg),
    issuer,
    subject,
    version,
    serialProblem,
    issuerKey,
    subjectKey: keyOfSubject,
    serial: bufferOver(der, serial.valueStart, serial.end).toString('hex'),
    selfIssued: () => sameName || issuerKey === keyOfSubject(),
    subjectRdns: rdnsOfSubject,
    subjectIsEmpty: subjectTlv.valueStart === subjectTlv.end,
    commonNames: names.commonNames,
    emailAddresses: names.emails,
    notBefore,
    notAfter,
    keyType: key.type,
    publicKey: () => {
      if (publicKey !== undefined) return publicKey
      try {
        publicKey = createPublicKey({ key: bufferOver(der, spkiTlv.start, spkiTlv.end), format: 'der', type: 'spki' })
      } catch (err) {
        throw new CertificateError(`unreadable public key: ${errorMessage(err)}`)
      }
      return publicKey
    },
    keyProblem: key.problem,
    basicConstraints: ext?.basicConstraints,
    keyUsage: ext?.keyUsage,
    extKeyUsage: ext?.extKeyUsage,
    subjectKeyId: ext?.subjectKeyId,
    authorityKeyId: ext?.authorityKeyId,
    hasAuthorityKeyIdExtension: ext?.hasAuthorityKeyIdExtension ?? false,
    authorityKeyIdNamesIssuer: ext?.authorityKeyIdNamesIssuer ?? false,
    subjectAltNames: ext?.subjectAltNames,
    subjectAltNamesCritical: ext?.subjectAltNamesCritical ?? false,
    nameConstraints: ext?.nameConstraints,
    nameConstraintsCritical: ext?.nameConstraintsCritical ?? false,
    policies: ext?.policies,
    policyMappings: ext?.policyMappings,
    policyConstraints: ext?.policyConstraints,
    inhibitAnyPolicy: ext?.inhibitAnyPolicy,
    wronglyCritical: ext?.wronglyCritical,
    unknownCritical: ext?.unknownCritical
  }
}

/**
 * RFC 5280 §4.1.2.2: a positive integer of at most 20 octets (a sign octet of zero not counted).
 * Reported, not thrown: profile.ts decides where it matters (a trusted root with serial 0 exists).
 */
function checkSerial (der: Uint8Array, serial: Tlv): string | undefined {
  const len = serial.end - serial.valueStart
  if (len === 0) throw new CertificateError('empty serialNumber')
  const first = der[serial.valueStart] as number
  if (len === 1 && first === 0) return 'its serial number is zero (RFC 5280 §4.1.2.2: it must be positive)'
  if ((first & 0x80) !== 0) return 'its serial number is negative (RFC 5280 §4.1.2.2: it must be positive)'
  const octets = first === 0 ? len - 1 : len
  if (octets > 20) return `its serial number has ${octets} octets (RFC 5280 §4.1.2.2: at most 20)`
  return undefined
}

/** A Buffer over bytes [start, end) of `der`, not a copy. */
function bufferOver (der: Uint8Array, start: number, end: number): Buffer {
  return Buffer.from(der.buffer, der.byteOffset + start, end - start)
}

function need (tlv: Tlv | undefined, tag: number, what: string): Tlv {
  if (tlv === undefined) throw new CertificateError(`missing ${what}`)
  if (tlv.tag !== tag) throw new CertificateError(`${what}: unexpected tag 0x${tlv.tag.toString(16)}`)
  return tlv
}

interface NameFacts { commonNames: string[], emails: string[] }

function readName (der: Uint8Array, name: Tlv): NameFacts {
  const out: NameFacts = { commonNames: [], emails: [] }
  const rdns = new ChildReader(der, name, 64)
  for (let rdn = rdns.next(); rdn !== undefined; rdn = rdns.next()) {
    if (rdn.tag !== TAG.SET) throw new CertificateError('RDN must be a SET')
    const atvs = new ChildReader(der, rdn, 16)
    let atv = atvs.next()
    if (atv === undefined) throw new CertificateError('empty RDN')
    for (; atv !== undefined; atv = atvs.next()) {
      if (atv.tag !== TAG.SEQUENCE) throw new CertificateError('AttributeTypeAndValue must be a SEQUENCE')
      const parts = new ChildReader(der, atv, 3)
      const typeTlv = parts.next()
      const valueTlv = parts.next()
      if (typeTlv === undefined || valueTlv === undefined || !parts.done()) throw new CertificateError('bad AttributeTypeAndValue')
      const type = oidString(der, typeTlv)
      if (type === OID.commonName) out.commonNames.push(readString(der, valueTlv))
      else if (type === OID.emailAddress) out.emails.push(readString(der, valueTlv))
      else if (STRING_TAGS.has(valueTlv.tag)) checkString(der, valueTlv) // as strict as the comparison keys' decoding
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
  hasAuthorityKeyIdExtension: boolean
  authorityKeyIdNamesIssuer: boolean
  subjectAltNames: GeneralName[] | undefined
  subjectAltNamesCritical: boolean
  nameConstraints: NameConstraints | undefined
  nameConstraintsCritical: boolean
  policies: Certificate['policies']
  policyMappings: Certificate['policyMappings']
  policyConstraints: Certificate['policyConstraints']
  inhibitAnyPolicy: number | undefined
  wronglyCritical: string | undefined
  unknownCritical: string | undefined
}

/**
 * Extensions RFC 5280 says conforming CAs MUST mark non-critical: one marked critical is a
 * certificate no conforming CA made (§4.2.1.1, §4.2.1.2, §4.2.1.8, §4.2.1.15, §4.2.2.1, §4.2.2.2).
 */
const MUST_BE_NON_CRITICAL: Record<string, string> = {
  '2.5.29.35': 'authorityKeyIdentifier',
  '2.5.29.14': 'subjectKeyIdentifier',
  '2.5.29.9': 'subjectDirectoryAttributes',
  '2.5.29.46': 'freshestCRL',
  '1.3.6.1.5.5.7.1.1': 'authorityInfoAccess',
  '1.3.6.1.5.5.7.1.11': 'subjectInfoAccess'
}

function readExtensions (der: Uint8Array, wrapper: Tlv): ExtensionFacts {
  const seq = onlyChild(der, wrapper)
  if (seq?.tag !== TAG.SEQUENCE) throw new CertificateError('extensions must be a SEQUENCE')
  const list = new ChildReader(der, seq, 64)
  // RFC 5280 §4.1.2.9: if present, at least one extension.
  if (list.done()) throw new CertificateError('empty extensions')
  const out: ExtensionFacts = {
    basicConstraints: undefined, keyUsage: undefined, extKeyUsage: undefined, subjectKeyId: undefined,
    authorityKeyId: undefined, hasAuthorityKeyIdExtension: false, authorityKeyIdNamesIssuer: false, subjectAltNames: undefined,
    subjectAltNamesCritical: false, nameConstraints: undefined, nameConstraintsCritical: false, policies: undefined,
    policyMappings: undefined, policyConstraints: undefined, inhibitAnyPolicy: undefined, wronglyCritical: undefined, unknownCritical: undefined
  }
  const seen: string[] = [] // a handful: an array is cheaper than a Set per certificate
  for (let e = list.next(); e !== undefined; e = list.next()) {
    if (e.tag !== TAG.SEQUENCE) throw new CertificateError('Extension must be a SEQUENCE')
    const parts = new ChildReader(der, e, 3)
    const oidTlv = parts.next()
    if (oidTlv === undefined) throw new CertificateError('empty Extension')
    const oid = oidString(der, oidTlv)
    // RFC 5280 §4.2: a certificate must not include more than one instance of an extension.
    if (seen.includes(oid)) throw new CertificateError(`duplicate extension ${oid}`)
    seen.push(oid)
    let critical = false
    let valueTlv = parts.next()
    if (valueTlv?.tag === TAG.BOOLEAN) { critical = readBoolean(der, valueTlv); valueTlv = parts.next() }
    if (!parts.done()) throw new CertificateError('bad Extension')
    if (valueTlv?.tag !== TAG.OCTET_STRING) throw new CertificateError(`extension ${oid}: extnValue must be an OCTET STRING`)
    if (critical && out.wronglyCritical === undefined) out.wronglyCritical = MUST_BE_NON_CRITICAL[oid]
    if (!KNOWN_EXTENSIONS.has(oid) && !RECOGNISED_PASSIVE.has(oid)) {
      // An extension certgate does not know is not decoded: its value may be anything, even empty.
      if (critical && out.unknownCritical === undefined) out.unknownCritical = oid
      continue
    }
    // A known extension, acted on or not, must at least be one well-formed DER value.
    const body = readTlv(der, valueTlv.valueStart, valueTlv.end)
    if (body.end !== valueTlv.end) throw new CertificateError(`extension ${oid}: trailing bytes`)
    switch (oid) {
      case OID.basicConstraints: {
        if (body.tag !== TAG.SEQUENCE) throw new CertificateError('basicConstraints must be a SEQUENCE')
        let ca = false
        let pathLen: number | undefined
        const items = new ChildReader(der, body, 2)
        for (let item = items.next(); item !== undefined; item = items.next()) {
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
        const purposes = new ChildReader(der, body, 64)
        const oids: string[] = []
        for (let t = purposes.next(); t !== undefined; t = purposes.next()) oids.push(oidString(der, t))
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
        out.hasAuthorityKeyIdExtension = true
        const items = new ChildReader(der, body, 3)
        for (let item = items.next(); item !== undefined; item = items.next()) {
          if (item.tag === 0x80) out.authorityKeyId = value(der, item)
          else if (item.tag === 0xa1 || item.tag === 0x82) out.authorityKeyIdNamesIssuer = true
          else throw new CertificateError('bad authorityKeyIdentifier field')
        }
        break
      }
      case OID.subjectAltName: {
        if (body.tag !== TAG.SEQUENCE) throw new CertificateError('subjectAltName must be a SEQUENCE')
        const names = children(der, body, 256).map((t) => readGeneralName(der, t))
        if (names.length === 0) throw new CertificateError('empty subjectAltName')
        out.subjectAltNames = names
        out.subjectAltNamesCritical = critical
        break
      }
      case OID.nameConstraints:
        out.nameConstraints = readNameConstraints(der, body)
        out.nameConstraintsCritical = critical
        break
      case OID.certificatePolicies:
        out.policies = readPolicies(der, body)
        break
      case OID.policyMappings:
        out.policyMappings = readPolicyMappings(der, body)
        break
      case OID.policyConstraints:
        out.policyConstraints = readPolicyConstraints(der, body)
        break
      case OID.inhibitAnyPolicy:
        out.inhibitAnyPolicy = readSmallUint(der, body)
        break
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
      readName(der, name) // well-formedness only
      return { kind: 'dir', rdns: rdnKeys(der, name) }
    }
    case 0xa0: // otherName
    case 0xa3: // x400Address
    case 0xa5: // ediPartyName
    case 0x88: // registeredID
      return { kind: 'other', tag: t.tag }
    default: // RFC 5280 §4.2.1.6: GeneralName is a CHOICE of these nine tags
      throw new CertificateError(`bad GeneralName (tag 0x${t.tag.toString(16)})`)
  }
}

/** §4.2.1.4: the policy OIDs (qualifiers are not read); a policy OID appears at most once. */
function readPolicies (der: Uint8Array, body: Tlv): string[] {
  if (body.tag !== TAG.SEQUENCE) throw new CertificateError('certificatePolicies must be a SEQUENCE')
  const oids: string[] = []
  for (const info of children(der, body, 64)) {
    const [oid] = info.tag === TAG.SEQUENCE ? children(der, info, 2) : []
    if (oid === undefined) throw new CertificateError('bad PolicyInformation')
    const id = oidString(der, oid)
    if (oids.includes(id)) throw new CertificateError(`policy ${id} appears twice in certificatePolicies`)
    oids.push(id)
  }
  if (oids.length === 0) throw new CertificateError('empty certificatePolicies')
  return oids
}

/** §4.2.1.5: pairs of (issuerDomainPolicy, subjectDomainPolicy). */
function readPolicyMappings (der: Uint8Array, body: Tlv): Array<[string, string]> {
  if (body.tag !== TAG.SEQUENCE) throw new CertificateError('policyMappings must be a SEQUENCE')
  const pairs = children(der, body, 64).map((m): [string, string] => {
    const [a, b, extra] = m.tag === TAG.SEQUENCE ? children(der, m, 3) : []
    if (a === undefined || b === undefined || extra !== undefined) throw new CertificateError('bad PolicyMapping')
    return [oidString(der, a), oidString(der, b)]
  })
  if (pairs.length === 0) throw new CertificateError('empty policyMappings')
  return pairs
}

/** §4.2.1.11: requireExplicitPolicy [0] and inhibitPolicyMapping [1], SkipCerts each; not both absent. */
function readPolicyConstraints (der: Uint8Array, body: Tlv): NonNullable<Certificate['policyConstraints']> {
  if (body.tag !== TAG.SEQUENCE) throw new CertificateError('policyConstraints must be a SEQUENCE')
  let requireExplicitPolicy: number | undefined
  let inhibitPolicyMapping: number | undefined
  for (const item of children(der, body, 2)) {
    const n = readSmallUint(der, { ...item, tag: TAG.INTEGER })
    if (item.tag === 0x80 && requireExplicitPolicy === undefined && inhibitPolicyMapping === undefined) requireExplicitPolicy = n
    else if (item.tag === 0x81 && inhibitPolicyMapping === undefined) inhibitPolicyMapping = n
    else throw new CertificateError('bad policyConstraints field')
  }
  if (requireExplicitPolicy === undefined && inhibitPolicyMapping === undefined) throw new CertificateError('empty policyConstraints')
  return { requireExplicitPolicy, inhibitPolicyMapping }
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
