// Public-key and signature algorithms (RFC 5280 §4.1.1.2, RFC 4055, RFC 5758, RFC 8410): what
// certgate accepts, what it refuses as weak, and the key facts read from a SubjectPublicKeyInfo in
// JS (type, RSA size and exponent, EC curve) without decoding the key natively.
import { ChildReader, TAG, bitStringBytes, children, oidString, readSmallUint, readTlv, value, type Tlv } from './der.js'
import { CertificateError } from './certificate-error.js'

export type KeyType = 'rsa' | 'ec' | 'ed25519' | 'ed448' | 'unknown'

export type SignatureCheck =
  | { readonly ok: true, readonly hash: string | null, readonly keyType: Exclude<KeyType, 'unknown'>, readonly pssSaltLength?: number }
  | { readonly ok: false, readonly reason: 'weak_algorithm' | 'unsupported_algorithm', readonly detail: string }

const HASHES: Record<string, string> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512'
}
const WEAK_HASHES: Record<string, string> = { '1.3.14.3.2.26': 'SHA-1', '1.2.840.113549.2.5': 'MD5', '1.2.840.113549.2.2': 'MD2' }

const SIGNATURE_ALGORITHMS: Record<string, SignatureCheck> = {
  '1.2.840.113549.1.1.11': { ok: true, hash: 'sha256', keyType: 'rsa' },
  '1.2.840.113549.1.1.12': { ok: true, hash: 'sha384', keyType: 'rsa' },
  '1.2.840.113549.1.1.13': { ok: true, hash: 'sha512', keyType: 'rsa' },
  '1.2.840.10045.4.3.2': { ok: true, hash: 'sha256', keyType: 'ec' },
  '1.2.840.10045.4.3.3': { ok: true, hash: 'sha384', keyType: 'ec' },
  '1.2.840.10045.4.3.4': { ok: true, hash: 'sha512', keyType: 'ec' },
  '1.3.101.112': { ok: true, hash: null, keyType: 'ed25519' },
  '1.3.101.113': { ok: true, hash: null, keyType: 'ed448' },
  '1.2.840.113549.1.1.5': { ok: false, reason: 'weak_algorithm', detail: 'sha1WithRSAEncryption' },
  '1.2.840.113549.1.1.4': { ok: false, reason: 'weak_algorithm', detail: 'md5WithRSAEncryption' },
  '1.2.840.113549.1.1.2': { ok: false, reason: 'weak_algorithm', detail: 'md2WithRSAEncryption' },
  '1.2.840.10045.4.1': { ok: false, reason: 'weak_algorithm', detail: 'ecdsa-with-SHA1' },
  '1.2.840.10040.4.3': { ok: false, reason: 'weak_algorithm', detail: 'dsa-with-SHA1' }
}
const RSASSA_PSS = '1.2.840.113549.1.1.10'
const MGF1 = '1.2.840.113549.1.1.8'

const MIN_RSA_BITS = 2048
const MAX_RSA_BITS = 8192
const MAX_RSA_EXPONENT = 2n ** 32n - 1n

const KEY_ALGORITHMS: Record<string, KeyType> = {
  '1.2.840.113549.1.1.1': 'rsa',
  '1.2.840.113549.1.1.10': 'rsa', // id-RSASSA-PSS keys
  '1.2.840.10045.2.1': 'ec',
  '1.3.101.112': 'ed25519',
  '1.3.101.113': 'ed448'
}
const CURVES: Record<string, string> = { '1.2.840.10045.3.1.7': 'P-256', '1.3.132.0.34': 'P-384', '1.3.132.0.35': 'P-521' }

/** RFC 5280 §4.1.2.7 SubjectPublicKeyInfo: the key's type, and why it is refused if it is. */
export function readSpki (der: Uint8Array, spki: Tlv): { type: KeyType, problem: string | undefined } {
  const parts = new ChildReader(der, spki, 3)
  const alg = parts.next()
  const bits = parts.next()
  if (alg?.tag !== TAG.SEQUENCE || bits === undefined || !parts.done()) throw new CertificateError('bad SubjectPublicKeyInfo')
  const algParts = new ChildReader(der, alg, 2)
  const oidTlv = algParts.next()
  const params = algParts.next()
  if (oidTlv === undefined) throw new CertificateError('empty key AlgorithmIdentifier')
  algParts.end()
  const oid = oidString(der, oidTlv)
  const type = KEY_ALGORITHMS[oid] ?? 'unknown'
  const keyBytes = bitStringBytes(der, bits)
  switch (type) {
    case 'rsa': {
      // RFC 8017 §A.1.1 RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
      const seq = readTlv(keyBytes, 0, keyBytes.length)
      const [n, e] = seq.tag === TAG.SEQUENCE ? children(keyBytes, seq, 2) : []
      if (n?.tag !== TAG.INTEGER || e?.tag !== TAG.INTEGER) throw new CertificateError('bad RSAPublicKey')
      const modulus = value(keyBytes, n)
      let lead = 0
      while (lead < modulus.length && modulus[lead] === 0) lead++
      const bitLength = modulus.length === lead ? 0 : (modulus.length - lead - 1) * 8 + Math.floor(Math.log2(modulus[lead] as number)) + 1
      let exponent = 0n
      for (const b of value(keyBytes, e)) exponent = exponent * 256n + BigInt(b)
      if (bitLength < MIN_RSA_BITS) return { type, problem: `RSA key of ${bitLength} bits (minimum ${MIN_RSA_BITS})` }
      // Huge moduli or exponents make each verification cost milliseconds: a cheap way to burn CPU.
      if (bitLength > MAX_RSA_BITS) return { type, problem: `RSA key of ${bitLength} bits (maximum ${MAX_RSA_BITS})` }
      // Every RSA key generator makes whole-octet moduli; another size is a broken or crafted key (CA/B BR 6.1.5).
      if (bitLength % 8 !== 0) return { type, problem: `RSA modulus of ${bitLength} bits is not a whole number of octets` }
      if (exponent < 3n || exponent > MAX_RSA_EXPONENT || exponent % 2n === 0n) return { type,
        problem: `RSA public exponent ${exponent} is not an odd number from 3 to 2^32-1` }
      return { type, problem: undefined }
    }
    case 'ec': {
      const curve = params?.tag === TAG.OID ? CURVES[oidString(der, params)] : undefined
      return { type, problem: curve === undefined ? 'the EC curve is not P-256, P-384 or P-521' : undefined }
    }
    case 'ed25519':
    case 'ed448':
      return { type, problem: undefined }
    case 'unknown':
      return { type, problem: `keys of algorithm ${oid} are not allowed` }
  }
}

export function readSignatureAlgorithm (der: Uint8Array, alg: Tlv): SignatureCheck {
  const parts = new ChildReader(der, alg, 2)
  const oidTlv = parts.next()
  const params = parts.next()
  if (oidTlv === undefined) throw new CertificateError('empty AlgorithmIdentifier')
  parts.end()
  const oid = oidString(der, oidTlv)
  if (oid === RSASSA_PSS) return readPssParams(der, params)
  const known = SIGNATURE_ALGORITHMS[oid]
  if (known === undefined) return { ok: false, reason: 'unsupported_algorithm', detail: `signature algorithm ${oid}` }
  if (known.ok) {
    // RFC 5758 §3.2, RFC 8410 §3: ECDSA and EdDSA carry no parameters; RSA carries NULL (RFC 4055 §5).
    if (known.keyType === 'rsa') {
      if (params !== undefined && (params.tag !== TAG.NULL || params.end !== params.valueStart)) {
        throw new CertificateError('RSA signature parameters must be NULL')
      }
    } else if (params !== undefined) {
      throw new CertificateError(`${oid} must not carry parameters`)
    }
  }
  return known
}

/** RFC 4055 §3.1 RSASSA-PSS-params; only SHA-2 with matching MGF1 is accepted. */
function readPssParams (der: Uint8Array, params: Tlv | undefined): SignatureCheck {
  if (params?.tag !== TAG.SEQUENCE) return { ok: false, reason: 'weak_algorithm', detail: 'RSASSA-PSS with default (SHA-1) parameters' }
  let hash: string | undefined
  let mgfHash: string | undefined
  let salt = 20
  for (const field of children(der, params, 4)) {
    const [inner] = children(der, field, 1)
    if (inner === undefined) throw new CertificateError('empty RSASSA-PSS field')
    if (field.tag === 0xa0) hash = algorithmOid(der, inner)
    else if (field.tag === 0xa1) {
      const [mgfOid, mgfParams] = children(der, inner, 2)
      if (mgfOid === undefined || oidString(der, mgfOid) !== MGF1 || mgfParams === undefined) return { ok: false, reason: 'unsupported_algorithm',
        detail: 'RSASSA-PSS mask generation other than MGF1' }
      mgfHash = algorithmOid(der, mgfParams)
    } else if (field.tag === 0xa2) salt = readSmallUint(der, inner)
    else if (field.tag === 0xa3) { if (readSmallUint(der, inner) !== 1) return { ok: false, reason: 'unsupported_algorithm',
      detail: 'RSASSA-PSS trailer field' } }
  }
  const hashName = hash === undefined ? undefined : HASHES[hash]
  if (hashName === undefined) return { ok: false, reason: 'weak_algorithm',
    detail: `RSASSA-PSS with hash ${hash === undefined ? 'SHA-1 (default)' : WEAK_HASHES[hash] ?? hash}` }
  if (mgfHash !== hash) return { ok: false, reason: 'unsupported_algorithm', detail: 'RSASSA-PSS with an MGF1 hash different from the message hash' }
  return { ok: true, hash: hashName, keyType: 'rsa', pssSaltLength: salt }
}

function algorithmOid (der: Uint8Array, alg: Tlv): string {
  if (alg.tag !== TAG.SEQUENCE) throw new CertificateError('expected AlgorithmIdentifier')
  const [oidTlv] = children(der, alg, 2)
  if (oidTlv === undefined) throw new CertificateError('empty AlgorithmIdentifier')
  return oidString(der, oidTlv)
}
