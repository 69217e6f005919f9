// validateChain, rule by rule (DESIGN.md §4, CONTRACT.md §Library). One table: each row builds a
// device chain with certificates issued at test time and states the verdict the profile demands.
// Ok rows also check the device ID (the leaf's only CN) and that the anchor returned is the
// registered certificate actually used. Rows with `maxMs` prove path building stays bounded on
// hostile input. After the table: a mutation sweep (no byte flip or truncation of a good chain
// is accepted or throws) and hostile input shapes (never a throw).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { createHash, webcrypto } from 'node:crypto'
// issue.js first: it loads reflect-metadata and sets the crypto provider @peculiar/x509 needs.
import { generateKeys, issue, issueHierarchy, type Issued, type IssueOptions } from '../../gateway/pki/issue.js'
import * as x509 from '@peculiar/x509'
import { validateChain, type ValidateChainInput, type ValidateChainResult } from '../../index.js'
import { CHAIN_REASONS, type ChainReason } from '../types.js'
import { LIMITS } from '../validate-chain.js'
import { children, readTlv, whole } from '../der.js'
import { bothWays } from './support/both-ways.js'

const DAY = 86_400_000
const now = Date.now()
const PAST = { notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - 10 * DAY) }
const FUTURE = { notBefore: new Date(now + 10 * DAY), notAfter: new Date(now + 30 * DAY) }
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'
const ANY_EKU = '2.5.29.37.0'
const UNKNOWN_OID = '1.3.6.1.4.1.55555.1.1'
const CERTIFICATE_POLICIES = '2.5.29.32'
const DER_NULL = Uint8Array.of(0x05, 0x00)
const KU = x509.KeyUsageFlags

// ---- fixtures, generated once ----------------------------------------------------------------

const { root, int1, int2 } = await issueHierarchy()
const INT1_CN = 'certgate Intermediate 1'
const ROOT_CN = 'certgate Root CA'
const [leaf, otherRoot, staleInt1, futureInt1, expiredRoot, futureRoot] = await Promise.all([
  device(int2),
  issue({ cn: 'Other Root', ca: true }),
  // Same name and key as int1 (so int2's signature verifies with both), outside its validity.
  issue({ cn: INT1_CN, ca: true, issuer: root, keys: int1.keys, ...PAST }),
  issue({ cn: INT1_CN, ca: true, issuer: root, keys: int1.keys, ...FUTURE }),
  issue({ cn: ROOT_CN, ca: true, keys: root.keys, ...PAST }),
  issue({ cn: ROOT_CN, ca: true, keys: root.keys, ...FUTURE })
])
const unrelatedInt = await issue({ cn: 'Unrelated Intermediate', ca: true, issuer: otherRoot })

// ---- helpers ---------------------------------------------------------------------------------

type Cert = Issued | Uint8Array
const der = (c: Cert): Uint8Array => c instanceof Uint8Array ? c : c.der

function device (issuer: Issued, opts: Partial<IssueOptions> = {}): Promise<Issued> {
  return issue({ cn: 'device-1', issuer, ...opts })
}

function chain (leafCert: Cert, intermediates: readonly Cert[], anchors: readonly Cert[], extra: { at?: Date, requiredEku?: string } = {}): ValidateChainInput {
  return { leaf: der(leafCert), intermediates: intermediates.map(der), anchors: anchors.map(der), ...extra }
}

/** A copy with the last byte changed: inside the signature BIT STRING, so still well-formed DER. */
function flipLastByte (c: Cert): Uint8Array {
  const out = Uint8Array.from(der(c))
  out[out.length - 1] = (out[out.length - 1] as number) ^ 0x01
  return out
}

function uriSan (uri: string): x509.Extension {
  return new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }])
}

/** The issuer's key identifier, in an AKI marked critical (RFC 5280 §4.2.1.1: MUST be non-critical). */
function criticalAki (issuer: Issued): x509.Extension {
  const keyId = new x509.X509Certificate(issuer.der).getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ?? ''
  return new x509.Extension('2.5.29.35', true, tlv(0x30, tlv(0x80, Buffer.from(keyId, 'hex'))))
}

function unknownExtension (critical: boolean): x509.Extension {
  return new x509.Extension(UNKNOWN_OID, critical, DER_NULL)
}

function tlv (tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(parts)
  const n = body.length
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff]
  return Uint8Array.from([tag, ...len, ...body])
}

type Subtree = { dns: string } | { dir: Uint8Array } | { uri: string }
function generalName (s: Subtree): Uint8Array {
  if ('dns' in s) return tlv(0x82, Buffer.from(s.dns, 'ascii'))
  if ('uri' in s) return tlv(0x86, Buffer.from(s.uri, 'ascii'))
  return tlv(0xa4, s.dir)
}

/** RFC 5280 §4.2.1.10 NameConstraints, critical as the RFC requires. */
function nameConstraints (permitted: readonly Subtree[], excluded: readonly Subtree[] = []): x509.Extension {
  const subtrees = (tag: number, list: readonly Subtree[]): Uint8Array[] => list.length === 0 ? [] : [tlv(tag, ...list.map((s) => tlv(0x30, generalName(s))))]
  return new x509.Extension('2.5.29.30', true, tlv(0x30, ...subtrees(0xa0, permitted), ...subtrees(0xa1, excluded)))
}

/** DER of the first `n` RDNs of a certificate's subject. */
function subjectPrefix (c: Issued, n: number): Uint8Array {
  const name = new Uint8Array(new x509.X509Certificate(c.der).subjectName.toArrayBuffer())
  const rdns = children(name, readTlv(name, 0, name.length)).slice(0, n).map((t) => whole(name, t))
  return tlv(0x30, ...rdns)
}

function memo<T> (make: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined
  return () => (p ??= make())
}

/** Root `Long 0`, CAs `Long 1`..`Long 99` each issued by the previous one, and a device under the last. */
const longChain = memo(async () => {
  const cas: Issued[] = [await issue({ cn: 'Long 0', ca: true })]
  for (let i = 1; i < 100; i++) cas.push(await issue({ cn: `Long ${i}`, ca: true, issuer: cas[i - 1] as Issued }))
  return { cas, leaf: await device(cas[99] as Issued) }
})

/** Expired at the real now, valid 20 days ago. */
const pastChain = memo(async () => {
  const long = { notBefore: new Date(now - 60 * DAY), notAfter: new Date(now + 365 * DAY) }
  const r = await issue({ cn: 'Past Root', ca: true, ...long })
  const i = await issue({ cn: 'Past Intermediate', ca: true, issuer: r, ...long })
  return { root: r, int: i, leaf: await device(i, { notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - 10 * DAY) }) }
})

/** A CA with name constraints directly under the root, and a device under it. */
async function constrained (nc: x509.Extension, leafOpts: Partial<IssueOptions> = {}): Promise<ValidateChainInput> {
  const ca = await issue({ cn: 'Constrained CA', ca: true, issuer: root, extraExtensions: [nc] })
  return chain(await device(ca, leafOpts), [ca], [root])
}

async function hierarchyOf (keyAlgorithm: 'RSA-2048' | 'P-384' | 'Ed25519'): Promise<ValidateChainInput> {
  const h = await issueHierarchy({ keyAlgorithm })
  return chain(await device(h.int2, { keyAlgorithm }), [h.int2, h.int1], [h.root])
}

// ---- the table -------------------------------------------------------------------------------

type Expected = ChainReason | 'invalid_input'
interface RowBase { readonly name: string, readonly build: () => ValidateChainInput | Promise<ValidateChainInput>, readonly maxMs?: number }
interface OkRow extends RowBase { readonly expect: 'ok', readonly deviceId: string | undefined, readonly anchorIndex?: number }
interface FailRow extends RowBase { readonly expect: Expected, readonly detail?: RegExp }
type Row = OkRow | FailRow

const rows: Row[] = [
  // Good chains.
  { name: 'leaf + 2 intermediates to the root', expect: 'ok', deviceId: 'device-1', build: () => chain(leaf, [int2, int1], [root]) },
  { name: 'leaf + 1 intermediate to the root', expect: 'ok', deviceId: 'device-2', build: async () => chain(await issue({ cn: 'device-2', issuer: int1 }), [int1], [root]) },
  { name: 'intermediate registered as the anchor', expect: 'ok', deviceId: 'device-1', build: () => chain(leaf, [int2], [int1]) },
  { name: 'issuing CA registered as the anchor, nothing sent', expect: 'ok', deviceId: 'device-1', build: () => chain(leaf, [], [int2]) },
  { name: 'intermediate registered as the anchor and also sent, with the root', expect: 'ok', deviceId: 'device-1', anchorIndex: 1, build: () => chain(leaf, [root, int1, int2], [otherRoot, int1]) },
  { name: 'extra unrelated and out-of-order intermediates, right anchor second', expect: 'ok', deviceId: 'device-1', anchorIndex: 1, build: () => chain(leaf, [unrelatedInt, int1, otherRoot, int2], [otherRoot, root]) },
  { name: 'stale intermediate (same name and key, expired) sent before the current one', expect: 'ok', deviceId: 'device-1', build: () => chain(leaf, [int2, staleInt1, int1], [root]) },
  { name: 'not-yet-valid intermediate (same name and key) sent before the current one', expect: 'ok', deviceId: 'device-1', build: () => chain(leaf, [int2, futureInt1, int1], [root]) },
  { name: 'expired int1 registered as an anchor, the root too: the path through the root is found', expect: 'ok', deviceId: 'device-1', anchorIndex: 1, build: () => chain(leaf, [int2, int1], [staleInt1, root]) },
  { name: 'anchor also sent by the device', expect: 'ok', deviceId: 'device-1', build: () => chain(leaf, [int2, int1, root], [root]) },
  { name: 'duplicates and the leaf itself in the intermediates', expect: 'ok', deviceId: 'device-1', build: () => chain(leaf, [int2, leaf, int2, int1, int1], [root]) },
  { name: 'expired and current anchors with the same name and key: the current one is used', expect: 'ok', deviceId: 'device-1', anchorIndex: 1, build: () => chain(leaf, [int2, int1], [expiredRoot, root]) },
  { name: 'an unparseable anchor is skipped, indexes still match', expect: 'ok', deviceId: 'device-1', anchorIndex: 1, build: () => chain(leaf, [int2, int1], [Uint8Array.of(1, 2, 3), root]) },
  {
    name: 'inputs are views at a non-zero byteOffset into larger buffers',
    expect: 'ok',
    deviceId: 'device-1',
    build: () => {
      const view = (c: Issued): Uint8Array => { const b = new Uint8Array(c.der.length + 13); b.set(c.der, 7); return b.subarray(7, 7 + c.der.length) }
      return chain(view(leaf), [view(int2), view(int1)], [view(root)])
    }
  },

  // Validity (RFC 5280 §6.1.3(a)(2)) of every certificate, anchor included.
  { name: 'leaf expired', expect: 'cert_expired', detail: /device certificate/, build: async () => chain(await device(int2, PAST), [int2, int1], [root]) },
  { name: 'leaf not yet valid', expect: 'cert_not_yet_valid', detail: /device certificate/, build: async () => chain(await device(int2, FUTURE), [int2, int1], [root]) },
  { name: 'intermediate expired', expect: 'cert_expired', detail: /intermediate "certgate Intermediate 1"/, build: () => chain(leaf, [int2, staleInt1], [root]) },
  { name: 'intermediate not yet valid', expect: 'cert_not_yet_valid', detail: /intermediate "certgate Intermediate 1"/, build: () => chain(leaf, [int2, futureInt1], [root]) },
  { name: 'anchor expired', expect: 'cert_expired', detail: /registered CA/, build: () => chain(leaf, [int2, int1], [expiredRoot]) },
  { name: 'anchor not yet valid', expect: 'cert_not_yet_valid', detail: /registered CA/, build: () => chain(leaf, [int2, int1], [futureRoot]) },
  { name: '`at` in the past: a chain expired now validates then', expect: 'ok', deviceId: 'device-1', build: async () => { const p = await pastChain(); return chain(p.leaf, [p.int], [p.root], { at: new Date(now - 20 * DAY) }) } },
  { name: '`at` defaults to now: the same chain is expired', expect: 'cert_expired', build: async () => { const p = await pastChain(); return chain(p.leaf, [p.int], [p.root]) } },
  { name: '`at` before the leaf notBefore', expect: 'cert_not_yet_valid', build: async () => { const p = await pastChain(); return chain(p.leaf, [p.int], [p.root], { at: new Date(now - 40 * DAY) }) } },

  // Issuers must be CAs allowed to sign certificates (§6.1.4(k), §4.2.1.3).
  {
    name: 'intermediate with basicConstraints cA FALSE',
    expect: 'issuer_not_ca',
    detail: /basicConstraints/,
    build: async () => {
      const notCa = await issue({ cn: 'Not a CA', ca: false, issuer: root, keyUsage: KU.keyCertSign | KU.cRLSign, eku: [] })
      return chain(await device(notCa), [notCa], [root])
    }
  },
  {
    name: 'intermediate without basicConstraints',
    expect: 'issuer_not_ca',
    detail: /basicConstraints/,
    build: async () => {
      const noBc = await issue({ cn: 'No basicConstraints', ca: true, basicConstraints: 'omit', issuer: root })
      return chain(await device(noBc), [noBc], [root])
    }
  },
  {
    name: 'intermediate whose keyUsage lacks keyCertSign',
    expect: 'issuer_not_ca',
    detail: /keyCertSign/,
    build: async () => {
      const noCertSign = await issue({ cn: 'No keyCertSign', ca: true, issuer: root, keyUsage: KU.cRLSign | KU.digitalSignature })
      return chain(await device(noCertSign), [noCertSign], [root])
    }
  },
  {
    name: 'intermediate without a keyUsage extension',
    expect: 'ok',
    deviceId: 'device-1',
    build: async () => {
      const noKu = await issue({ cn: 'No keyUsage', ca: true, issuer: root, keyUsage: 0 })
      return chain(await device(noKu), [noKu], [root])
    }
  },
  {
    name: 'anchor without cA',
    expect: 'issuer_not_ca',
    detail: /registered CA/,
    build: async () => {
      const notCa = await issue({ cn: 'Not a CA root', ca: false, keyUsage: KU.keyCertSign, eku: [] })
      return chain(await device(notCa), [], [notCa])
    }
  },

  // pathLenConstraint (§4.2.1.9, §6.1.4(l)-(m)).
  {
    name: 'pathLen 0 on int1 with int2 below it',
    expect: 'path_length_exceeded',
    detail: /allows 0/,
    build: async () => {
      const p0 = await issue({ cn: 'PathLen 0', ca: true, pathLen: 0, issuer: root })
      const below = await issue({ cn: 'Below PathLen 0', ca: true, issuer: p0 })
      return chain(await device(below), [below, p0], [root])
    }
  },
  {
    name: 'pathLen 0 on the leaf\'s issuer',
    expect: 'ok',
    deviceId: 'device-1',
    build: async () => {
      const p0 = await issue({ cn: 'PathLen 0', ca: true, pathLen: 0, issuer: root })
      return chain(await device(p0), [p0], [root])
    }
  },
  {
    name: 'pathLen 1 on the anchor with two intermediates below it',
    expect: 'path_length_exceeded',
    detail: /registered CA "PathLen 1 Root" allows 1/,
    build: async () => {
      const r = await issue({ cn: 'PathLen 1 Root', ca: true, pathLen: 1 })
      const a = await issue({ cn: 'Int A', ca: true, issuer: r })
      const b = await issue({ cn: 'Int B', ca: true, issuer: a })
      return chain(await device(b), [b, a], [r])
    }
  },
  {
    // Key rollover: "Int A" re-certifies its new key with its old one (issuer = subject name,
    // different key). Self-issued intermediates do not count against pathLen, so 1 is enough.
    name: 'pathLen 1 on the anchor, two intermediates of which one is self-issued',
    expect: 'ok',
    deviceId: 'device-1',
    build: async () => {
      const r = await issue({ cn: 'PathLen 1 Root', ca: true, pathLen: 1 })
      const a = await issue({ cn: 'Int A', ca: true, issuer: r })
      const rolled = await issue({ cn: 'Int A', ca: true, issuer: a })
      const x = new x509.X509Certificate(rolled.der)
      assert.equal(x.subject, x.issuer, 'the rollover certificate must be self-issued')
      return chain(await device(rolled), [a, rolled], [r])
    }
  },

  // The leaf.
  {
    name: 'leaf is a CA',
    expect: 'leaf_is_ca',
    build: async () => chain(await device(int2, { ca: true, keyUsage: KU.digitalSignature | KU.keyCertSign, eku: [CLIENT_AUTH] }), [int2, int1], [root])
  },
  { name: 'leaf EKU serverAuth only', expect: 'eku_not_allowed', detail: /device certificate/, build: async () => chain(await device(int2, { eku: [SERVER_AUTH] }), [int2, int1], [root]) },
  { name: 'leaf EKU serverAuth only, requiredEku serverAuth', expect: 'ok', deviceId: 'device-1', build: async () => chain(await device(int2, { eku: [SERVER_AUTH] }), [int2, int1], [root], { requiredEku: 'serverAuth' }) },
  { name: 'leaf EKU clientAuth, requiredEku serverAuth', expect: 'eku_not_allowed', build: () => chain(leaf, [int2, int1], [root], { requiredEku: 'serverAuth' }) },
  // docs/validation.md: a device certificate names its purposes; anyExtendedKeyUsage is for CAs.
  { name: 'leaf EKU anyExtendedKeyUsage', expect: 'eku_not_allowed', detail: /anyExtendedKeyUsage/, build: async () => chain(await device(int2, { eku: [ANY_EKU] }), [int2, int1], [root]) },
  { name: 'leaf EKU clientAuth and anyExtendedKeyUsage', expect: 'eku_not_allowed', detail: /anyExtendedKeyUsage/, build: async () => chain(await device(int2, { eku: [CLIENT_AUTH, ANY_EKU] }), [int2, int1], [root]) },
  { name: 'leaf without an EKU extension', expect: 'ok', deviceId: 'device-1', build: async () => chain(await device(int2, { eku: [] }), [int2, int1], [root]) },
  { name: 'leaf EKU private OID, requiredEku that dotted OID', expect: 'ok', deviceId: 'device-1', build: async () => chain(await device(int2, { eku: ['1.3.6.1.4.1.55555.3'] }), [int2, int1], [root], { requiredEku: '1.3.6.1.4.1.55555.3' }) },
  {
    name: 'intermediate EKU serverAuth only',
    expect: 'eku_not_allowed',
    detail: /intermediate/,
    build: async () => {
      const ekuCa = await issue({ cn: 'Server-only CA', ca: true, issuer: root, eku: [SERVER_AUTH] })
      return chain(await device(ekuCa), [ekuCa], [root])
    }
  },
  { name: 'leaf keyUsage without digitalSignature', expect: 'leaf_key_usage', build: async () => chain(await device(int2, { keyUsage: KU.keyEncipherment }), [int2, int1], [root]) },
  { name: 'leaf without a keyUsage extension', expect: 'ok', deviceId: 'device-1', build: async () => chain(await device(int2, { keyUsage: 0 }), [int2, int1], [root]) },
  { name: 'leaf with two CN attributes: valid, no device ID', expect: 'ok', deviceId: undefined, build: async () => chain(await device(int2, { cn: ['device-a', 'device-b'] }), [int2, int1], [root]) },
  { name: 'leaf without a CN: valid, no device ID', expect: 'ok', deviceId: undefined, build: async () => chain(await device(int2, { cn: undefined }), [int2, int1], [root]) },

  // Critical extensions (§4.2).
  { name: 'unknown critical extension on the leaf', expect: 'unknown_critical_extension', detail: /device certificate/, build: async () => chain(await device(int2, { extraExtensions: [unknownExtension(true)] }), [int2, int1], [root]) },
  {
    name: 'unknown critical extension on an intermediate',
    expect: 'unknown_critical_extension',
    detail: /intermediate/,
    build: async () => {
      const crit = await issue({ cn: 'Critical Int', ca: true, issuer: root, extraExtensions: [unknownExtension(true)] })
      return chain(await device(crit), [crit], [root])
    }
  },
  { name: 'unknown critical extension on the anchor', expect: 'unknown_critical_extension', detail: /registered CA/, build: async () => chain(leaf, [int2, int1], [await issue({ cn: ROOT_CN, ca: true, keys: root.keys, extraExtensions: [unknownExtension(true)] })]) },
  { name: 'unknown non-critical extension on the leaf', expect: 'ok', deviceId: 'device-1', build: async () => chain(await device(int2, { extraExtensions: [unknownExtension(false)] }), [int2, int1], [root]) },
  { name: 'critical certificatePolicies (recognised) on the leaf', expect: 'ok', deviceId: 'device-1', build: async () => chain(await device(int2, { extraExtensions: [new x509.Extension(CERTIFICATE_POLICIES, true, tlv(0x30, tlv(0x30, tlv(0x06, Uint8Array.of(0x55, 0x1d, 0x20, 0x00)))))] }), [int2, int1], [root]) },

  // Signatures and trust.
  { name: 'intermediate signature altered', expect: 'bad_signature', detail: /"certgate Intermediate 2"/, build: () => chain(leaf, [flipLastByte(int2), int1], [root]) },
  { name: 'leaf signature altered', expect: 'bad_signature', detail: /"device-1"/, build: () => chain(flipLastByte(leaf), [int2, int1], [root]) },
  { name: 'an altered int1 then an expired int1: the most specific failure is reported', expect: 'cert_expired', detail: /intermediate/, build: () => chain(leaf, [int2, flipLastByte(int1), staleInt1], [root]) },
  { name: 'anchor is some other root', expect: 'chain_untrusted', build: () => chain(leaf, [int2, int1], [otherRoot]) },
  { name: 'no anchors at all', expect: 'chain_untrusted', build: () => chain(leaf, [int2, int1], []) },
  { name: 'leaf sent without its intermediates', expect: 'chain_untrusted', detail: /not sent/, build: () => chain(leaf, [], [root]) },
  { name: 'a gap: int1 not sent', expect: 'chain_untrusted', build: () => chain(leaf, [int2], [root]) },

  // Bounded path building.
  {
    name: '100-certificate chain',
    expect: 'chain_too_long',
    maxMs: 200,
    build: async () => { const l = await longChain(); return chain(l.leaf, l.cas.slice(1).reverse(), [l.cas[0] as Issued]) }
  },
  {
    name: `${LIMITS.MAX_SENT + 1} certificates sent besides the leaf`,
    expect: 'chain_too_long',
    build: async () => { const l = await longChain(); return chain(l.leaf, l.cas.slice(99 - LIMITS.MAX_SENT), [l.cas[0] as Issued]) }
  },
  {
    name: `${LIMITS.MAX_DEPTH} intermediates between leaf and anchor`,
    expect: 'ok',
    deviceId: 'device-1',
    build: async () => { const l = await longChain(); return chain(l.leaf, l.cas.slice(100 - LIMITS.MAX_DEPTH), [l.cas[99 - LIMITS.MAX_DEPTH] as Issued]) }
  },
  {
    name: `${LIMITS.MAX_DEPTH + 1} intermediates between leaf and anchor`,
    expect: 'chain_too_long',
    build: async () => { const l = await longChain(); return chain(l.leaf, l.cas.slice(99 - LIMITS.MAX_DEPTH), [l.cas[98 - LIMITS.MAX_DEPTH] as Issued]) }
  },
  {
    // A's issuer is B and B's issuer is A, distinct keys; the root is never reached.
    name: 'cycle of two CAs issued by each other',
    expect: 'chain_untrusted',
    maxMs: 200,
    build: async () => {
      const [ka, kb] = await Promise.all([generateKeys('P-256'), generateKeys('P-256')])
      const b0 = await issue({ cn: 'Cycle B', ca: true, keys: kb })
      const a = await issue({ cn: 'Cycle A', ca: true, keys: ka, issuer: b0 })
      const b = await issue({ cn: 'Cycle B', ca: true, keys: kb, issuer: a })
      return chain(await device(a), [a, b, b0], [root])
    }
  },
  {
    // Five "Mesh A" and five "Mesh B" certificates, each name issued by the other, one shared key:
    // every link verifies, key identifiers always agree, no path ever reaches the root.
    name: 'mesh of cross-signed intermediates with one key',
    expect: 'work_limit_exceeded',
    maxMs: 200,
    build: async () => {
      const k = await generateKeys('P-256')
      const b0 = await issue({ cn: 'Mesh B', ca: true, keys: k })
      const as = await Promise.all([0, 1, 2, 3, 4].map(() => issue({ cn: 'Mesh A', ca: true, keys: k, issuer: b0 })))
      const bs = await Promise.all(as.map((a) => issue({ cn: 'Mesh B', ca: true, keys: k, issuer: a })))
      return chain(await device(as[0] as Issued), [...as, ...bs], [root])
    }
  },
  {
    name: `${LIMITS.MAX_SENT} intermediates with the issuer's name but other keys`,
    expect: 'chain_untrusted',
    maxMs: 200,
    build: async () => chain(leaf, await decoys(LIMITS.MAX_SENT), [root])
  },
  {
    name: 'same-name decoys sent before the real intermediates',
    expect: 'ok',
    deviceId: 'device-1',
    maxMs: 200,
    build: async () => chain(leaf, [...await decoys(LIMITS.MAX_SENT - 2), int2, int1], [root])
  },

  // Malformed DER: a verdict, never a throw.
  { name: 'leaf is random bytes', expect: 'malformed_certificate', build: () => chain(pseudoRandom(300), [int2, int1], [root]) },
  { name: 'leaf is empty', expect: 'malformed_certificate', build: () => chain(new Uint8Array(0), [int2, int1], [root]) },
  {
    name: 'leaf outer length changed',
    expect: 'malformed_certificate',
    build: () => {
      const bad = Uint8Array.from(leaf.der)
      assert.equal(bad[1], 0x82, 'expected a two-byte outer length')
      bad[3] = (bad[3] as number) ^ 0x01
      return chain(bad, [int2, int1], [root])
    }
  },
  { name: 'leaf truncated by one byte', expect: 'malformed_certificate', build: () => chain(leaf.der.subarray(0, leaf.der.length - 1), [int2, int1], [root]) },
  { name: 'leaf truncated to half', expect: 'malformed_certificate', build: () => chain(leaf.der.subarray(0, leaf.der.length >> 1), [int2, int1], [root]) },
  { name: 'leaf with a trailing byte', expect: 'malformed_certificate', build: () => chain(Uint8Array.from([...leaf.der, 0]), [int2, int1], [root]) },
  { name: 'intermediate truncated', expect: 'malformed_certificate', detail: /intermediate/, build: () => chain(leaf, [int2.der.subarray(0, int2.der.length - 10), int1], [root]) },
  // A sent certificate that does not parse is dropped; the chain is malformed only if no path is left.
  { name: 'unneeded intermediate is random bytes', expect: 'ok', deviceId: 'device-1', build: () => chain(leaf, [int2, pseudoRandom(200), int1], [root]) },
  { name: 'the only possible issuer sent is random bytes', expect: 'malformed_certificate', detail: /intermediate/, build: () => chain(leaf, [int2, pseudoRandom(200)], [root]) },
  {
    name: 'a CA requires an explicit policy (policyConstraints), the device asserts none',
    expect: 'policy_constraints_violated',
    detail: /explicit certificate policy/,
    build: async () => {
      const ca = await issue({ cn: 'Policy CA', ca: true, issuer: root, extraExtensions: [new x509.Extension('2.5.29.36', true, tlv(0x30, tlv(0x80, Uint8Array.of(0))))] })
      return chain(await device(ca), [ca], [root])
    }
  },
  { name: 'a critical AKI on the leaf', expect: 'nonconforming_certificate', detail: /authorityKeyIdentifier extension is critical/, build: async () => chain(await device(int2, { omitKeyIds: ['aki'], extraExtensions: [criticalAki(int2)] }), [int2, int1], [root]) },

  // Weak keys and algorithms.
  { name: 'RSA-1024 leaf key', expect: 'weak_key', detail: /device certificate/, build: async () => chain(await device(int2, { keyAlgorithm: 'RSA-1024' }), [int2, int1], [root]) },
  {
    name: 'RSA-1024 intermediate key',
    expect: 'weak_key',
    detail: /intermediate.*1024/,
    build: async () => {
      const weak = await issue({ cn: 'RSA-1024 CA', ca: true, issuer: root, keyAlgorithm: 'RSA-1024' })
      return chain(await device(weak), [weak], [root])
    }
  },
  { name: 'SHA-1 signature on the leaf', expect: 'weak_algorithm', detail: /"device-1".*SHA1/i, build: async () => chain(await device(int2, { hash: 'SHA-1' }), [int2, int1], [root]) },
  { name: 'SHA-1 signature on an intermediate', expect: 'weak_algorithm', detail: /"certgate Intermediate 1"/, build: async () => chain(leaf, [int2, await issue({ cn: INT1_CN, ca: true, issuer: root, keys: int1.keys, hash: 'SHA-1' })], [root]) },
  { name: 'RSASSA-PSS (SHA-256) signature on the leaf', expect: 'ok', deviceId: 'device-1', build: () => pssLeaf('SHA-256') },
  { name: 'RSASSA-PSS (SHA-1) signature on the leaf', expect: 'weak_algorithm', detail: /RSASSA-PSS with hash SHA-1/, build: () => pssLeaf('SHA-1') },
  { name: 'RSA-2048 chain', expect: 'ok', deviceId: 'device-1', build: () => hierarchyOf('RSA-2048') },
  { name: 'P-384 chain', expect: 'ok', deviceId: 'device-1', build: () => hierarchyOf('P-384') },
  { name: 'Ed25519 chain', expect: 'ok', deviceId: 'device-1', build: () => hierarchyOf('Ed25519') },

  // Name constraints (§4.2.1.10, §6.1.3(b)).
  { name: 'permitted DNS example.com, SAN a.example.com', expect: 'ok', deviceId: 'device-1', build: () => constrained(nameConstraints([{ dns: 'example.com' }]), { sanDns: ['a.example.com'] }) },
  { name: 'permitted DNS example.com, SAN evil.com', expect: 'name_constraints_violated', detail: /evil\.com/, build: () => constrained(nameConstraints([{ dns: 'example.com' }]), { sanDns: ['evil.com'] }) },
  { name: 'permitted DNS example.com, SAN notexample.com', expect: 'name_constraints_violated', build: () => constrained(nameConstraints([{ dns: 'example.com' }]), { sanDns: ['notexample.com'] }) },
  { name: 'permitted DNS example.com, one good and one bad SAN', expect: 'name_constraints_violated', build: () => constrained(nameConstraints([{ dns: 'example.com' }]), { sanDns: ['a.example.com', 'evil.com'] }) },
  { name: 'excluded DNS bad.example.com, SAN x.bad.example.com', expect: 'name_constraints_violated', detail: /excluded/, build: () => constrained(nameConstraints([{ dns: 'example.com' }], [{ dns: 'bad.example.com' }]), { sanDns: ['x.bad.example.com'] }) },
  { name: 'excluded DNS bad.example.com, SAN good.example.com', expect: 'ok', deviceId: 'device-1', build: () => constrained(nameConstraints([{ dns: 'example.com' }], [{ dns: 'bad.example.com' }]), { sanDns: ['good.example.com'] }) },
  { name: 'permitted directoryName O=certgate, leaf O=certgate CN=device-1', expect: 'ok', deviceId: 'device-1', build: () => constrained(nameConstraints([{ dir: subjectPrefix(leaf, 1) }])) },
  { name: 'permitted directoryName O=certgate CN=other, leaf CN=device-1', expect: 'name_constraints_violated', detail: /subject name/, build: () => constrained(nameConstraints([{ dir: subjectPrefix(otherRoot, 2) }])) },
  { name: 'excluded directoryName O=certgate', expect: 'name_constraints_violated', detail: /excluded/, build: () => constrained(nameConstraints([], [{ dir: subjectPrefix(leaf, 1) }])) },
  { name: 'permitted URI constraint example.com, URI SAN on example.com', expect: 'ok', deviceId: 'device-1', build: () => constrained(nameConstraints([{ uri: 'example.com' }]), { extraExtensions: [uriSan('https://example.com/x')] }) },
  { name: 'permitted URI constraint example.com, URI SAN on evil.com', expect: 'name_constraints_violated', build: () => constrained(nameConstraints([{ uri: 'example.com' }]), { extraExtensions: [uriSan('https://user@evil.com:8443/x')] }) },
  { name: 'permitted URI constraint and a URI SAN without a host: fail closed', expect: 'name_constraints_unsupported', build: () => constrained(nameConstraints([{ uri: 'example.com' }]), { extraExtensions: [uriSan('urn:example:device-1')] }) },
  {
    name: 'name constraints on the anchor bind the leaf',
    expect: 'name_constraints_violated',
    build: async () => {
      const r = await issue({ cn: 'Constrained Root', ca: true, extraExtensions: [nameConstraints([{ dns: 'example.com' }])] })
      return chain(await device(r, { sanDns: ['evil.com'] }), [], [r])
    }
  },
  {
    // The device is inside O=certgate; the intermediate between it and the constrained CA is not.
    name: 'name constraints bind intermediates below the constrained CA',
    expect: 'name_constraints_violated',
    detail: /subject name/,
    build: async () => {
      const ca = await issue({ cn: 'Constrained CA', ca: true, issuer: root, extraExtensions: [nameConstraints([{ dir: subjectPrefix(leaf, 1) }])] })
      const outsider = await issueOutsider(ca)
      return chain(await device(outsider), [outsider, ca], [root])
    }
  },

  // Bad input types: a verdict, never a throw.
  { name: 'leaf is a string', expect: 'invalid_input', build: () => ({ ...chain(leaf, [int2, int1], [root]), leaf: 'MIIB...' as unknown as Uint8Array }) },
  { name: 'leaf is an array of numbers', expect: 'invalid_input', build: () => ({ ...chain(leaf, [int2, int1], [root]), leaf: Array.from(leaf.der) as unknown as Uint8Array }) },
  { name: 'leaf is null', expect: 'invalid_input', build: () => ({ ...chain(leaf, [int2, int1], [root]), leaf: null as unknown as Uint8Array }) },
  { name: 'intermediates is not an array', expect: 'invalid_input', build: () => ({ ...chain(leaf, [], [root]), intermediates: int2.der as unknown as Uint8Array[] }) },
  { name: 'an intermediate is a string', expect: 'invalid_input', build: () => ({ ...chain(leaf, [int2], [root]), intermediates: [int2.der, int1.pem as unknown as Uint8Array] }) },
  { name: 'an anchor is a number', expect: 'invalid_input', build: () => ({ ...chain(leaf, [int2, int1], []), anchors: [42 as unknown as Uint8Array] }) },
  { name: 'anchors missing', expect: 'invalid_input', build: () => ({ leaf: leaf.der, intermediates: [] } as unknown as ValidateChainInput) },
  { name: 'at is an invalid Date', expect: 'invalid_input', build: () => chain(leaf, [int2, int1], [root], { at: new Date(Number.NaN) }) },
  { name: 'requiredEku is not understood', expect: 'invalid_input', build: () => chain(leaf, [int2, int1], [root], { requiredEku: 'emailProtection' }) }
]

async function decoys (n: number): Promise<Issued[]> {
  return await Promise.all(Array.from({ length: n }, () => issue({ cn: 'certgate Intermediate 2', ca: true, issuer: int1 })))
}

/** Deterministic noise that is not DER. */
function pseudoRandom (n: number): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i += 32) out.set(createHash('sha256').update(`noise ${i}`).digest().subarray(0, Math.min(32, n - i)), i)
  return out
}

/** A P-256 CA named O=elsewhere, CN=Outsider (issue() always puts O=certgate first), issued by `issuer`. */
async function issueOutsider (issuer: Issued): Promise<Issued> {
  const keys = await generateKeys('P-256')
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '01',
    subject: [{ O: ['elsewhere'] }, { CN: ['Outsider'] }],
    issuer: new x509.X509Certificate(issuer.der).subjectName,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 30 * DAY),
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(KU.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey)
    ]
  })
  return { der: new Uint8Array(cert.rawData), pem: '', keyPem: '', keys, keyAlgorithm: 'P-256', subjectCn: 'Outsider' }
}

/** A device under an RSA-2048 CA, signed with RSASSA-PSS (salt = hash length) by the CA's key. */
async function pssLeaf (hash: 'SHA-256' | 'SHA-1'): Promise<ValidateChainInput> {
  const ca = await issue({ cn: 'PSS CA', ca: true, issuer: root, keyAlgorithm: 'RSA-2048' })
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', ca.keys.privateKey)
  const pssKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSA-PSS', hash }, false, ['sign'])
  const keys = await generateKeys('P-256')
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: [{ O: ['certgate'] }, { CN: ['device-1'] }],
    issuer: new x509.X509Certificate(ca.der).subjectName,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 30 * DAY),
    publicKey: keys.publicKey,
    signingKey: pssKey,
    signingAlgorithm: { name: 'RSA-PSS', saltLength: hash === 'SHA-256' ? 32 : 20 },
    extensions: [new x509.KeyUsagesExtension(KU.digitalSignature, true), await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey)]
  })
  const leafDer = new Uint8Array(cert.rawData)
  assert.ok(Buffer.from(leafDer).includes(Buffer.from('06092a864886f70d01010a', 'hex')), 'expected an id-RSASSA-PSS signature')
  return chain(leafDer, [ca], [root])
}

function checkRow (row: Row, input: ValidateChainInput, result: ValidateChainResult): void {
  if (row.expect === 'ok') {
    assert.ok(result.ok, `expected ok, got ${result.ok ? '' : `${result.reason}: ${result.detail}`}`)
    assert.equal(result.deviceId, row.deviceId)
    const expected = input.anchors[row.anchorIndex ?? 0]
    assert.ok(expected !== undefined)
    assert.deepEqual(Buffer.from(result.anchor), Buffer.from(expected), 'the anchor returned is not the one expected')
    return
  }
  assert.equal(result.ok, false, `expected ${row.expect}, got ok`)
  assert.equal(result.reason, row.expect, `detail: ${result.detail}`)
  assert.ok(result.detail.length > 0)
  if (row.detail !== undefined) assert.match(result.detail, row.detail)
}

test('validateChain: one row per rule', async (t) => {
  for (const row of rows) {
    await t.test(row.name, async () => {
      const input = await row.build()
      const started = performance.now()
      const result = await validateChain(input)
      const ms = performance.now() - started
      checkRow(row, input, result)
      if (row.maxMs !== undefined) assert.ok(ms < row.maxMs, `took ${ms.toFixed(1)} ms (limit ${row.maxMs} ms)`)
    })
  }
})

test('validateChain: the gateway\'s event-loop warm path gives every row the same verdict as the pool', async (t) => {
  const inputs = await Promise.all(rows.map(async (row) => ({ row, input: await row.build() })))
  const both = bothWays()
  // First pass: the accepted rows teach the warm path their intermediates, as the pool's verdicts do in the gateway.
  for (const { input } of inputs) await both.validate(input)
  const taught = both.warmDecided
  for (const { row, input } of inputs) {
    await t.test(row.name, async () => { checkRow(row, input, await both.validate(input)) })
  }
  t.diagnostic(`${both.warmDecided - taught} of ${rows.length} rows decided on the warm path too, each agreeing`)
  // Refused leaves under warm intermediates must be among them, not only the good chains.
  assert.ok(both.warmDecided - taught > rows.filter((r) => r.expect === 'ok').length)
})

test('validateChain: rows are unique and cover every chain reason the library can give', () => {
  assert.equal(new Set(rows.map((r) => r.name)).size, rows.length)
  const covered = new Set(rows.map((r) => r.expect))
  // Signature-algorithm rejections other than weak ones need hand-made DER; cert_revoked and
  // revocation_unknown need CRLs (workers/test/supplied-crls.test.ts, gateway/test/e2e/revocation.test.ts); the rest must be here.
  const missing = CHAIN_REASONS.filter((r) => !covered.has(r) && r !== 'unsupported_algorithm' && r !== 'cert_revoked' && r !== 'revocation_unknown')
  assert.deepEqual(missing, [])
})

test('validateChain: no single-byte change or truncation of a good chain is accepted, none throws', async () => {
  const targets: Array<{ who: string, mutate: (bad: Uint8Array) => ValidateChainInput, good: Uint8Array }> = [
    { who: 'leaf', good: leaf.der, mutate: (bad) => chain(bad, [int2, int1], [root]) },
    { who: 'int2', good: int2.der, mutate: (bad) => chain(leaf, [bad, int1], [root]) }
  ]
  const reasons = new Set<string>(CHAIN_REASONS)
  for (const { who, good, mutate } of targets) {
    for (let i = 0; i < good.length; i++) {
      const bad = Uint8Array.from(good)
      bad[i] = (bad[i] as number) ^ 0x01
      const r = await validateChain(mutate(bad))
      assert.ok(!r.ok, `${who}: flipping byte ${i} was accepted`)
      assert.ok(reasons.has(r.reason), `${who}: flipping byte ${i} gave ${r.reason}: ${r.detail}`)
    }
    for (let n = 0; n < good.length; n++) {
      const r = await validateChain(mutate(good.subarray(0, n)))
      assert.ok(!r.ok && r.reason === 'malformed_certificate', `${who}: truncating to ${n} bytes gave ${r.ok ? 'ok' : r.reason}`)
    }
  }
})

test('validateChain: hostile input shapes resolve to a refusal, never a throw', async () => {
  const good = chain(leaf, [int2, int1], [root])
  const shapes: unknown[] = [
    undefined,
    null,
    42,
    'leaf',
    {},
    { ...good, at: now },
    { ...good, at: 'yesterday' },
    { ...good, requiredEku: 42 },
    { ...good, intermediates: [null] },
    { ...good, anchors: [undefined] },
    { ...good, intermediates: new Array(1000).fill(int2.der) },
    { ...good, intermediates: [int2.der, , int1.der] }, // eslint-disable-line no-sparse-arrays
    { ...good, leaf: new Uint16Array(4) },
    { ...good, leaf: new DataView(leaf.der.buffer) }
  ]
  for (const [i, shape] of shapes.entries()) {
    const r = await validateChain(shape as ValidateChainInput)
    assert.equal(r.ok, false, `shape ${i} was accepted`)
  }
})
