// Certificate issuing for operators (the `pki` CLI), the dev server certificate, tests and load
// tests: one function, every knob a validation rule needs to be exercised. @peculiar/x509 is the
// only X.509 writer; it is not used on any connection path.
import 'reflect-metadata'
import { webcrypto, randomBytes } from 'node:crypto'
import * as x509 from '@peculiar/x509'
import { toPem } from './pem.js'

export { toPem }

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

type CryptoKeyPair = webcrypto.CryptoKeyPair

export type KeyAlgorithm = 'P-256' | 'P-384' | 'P-521' | 'RSA-2048' | 'RSA-3072' | 'RSA-4096' | 'RSA-1024' | 'Ed25519'

export interface Issued {
  readonly der: Uint8Array
  readonly pem: string
  /** PKCS#8 PEM of the private key. */
  readonly keyPem: string
  readonly keys: CryptoKeyPair
  readonly keyAlgorithm: KeyAlgorithm
  readonly subjectCn: string
}

export interface IssueOptions {
  /** Common name; several for hostile-input tests. */
  readonly cn: string | readonly string[] | undefined
  /** Issuing CA; self-signed when absent. */
  readonly issuer?: Issued
  readonly ca?: boolean
  readonly pathLen?: number
  readonly notBefore?: Date
  readonly notAfter?: Date
  readonly keyAlgorithm?: KeyAlgorithm
  /** Reuse a key pair (key rollover, stale intermediates). */
  readonly keys?: CryptoKeyPair
  readonly hash?: 'SHA-256' | 'SHA-384' | 'SHA-512' | 'SHA-1'
  /** EKU OIDs; none by default for CAs, clientAuth for leaves. Pass [] for no extension. */
  readonly eku?: readonly string[]
  /** x509.KeyUsageFlags bit set; default keyCertSign|cRLSign for CAs, digitalSignature for leaves. Pass 0 to omit. */
  readonly keyUsage?: number
  readonly basicConstraints?: 'omit' | 'non-critical'
  readonly sanDns?: readonly string[]
  /** IP address SANs (v4 or v6), after the DNS names. */
  readonly sanIp?: readonly string[]
  readonly extraExtensions?: readonly x509.Extension[]
  /** URIs for a cRLDistributionPoints extension (RFC 5280 §4.2.1.13), one distribution point each. */
  readonly crlUrls?: readonly string[]
  /** Key identifiers to leave out (RFC 5280 §4.2.1.1-2 want both): for tests of non-conforming certificates. */
  readonly omitKeyIds?: ReadonlyArray<'aki' | 'ski'>
}

const DAY = 86_400_000

export async function generateKeys (alg: KeyAlgorithm): Promise<CryptoKeyPair> {
  const subtle = webcrypto.subtle
  switch (alg) {
    case 'P-256':
    case 'P-384':
    case 'P-521':
      return await subtle.generateKey({ name: 'ECDSA', namedCurve: alg }, true, ['sign', 'verify'])
    case 'RSA-2048':
    case 'RSA-3072':
    case 'RSA-4096':
    case 'RSA-1024':
      return await subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: Number(alg.slice(4)), publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256' }, true, ['sign', 'verify'])
    case 'Ed25519':
      return await subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']) as CryptoKeyPair
  }
}

function signingAlgorithm (alg: KeyAlgorithm, hash: string): webcrypto.Algorithm | webcrypto.EcdsaParams {
  if (alg.startsWith('P-')) return { name: 'ECDSA', hash }
  if (alg.startsWith('RSA')) return { name: 'RSASSA-PKCS1-v1_5', hash }
  return { name: 'Ed25519' }
}

export async function issue (opts: IssueOptions): Promise<Issued> {
  const keyAlgorithm = opts.keyAlgorithm ?? 'P-256'
  const keys = opts.keys ?? await generateKeys(keyAlgorithm)
  const ca = opts.ca === true
  const now = Date.now()
  const cns = opts.cn === undefined ? [] : typeof opts.cn === 'string' ? [opts.cn] : opts.cn
  const subject: x509.JsonName = [{ O: ['certgate'] }, ...cns.map((cn) => ({ CN: [cn] }))]
  const extensions: x509.Extension[] = []
  if (opts.basicConstraints !== 'omit') extensions.push(new x509.BasicConstraintsExtension(ca, ca ? opts.pathLen : undefined,
    opts.basicConstraints !== 'non-critical'))
  const ku = opts.keyUsage ?? (ca ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature)
  // KeyUsageFlags is a bit-flag enum: combinations are plain numbers by design.
  // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment
  if (ku !== 0) extensions.push(new x509.KeyUsagesExtension(ku, true))
  const eku = opts.eku ?? (ca ? [] : ['1.3.6.1.5.5.7.3.2'])
  if (eku.length > 0) extensions.push(new x509.ExtendedKeyUsageExtension([...eku], false))
  const omit = new Set(opts.omitKeyIds ?? [])
  if (!omit.has('ski')) extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey))
  const issuerCert = opts.issuer === undefined ? undefined : new x509.X509Certificate(opts.issuer.der)
  if (opts.issuer !== undefined && issuerCert !== undefined && !omit.has('aki')) extensions.push(await authorityKeyId(issuerCert, opts.issuer.keys.publicKey))
  const san = [...(opts.sanDns ?? []).map((d) => ({ type: 'dns' as const, value: d })), ...(opts.sanIp ?? []).map((ip) => ({ type: 'ip' as const, value: ip }))]
  if (opts.sanDns !== undefined || opts.sanIp !== undefined) extensions.push(new x509.SubjectAlternativeNameExtension(san))
  if (opts.crlUrls !== undefined) extensions.push(new x509.CRLDistributionPointsExtension([...opts.crlUrls]))
  if (opts.extraExtensions !== undefined) extensions.push(...opts.extraExtensions)

  const signer = opts.issuer ?? { keys, keyAlgorithm }
  const serial = randomBytes(16)
  serial[0] = (serial[0] as number) & 0x7f
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial.toString('hex'),
    subject,
    issuer: issuerCert === undefined ? subject : issuerCert.subjectName,
    notBefore: opts.notBefore ?? new Date(now - DAY),
    notAfter: opts.notAfter ?? new Date(now + 365 * DAY),
    publicKey: keys.publicKey,
    signingKey: signer.keys.privateKey,
    signingAlgorithm: signingAlgorithm(signer.keyAlgorithm, opts.hash ?? 'SHA-256'),
    extensions
  })
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)
  return {
    der: new Uint8Array(cert.rawData),
    pem: cert.toString('pem') + '\n',
    keyPem: toPem(new Uint8Array(pkcs8), 'PRIVATE KEY'),
    keys,
    keyAlgorithm,
    subjectCn: cns[0] ?? ''
  }
}

/**
 * RFC 5280 §4.2.1.1: the AKI is the issuer's own SKI. Issuers made here have SKI = SHA-1 of the
 * key, which is what `create` derives; an operator's CA made elsewhere may use another method,
 * and the validator refuses a link whose AKI and SKI disagree, so its SKI is copied as is.
 */
async function authorityKeyId (issuerCert: x509.X509Certificate, issuerKey: webcrypto.CryptoKey): Promise<x509.Extension> {
  const ski = issuerCert.getExtension(x509.SubjectKeyIdentifierExtension)
  return ski === null ? await x509.AuthorityKeyIdentifierExtension.create(issuerKey) : new x509.AuthorityKeyIdentifierExtension(ski.keyId)
}

/** A root, two intermediates and helpers to issue devices under the last one: the usual IoT layout. */
export async function issueHierarchy (opts: { keyAlgorithm?: KeyAlgorithm, rootCn?: string } = {}): Promise<{ root: Issued, int1: Issued, int2: Issued }> {
  const keyAlgorithm = opts.keyAlgorithm ?? 'P-256'
  const root = await issue({ cn: opts.rootCn ?? 'certgate Root CA', ca: true, keyAlgorithm, notAfter: new Date(Date.now() + 10 * 365 * DAY) })
  const int1 = await issue({ cn: 'certgate Intermediate 1', ca: true, issuer: root, keyAlgorithm })
  const int2 = await issue({ cn: 'certgate Intermediate 2', ca: true, issuer: int1, keyAlgorithm })
  return { root, int1, int2 }
}
