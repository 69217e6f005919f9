// CA registration with proof of possession (the IoT Hub X.509 CA flow):
// upload (unverified) → a random, single-use, expiring code bound to that exact certificate →
// a certificate with CN = code signed by the CA's private key → verified. There is no other
// way to make a CA verified. The private key never reaches certgate.
import { randomBytes, X509Certificate } from 'node:crypto'
import { parseCertificate, type Certificate } from '../../workers/certificate.js'
import { sha256Hex, verifySignature } from '../../workers/validate-chain.js'
import { placeProblem } from '../../workers/profile.js'
import type { CaRecord, Registry, RevocationSettings } from '../registry/types.js'
import { errorMessage } from '../../workers/errors.js'

export const CA_ERROR_CODES = [
  'private_key_in_upload', 'pkcs12_in_upload', 'malformed_pem', 'not_one_certificate', 'malformed_certificate',
  'not_a_ca', 'nonconforming_ca', 'ca_expired', 'ca_not_yet_valid', 'weak_ca_key', 'ca_not_found', 'no_verification_code',
  'wrong_verification_code', 'verification_code_expired', 'certificate_replaced', 'verification_cn_mismatch',
  'verification_wrong_signer', 'verification_cert_invalid_time', 'invalid_ca_name', 'invalid_crl_urls', 'invalid_ocsp'
] as const
export type CaErrorCode = typeof CA_ERROR_CODES[number]

/** A refusal the admin API turns into a 4xx with this code and message. */
export class CaError extends Error {
  override name = 'CaError'
  constructor (readonly code: CaErrorCode, message: string, readonly status = 400) { super(message) }
}

export interface CaServiceOptions {
  readonly verificationCodeTtlMs: number
  readonly now?: () => number
}

export interface CaService {
  /** `settings` omitted: none (the same certificate with other settings updates only them). */
  upload: (name: string, pem: string, ifMatch?: string, settings?: RevocationSettings) => Promise<{ record: CaRecord, created: boolean }>
  generateVerificationCode: (name: string) => Promise<CaRecord>
  verify: (name: string, verificationPem: string) => Promise<CaRecord>
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g
const CA_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export function caNameProblem (name: string): string | undefined {
  return CA_NAME.test(name) ? undefined : 'a CA name is 1-128 characters of letters, digits, ".", "_" and "-", starting with a letter or digit'
}

/** Extracts exactly one certificate from an upload, refusing any private key material. */
export function certificateFromPem (pem: string): { der: Uint8Array, cert: Certificate } {
  if (/PRIVATE KEY-----/.test(pem)) throw new CaError('private_key_in_upload', 'the upload contains a private key; upload only the CA certificate (the key must never leave your machine)')
  const blocks = [...pem.matchAll(PEM_BLOCK)]
  if (blocks.length === 0) {
    if (looksLikePkcs12(pem)) throw new CaError('pkcs12_in_upload', 'the upload is a PKCS#12 bundle, which carries private keys; upload only the CA certificate as PEM')
    throw new CaError('malformed_pem', 'no PEM block found; expected -----BEGIN CERTIFICATE-----')
  }
  const certs = blocks.filter((b) => b[1] === 'CERTIFICATE')
  const other = blocks.find((b) => b[1] !== 'CERTIFICATE')
  if (other !== undefined) throw new CaError('not_one_certificate', `the upload contains a "${other[1] ?? ''}" block; upload exactly one CERTIFICATE block`)
  if (certs.length !== 1) throw new CaError('not_one_certificate', `the upload contains ${certs.length} certificates; upload exactly one`)
  const body = (certs[0]?.[2] ?? '').replace(/\s+/g, '')
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) throw new CaError('malformed_pem', 'the certificate block is not valid base64')
  const der = new Uint8Array(Buffer.from(body, 'base64'))
  try {
    return { der, cert: parseCertificate(der) }
  } catch (err) {
    throw new CaError('malformed_certificate', `the certificate cannot be parsed: ${errorMessage(err)}`)
  }
}

/** PFX (RFC 7292) is SEQUENCE { INTEGER 3, ContentInfo, ... }: base64 or raw bytes. */
function looksLikePkcs12 (text: string): boolean {
  const compact = text.replace(/\s+/g, '')
  const raw = /^[A-Za-z0-9+/]+={0,2}$/.test(compact) ? Buffer.from(compact, 'base64') : Buffer.from(text, 'latin1')
  if (raw.length < 8 || raw[0] !== 0x30) return false
  const lenBytes = (raw[1] as number) & 0x80 ? ((raw[1] as number) & 0x7f) : 0
  const p = 2 + lenBytes
  return raw[p] === 0x02 && raw[p + 1] === 0x01 && raw[p + 2] === 0x03
}

export function createCaService (registry: Registry, options: CaServiceOptions): CaService {
  const now = options.now ?? Date.now
  return {
    async upload (name, pem, ifMatch, settings) {
      const nameProblem = caNameProblem(name)
      if (nameProblem !== undefined) throw new CaError('invalid_ca_name', nameProblem)
      const { der, cert } = certificateFromPem(pem)
      if (cert.basicConstraints?.ca !== true) throw new CaError('not_a_ca', 'the certificate is not a CA certificate (basicConstraints cA is not TRUE); register the CA that signs your devices, not a device certificate')
      if (cert.keyUsage !== undefined && cert.keyUsage[5] !== true) throw new CaError('not_a_ca', 'the certificate\'s keyUsage does not include keyCertSign, so it cannot sign device certificates')
      // The validator holds a registered CA to RFC 5280's profile as a path's anchor: one that
      // breaks it would be verified, then refuse every device under it. Say so now instead.
      const nonconforming = placeProblem(cert, 'anchor')
      if (nonconforming !== undefined) throw new CaError('nonconforming_ca', `the CA certificate does not conform to RFC 5280, so no device could chain to it: ${nonconforming}`)
      if (cert.notAfter < now()) throw new CaError('ca_expired', `the CA certificate expired at ${new Date(cert.notAfter).toISOString()}`)
      if (cert.notBefore > now()) throw new CaError('ca_not_yet_valid', `the CA certificate is not valid before ${new Date(cert.notBefore).toISOString()}`)
      if (cert.keyProblem !== undefined) throw new CaError('weak_ca_key', `the CA key is refused: ${cert.keyProblem}`)
      try { cert.publicKey() } catch (err) { throw new CaError('malformed_certificate', errorMessage(err)) }
      return await registry.putCa({
        name, certificateDer: der, subject: new X509Certificate(der).subject.replace(/\n/g, ', '), thumbprint: sha256Hex(der), notAfter: new Date(cert.notAfter).toISOString(),
        ...(settings === undefined ? {} : { settings })
      }, ifMatch)
    },

    async generateVerificationCode (name) {
      // 128 random bits, upper-case hex: fits a CN (ub-common-name 64) and is easy to copy.
      const code = randomBytes(16).toString('hex').toUpperCase()
      const record = await registry.setVerificationCode(name, code, new Date(now() + options.verificationCodeTtlMs).toISOString())
      if (record === undefined) throw new CaError('ca_not_found', `no CA certificate named "${name}"`, 404)
      return record
    },

    async verify (name, verificationPem) {
      const ca = await registry.getCa(name)
      if (ca === undefined) throw new CaError('ca_not_found', `no CA certificate named "${name}"`, 404)
      const { cert } = certificateFromPem(verificationPem)
      const code = cert.commonNames.length === 1 ? cert.commonNames[0] as string : ''
      if (ca.verificationCode === null) throw new CaError('no_verification_code', 'no verification code is outstanding for this CA; call generateVerificationCode first (codes are single use)')
      if (code !== ca.verificationCode) throw new CaError('verification_cn_mismatch', 'the verification certificate\'s CN is not the current verification code; issue it with CN = the code from generateVerificationCode')
      const t = now()
      // A code issued for a certificate since replaced proves nothing about the current one.
      if (ca.verificationCodeFor !== ca.thumbprint) await settle(registry.consumeVerificationCode(name, code, ca.thumbprint, new Date(t).toISOString()))
      if (t < cert.notBefore || t > cert.notAfter) throw new CaError('verification_cert_invalid_time', 'the verification certificate is not within its validity period')
      const caCert = parseCertificate(ca.certificateDer)
      if (!verifySignature(cert, caCert)) throw new CaError('verification_wrong_signer', 'the verification certificate is not signed by this CA\'s private key; sign it with the key of the uploaded CA certificate')
      return await settle(registry.consumeVerificationCode(name, code, ca.thumbprint, new Date(t).toISOString()))
    }
  }
}

/** Turns the registry's verdict on consuming a code into a verified CA or a specific refusal. */
async function settle (consumed: ReturnType<Registry['consumeVerificationCode']>): Promise<CaRecord> {
  const result = await consumed
  switch (result) {
    case undefined: throw new CaError('ca_not_found', 'the CA certificate was deleted meanwhile', 404)
    case 'no_code': throw new CaError('no_verification_code', 'the verification code was already used; generate a new one')
    case 'wrong_code': throw new CaError('wrong_verification_code', 'the verification code was replaced by a newer one; use the latest code')
    case 'expired_code': throw new CaError('verification_code_expired', 'the verification code has expired; generate a new one')
    case 'certificate_replaced': throw new CaError('certificate_replaced', 'the CA certificate was replaced after this code was issued; generate a new code for the current certificate')
    default: return result
  }
}
