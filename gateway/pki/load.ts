// Loads an issuer operators already have (a certificate PEM and its private key PEM) into the
// Issued shape that issue() signs with, so the `pki` and `ca register` commands can issue under a
// CA made elsewhere. Node's crypto reads every usual key form (PKCS#8, SEC1 "EC PRIVATE KEY",
// PKCS#1 "RSA PRIVATE KEY"); WebCrypto then gets PKCS#8 and SPKI. The pair must match: a key that
// is not the certificate's would issue certificates no validator accepts.
import { createPrivateKey, createPublicKey, webcrypto, X509Certificate, type KeyObject } from 'node:crypto'
import { parseCertificate } from '../../workers/certificate.js'
import type { Issued, KeyAlgorithm } from './issue.js'
import { toPem } from './pem.js'
import { errorMessage } from '../../workers/errors.js'

/** A certificate or key that cannot be used as given; the message says what to do. */
export class PkiInputError extends Error {
  override name = 'PkiInputError'
}

interface Labels { readonly cert: string, readonly key: string }

function readCertificate (pem: string, label: string): X509Certificate {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new PkiInputError(`${label} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
  try {
    // Node reads the first certificate of the PEM: the issuer, when a chain file is given.
    return new X509Certificate(pem)
  } catch (err) {
    throw new PkiInputError(`${label} is not a readable certificate: ${errorMessage(err)}`)
  }
}

function readPrivateKey (pem: string, label: string): KeyObject {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) {
    throw new PkiInputError(`${label} is encrypted; decrypt it to a file only you can read first (openssl pkey -in encrypted.key -out plain.key)`)
  }
  try {
    return createPrivateKey(pem)
  } catch (err) {
    throw new PkiInputError(`${label} is not a readable PEM private key: ${errorMessage(err)}`)
  }
}

type ImportAlgorithm = webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams

function algorithmOf (key: KeyObject, label: string): { keyAlgorithm: KeyAlgorithm, importAlgorithm: ImportAlgorithm } {
  const details = key.asymmetricKeyDetails ?? {}
  if (key.asymmetricKeyType === 'ec') {
    if (details.namedCurve === 'prime256v1') return { keyAlgorithm: 'P-256', importAlgorithm: { name: 'ECDSA', namedCurve: 'P-256' } }
    if (details.namedCurve === 'secp384r1') return { keyAlgorithm: 'P-384', importAlgorithm: { name: 'ECDSA', namedCurve: 'P-384' } }
    throw new PkiInputError(`${label} is an EC key on ${details.namedCurve ?? 'an unknown curve'}; certgate issues with P-256 or P-384 keys`)
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0
    const keyAlgorithm = ({ 1024: 'RSA-1024', 2048: 'RSA-2048', 3072: 'RSA-3072', 4096: 'RSA-4096' } as const)[bits]
    if (keyAlgorithm === undefined) throw new PkiInputError(`${label} is a ${bits}-bit RSA key; certgate issues with 2048, 3072 or 4096-bit RSA keys`)
    return { keyAlgorithm, importAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } }
  }
  throw new PkiInputError(`${label} is a${key.asymmetricKeyType === undefined ? 'n unknown' : ` ${key.asymmetricKeyType}`} key; certgate issues with ECDSA (P-256, P-384) or RSA keys`)
}

/**
 * The issuer in `certPem` (its first certificate) with the private key in `keyPem`, ready to be
 * `issue({ issuer })`. Refuses a key that does not belong to the certificate.
 */
export async function loadIssued (certPem: string, keyPem: string, labels: Labels = { cert: 'the certificate', key: 'the private key' }): Promise<Issued> {
  const cert = readCertificate(certPem, labels.cert)
  const privateKey = readPrivateKey(keyPem, labels.key)
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' })
  if (!createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).equals(spki)) {
    throw new PkiInputError(`${labels.key} does not match ${labels.cert}: the certificate's public key is not this key's (use the key the certificate was issued for)`)
  }
  const { keyAlgorithm, importAlgorithm } = algorithmOf(privateKey, labels.key)
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' })
  const subtle = webcrypto.subtle
  const keys: webcrypto.CryptoKeyPair = {
    privateKey: await subtle.importKey('pkcs8', pkcs8, importAlgorithm, true, ['sign']),
    publicKey: await subtle.importKey('spki', spki, importAlgorithm, true, ['verify'])
  }
  const der = new Uint8Array(cert.raw)
  let subjectCn = ''
  try { subjectCn = parseCertificate(der).commonNames[0] ?? '' } catch { /* a CN is informative only here */ }
  return { der, pem: toPem(der, 'CERTIFICATE'), keyPem: toPem(new Uint8Array(pkcs8), 'PRIVATE KEY'), keys, keyAlgorithm, subjectCn }
}
