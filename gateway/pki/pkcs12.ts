// PKCS#12 (RFC 7292) bundles for devices that take one password-protected file. The only
// importer of node-forge. forge's own toPkcs12Asn1 reads keys and certificates into its RSA-only
// objects, so EC devices could not be bundled; here the structure is assembled from the DER that
// Node exports (a PKCS#8 PrivateKeyInfo is the same for every key type) and forge does the
// cryptography: PBES2 key encryption and the password MAC. Defaults match `openssl pkcs12 -export`
// of OpenSSL 3 (PBES2/PBKDF2-HMAC-SHA256/AES-256-CBC, HMAC-SHA256 MAC, 2048 iterations); `legacy`
// is 3DES with a SHA-1 MAC, for device stacks that predate that.
import { createHash } from 'node:crypto'
import forge from 'node-forge'

export interface Pkcs12Input {
  /** PKCS#8 DER of the private key (any type Node exports). */
  readonly keyPkcs8Der: Uint8Array
  /** DER of the certificate that goes with the key. */
  readonly certDer: Uint8Array
  /** DER of the intermediates to carry along (any order). */
  readonly chainDers: readonly Uint8Array[]
  readonly password: string
  readonly legacy?: boolean
  /** Shown by certificate stores (Windows, macOS keychain) next to the bundle. */
  readonly friendlyName?: string
}

const ITERATIONS = 2048
const { asn1, pki } = forge
const { Class, Type } = asn1

const bin = (bytes: Uint8Array): string => Buffer.from(bytes).toString('binary')
const oid = (dotted: string): forge.asn1.Asn1 => asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(dotted).getBytes())
const octets = (bytes: string): forge.asn1.Asn1 => asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, bytes)
const seq = (items: forge.asn1.Asn1[]): forge.asn1.Asn1 => asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, items)
const set = (items: forge.asn1.Asn1[]): forge.asn1.Asn1 => asn1.create(Class.UNIVERSAL, Type.SET, true, items)
// forge types a tag number as its universal Type enum: [0] is tag number 0 (NONE's value).
const explicit0 = (item: forge.asn1.Asn1): forge.asn1.Asn1 => asn1.create(Class.CONTEXT_SPECIFIC, Type.NONE, true, [item])
const der = (item: forge.asn1.Asn1): string => asn1.toDer(item).getBytes()

const OIDS = {
  data: '1.2.840.113549.1.7.1',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1'
} as const

/** ContentInfo of type data wrapping a SafeContents. */
const dataContent = (bags: forge.asn1.Asn1[]): forge.asn1.Asn1 => seq([oid(OIDS.data), explicit0(octets(der(seq(bags))))])

const attribute = (type: string, value: forge.asn1.Asn1): forge.asn1.Asn1 => seq([oid(type), set([value])])

/** The bundle as DER (the .p12/.pfx file). */
export function pkcs12Bundle (input: Pkcs12Input): Uint8Array {
  const legacy = input.legacy === true
  // Pairs the key with its certificate for readers: SHA-1 of the certificate, as OpenSSL does.
  const localKeyId = createHash('sha1').update(input.certDer).digest('binary')
  const attrs = [attribute(OIDS.localKeyId, octets(localKeyId))]
  if (input.friendlyName !== undefined) {
    // forge writes a BMPSTRING's value as UTF-16 code units itself.
    attrs.push(attribute(OIDS.friendlyName, asn1.create(Class.UNIVERSAL, Type.BMPSTRING, false, input.friendlyName)))
  }
  const bagAttrs = set(attrs)

  const certBag = (certDer: Uint8Array, withAttrs: boolean): forge.asn1.Asn1 => seq([
    oid(OIDS.certBag),
    explicit0(seq([oid(OIDS.x509Certificate), explicit0(octets(bin(certDer)))])),
    ...(withAttrs ? [bagAttrs] : [])
  ])
  const certs = dataContent([certBag(input.certDer, true), ...input.chainDers.map((c) => certBag(c, false))])

  const privateKeyInfo = asn1.fromDer(forge.util.createBuffer(bin(input.keyPkcs8Der)))
  // PBES2 keys are derived from the password's UTF-8 bytes; the PKCS#12 PBE (3DES) and the MAC
  // take its BMPString, which forge builds from the JavaScript string itself.
  const encrypted = legacy
    ? pki.encryptPrivateKeyInfo(privateKeyInfo, input.password, { algorithm: '3des', count: ITERATIONS, saltSize: 8 })
    : pki.encryptPrivateKeyInfo(privateKeyInfo, forge.util.encodeUtf8(input.password),
      { algorithm: 'aes256', prfAlgorithm: 'sha256', count: ITERATIONS, saltSize: 16 })
  const key = dataContent([seq([oid(OIDS.pkcs8ShroudedKeyBag), explicit0(encrypted), bagAttrs])])

  const authSafe = der(seq([certs, key]))
  const md = legacy ? forge.md.sha1.create() : forge.md.sha256.create()
  const macSalt = forge.random.getBytesSync(legacy ? 8 : 16)
  const macKey = forge.pkcs12.generateKey(input.password, forge.util.createBuffer(macSalt), 3, ITERATIONS, md.digestLength, md)
  const hmac = forge.hmac.create()
  hmac.start(md, macKey.getBytes())
  hmac.update(authSafe)
  const macData = seq([
    seq([seq([oid(legacy ? OIDS.sha1 : OIDS.sha256), asn1.create(Class.UNIVERSAL, Type.NULL, false, '')]), octets(hmac.digest().getBytes())]),
    octets(macSalt),
    asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(ITERATIONS).getBytes())
  ])
  const pfx = seq([
    asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(3).getBytes()),
    seq([oid(OIDS.data), explicit0(octets(authSafe))]),
    macData
  ])
  return new Uint8Array(Buffer.from(der(pfx), 'binary'))
}
