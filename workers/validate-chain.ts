// Path validation (RFC 5280 §6, certgate's profile in DESIGN.md §4): from the device's leaf,
// through the intermediates it sent (an unordered, untrusted bag), to a trusted anchor.
// Pure and synchronous: runs in the worker pool and behind the library's validateChain.
// Bounded: at most MAX_SENT certificates are looked at, paths are at most MAX_DEPTH
// intermediates deep, and path building stops after MAX_SIGNATURE_CHECKS / MAX_STEPS.
import { constants, hash, verify } from 'node:crypto'
import { bytesEqual } from './der.js'
import { KEY_USAGE, OID, parseCertificate, type Certificate } from './certificate.js'
import { checkNameConstraints } from './name-constraints.js'
import { leafCanSignCertificates, leafProfileProblem, placeProblem } from './profile.js'
import { policyProblem } from './policy.js'
import { pathCerts, revocationProblem, type RevocationSet } from './revocation.js'
import { suppliedCrlProblem, type SuppliedCrls } from './supplied-crls.js'
import { MAX_SENT_CERTIFICATES, type ChainReason, type ChainVerdict, type LeafFacts, type Refusal, type ValidationOutcome } from './types.js'
import type { ExpiringLru } from '../cache/expiring-lru.js'
import { errorMessage } from './errors.js'

export const LIMITS = {
  /** Certificates a device may send besides its leaf. */
  MAX_SENT: MAX_SENT_CERTIFICATES,
  /** Intermediates in one path between the leaf and the anchor. */
  MAX_DEPTH: 8,
  MAX_SIGNATURE_CHECKS: 32,
  MAX_STEPS: 256
} as const

export interface Anchor {
  readonly index: number
  readonly hash: string
  readonly cert: Certificate
}

export interface AnchorSet {
  readonly list: readonly Anchor[]
  readonly bySubject: ReadonlyMap<string, readonly Anchor[]>
  readonly hashes: ReadonlySet<string>
}

/**
 * What a cache holds about one intermediate, keyed by its SHA-256: the parsed certificate, and the
 * certificates (by SHA-256) whose key its signature verified with. One entry per intermediate, so
 * a warm chain costs one look-up per certificate sent, links included.
 */
export interface HeldIntermediate {
  readonly cert: Certificate
  /** At most MAX_LINKS_HELD: anyone can put a CA's key in a certificate of their own, so what devices send must not grow it. */
  readonly issuers: string[]
}

/** Cached knowledge about intermediates: parsed certificates and verified (child, issuer) links. */
export type IntermediateCache = ExpiringLru<HeldIntermediate>

/** Verified issuers remembered per intermediate (a cross-signed one has two); past it, links are verified each time. */
export const MAX_LINKS_HELD = 4

export interface ValidateOptions {
  /** Validation time, ms since epoch. */
  readonly at: number
  /** EKU OID the leaf (and any CA with an EKU extension) must allow. */
  readonly requiredEku: string
  readonly cache?: IntermediateCache | undefined
  readonly revocation?: RevocationSet | undefined
  /** The library caller's CRLs (validateChain `crls`): every non-anchor certificate's status must be decided by them. */
  readonly crls?: SuppliedCrls | undefined
  /** SHA-256 (hex) of each of `sent`, in order, when the caller already computed them (the warm path). */
  readonly sentHashes?: readonly string[] | undefined
  /** With `sentHashes`: what `cache` held for each of `sent` when the caller looked (the warm path), so it is not looked up twice. */
  readonly sentHeld?: ReadonlyArray<HeldIntermediate | undefined> | undefined
}

const EKU_NAMES: Record<string, string> = { clientAuth: OID.clientAuth, serverAuth: OID.serverAuth }

/** 'clientAuth' | 'serverAuth' | dotted OID → OID, or undefined if not understood. */
export function ekuOid (name: string): string | undefined {
  return EKU_NAMES[name] ?? (/^\d+(\.\d+)+$/.test(name) ? name : undefined)
}

export function sha256Hex (der: Uint8Array): string {
  // The one-shot crypto.hash (Node ≥ 20.12) skips the Hash object: ~0.7 µs instead of ~1.5 µs, three times per connection.
  return hash('sha256', der, 'hex')
}

/** Parses the anchors; ones that do not parse are left out and reported by index. */
export function buildAnchorSet (ders: readonly Uint8Array[]): { set: AnchorSet, unusable: Array<{ index: number, detail: string }> } {
  const list: Anchor[] = []
  const unusable: Array<{ index: number, detail: string }> = []
  const bySubject = new Map<string, Anchor[]>()
  ders.forEach((der, index) => {
    try {
      const anchor = { index, hash: sha256Hex(der), cert: parseCertificate(der) }
      list.push(anchor)
      const same = bySubject.get(anchor.cert.subjectKey())
      if (same === undefined) bySubject.set(anchor.cert.subjectKey(), [anchor])
      else same.push(anchor)
    } catch (err) {
      unusable.push({ index, detail: errorMessage(err) })
    }
  })
  return { set: { list, bySubject, hashes: new Set(list.map((a) => a.hash)) }, unusable }
}

function refuse (reason: ChainReason, detail: string): Refusal {
  return { ok: false, reason, detail }
}

function name (cert: Certificate): string {
  const cn = cert.commonNames[0]
  return cn === undefined ? 'certificate without CN' : `"${cn.slice(0, 64)}"`
}

/** Validates `leaf` with the `sent` intermediates against `anchors` at `opts.at`. Never throws. */
export function validatePath (leafDer: Uint8Array, sent: readonly Uint8Array[], anchors: AnchorSet, opts: ValidateOptions): ValidationOutcome {
  let leaf: Certificate
  try {
    leaf = parseCertificate(leafDer)
  } catch (err) {
    return { leaf: undefined, chain: refuse('malformed_certificate', `the device certificate is malformed: ${errorMessage(err)}`) }
  }
  const thumbprint = sha256Hex(leafDer)
  const ownProblem = leafProblem(leaf, opts)
  const facts: LeafFacts = { thumbprint, commonNames: leaf.commonNames, notBefore: leaf.notBefore, notAfter: leaf.notAfter, ownProblem }
  return { leaf: facts, chain: ownProblem ?? chainVerdict(leaf, thumbprint, sent, anchors, opts) }
}

/** Checks on the leaf alone, shared by CA-signed and self-signed authentication. */
function leafProblem (leaf: Certificate, opts: ValidateOptions): Refusal | undefined {
  return validityProblem(leaf, 'the device certificate', opts.at) ??
    (leaf.keyProblem !== undefined ? refuse('weak_key', `the device certificate's key is refused: ${leaf.keyProblem}`) : undefined) ??
    (leaf.unknownCritical !== undefined ? refuse('unknown_critical_extension', `the device certificate has an unknown critical extension ${leaf.unknownCritical}`) : undefined) ??
    // RFC 5280 §4.2.1.3: the TLS CertificateVerify is a digital signature.
    (leaf.keyUsage !== undefined && leaf.keyUsage[KEY_USAGE.digitalSignature] !== true ? refuse('leaf_key_usage', 'the device certificate\'s keyUsage does not allow digitalSignature') : undefined) ??
    (leafCanSignCertificates(leaf) ? refuse('leaf_key_usage', 'the device certificate\'s keyUsage asserts keyCertSign without basicConstraints cA (RFC 5280 §4.2.1.3)') : undefined) ??
    nonconforming(leaf, 'the device certificate', leafProfileProblem(leaf)) ??
    anyEkuProblem(leaf) ??
    ekuProblem(leaf, 'the device certificate', opts.requiredEku, false)
}

/** docs/validation.md: a device certificate names its purposes; anyExtendedKeyUsage is for CAs (CA/B BR 7.1.2.7.10). */
function anyEkuProblem (leaf: Certificate): Refusal | undefined {
  return leaf.extKeyUsage?.includes(OID.anyExtendedKeyUsage) === true ? refuse('eku_not_allowed', `the device certificate ${name(leaf)} has anyExtendedKeyUsage in its extendedKeyUsage; a device certificate must name its purposes`) : undefined
}

function nonconforming (cert: Certificate, who: string, problem: string | undefined): Refusal | undefined {
  return problem === undefined ? undefined : refuse('nonconforming_certificate', `${who} ${name(cert)} is not a conforming certificate: ${problem}`)
}

function validityProblem (cert: Certificate, who: string, atMs: number): Refusal | undefined {
  // RFC 5280 §4.1.2.5: validity has whole seconds, so the comparison does too (notAfter is inclusive).
  const at = Math.floor(atMs / 1000) * 1000
  if (at < cert.notBefore) return refuse('cert_not_yet_valid', `${who} ${name(cert)} is not valid before ${new Date(cert.notBefore).toISOString()}`)
  if (at > cert.notAfter) return refuse('cert_expired', `${who} ${name(cert)} expired at ${new Date(cert.notAfter).toISOString()}`)
  return undefined
}

function ekuProblem (cert: Certificate, who: string, required: string, anyAllowed: boolean): Refusal | undefined {
  const eku = cert.extKeyUsage
  if (eku === undefined || eku.includes(required) || (anyAllowed && eku.includes(OID.anyExtendedKeyUsage))) return undefined
  return refuse('eku_not_allowed', `${who} ${name(cert)} has an extendedKeyUsage that does not allow ${required}`)
}

/** A certificate on a candidate path; `held` is its cache entry (never the leaf's: its link is verified on every connection). */
interface Node { readonly cert: Certificate, readonly hash: string, readonly held?: HeldIntermediate | undefined }

class WorkLimit extends Error {}

/** Path building by depth-first search with backtracking; the best failure is reported. */
function chainVerdict (leaf: Certificate, leafHash: string, sent: readonly Uint8Array[], anchors: AnchorSet, opts: ValidateOptions): ChainVerdict {
  if (leaf.basicConstraints?.ca === true) return refuse('leaf_is_ca', 'the device certificate is a CA certificate (basicConstraints cA=TRUE); devices must use end-entity certificates')
  if (sent.length > LIMITS.MAX_SENT) return refuse('chain_too_long', `the device sent at least ${sent.length + 1} certificates; at most ${LIMITS.MAX_SENT + 1} are accepted`)

  const bag = new Map<string, Node[]>()
  const seen = new Set<string>([leafHash])
  // A sent certificate that does not parse is left out: one the path does not need must not spoil it.
  let unparsed: string | undefined
  for (let i = 0; i < sent.length; i++) {
    const der = sent[i] as Uint8Array
    const hash = opts.sentHashes?.[i] ?? sha256Hex(der)
    if (seen.has(hash) || anchors.hashes.has(hash)) continue // duplicates, and anchors the device also sent
    seen.add(hash)
    let node: Node
    try {
      node = intermediate(der, hash, opts.sentHeld?.[i] ?? opts.cache?.get(hash), opts.cache)
    } catch (err) {
      unparsed ??= `an intermediate certificate the device sent is malformed: ${errorMessage(err)}`
      continue
    }
    const same = bag.get(node.cert.subjectKey())
    if (same === undefined) bag.set(node.cert.subjectKey(), [node])
    else same.push(node)
  }

  const search = new PathSearch(anchors, bag, opts)
  try {
    const found = search.extend([{ cert: leaf, hash: leafHash }])
    if (found !== undefined) return found
  } catch (err) {
    if (!(err instanceof WorkLimit)) throw err
    return refuse('work_limit_exceeded', 'path building gave up: the certificates sent offer too many candidate paths')
  }
  if (unparsed !== undefined) return refuse('malformed_certificate', unparsed)
  return search.best ?? refuse('chain_untrusted', bag.has(leaf.issuerKey)
    ? 'the intermediates the device sent do not lead to a registered, verified CA (register and verify the CA at the top of the chain)'
    : 'the device certificate\'s issuer was not sent by the device and is not a registered, verified CA (send the intermediates, or register and verify the issuing CA)')
}

/** The path node of a sent intermediate: what `cache` held for it, else parsed now (and held from now on, until its notAfter). */
function intermediate (der: Uint8Array, hash: string, held: HeldIntermediate | undefined, cache: IntermediateCache | undefined): Node {
  if (held !== undefined) return { cert: held.cert, hash, held }
  const fresh: HeldIntermediate = { cert: parseCertificate(der), issuers: [] }
  cache?.set(hash, fresh, fresh.cert.notAfter)
  return { cert: fresh.cert, hash, held: cache === undefined ? undefined : fresh }
}

class PathSearch {
  best: Refusal | undefined
  private bestRank = -1
  private signatures = 0
  private steps = 0

  constructor (private readonly anchors: AnchorSet, private readonly bag: Map<string, Node[]>, private readonly opts: ValidateOptions) {}

  /** `path` runs from the leaf up; returns a verdict for the first path that fully validates. */
  extend (path: Node[]): ChainVerdict | undefined {
    if (++this.steps > LIMITS.MAX_STEPS) throw new WorkLimit()
    const child = path[path.length - 1] as Node
    for (const anchor of this.anchors.bySubject.get(child.cert.issuerKey) ?? []) {
      if (!keyIdsAgree(child.cert, anchor.cert) || !this.signed(child, anchor)) continue
      const nodes = [...path, anchor]
      const chain = nodes.map((n) => n.cert)
      const problem = checkPath(chain, this.opts)
      if (problem === undefined) return { ok: true, anchorIndex: anchor.index, pathNotAfter: earliestNotAfter(chain), path: pathCerts(nodes) }
      this.fail(problem, 3)
    }
    if (path.length - 1 >= LIMITS.MAX_DEPTH) {
      this.fail(refuse('chain_too_long', `no path within ${LIMITS.MAX_DEPTH} intermediates`), 2)
      return undefined
    }
    for (const next of this.bag.get(child.cert.issuerKey) ?? []) {
      if (path.some((n) => n.hash === next.hash) || !keyIdsAgree(child.cert, next.cert)) continue // cycles
      if (!this.signed(child, next)) continue
      path.push(next)
      const found = this.extend(path)
      if (found !== undefined) return found
      path.pop()
    }
    return undefined
  }

  private fail (problem: Refusal, rank: number): void {
    if (rank > this.bestRank) { this.best = problem; this.bestRank = rank }
  }

  /** Is `child` signed by `issuer`'s key? Links between intermediates are cached (in the child's entry); the leaf's never. */
  private signed (child: Node, issuer: Node): boolean {
    const check = child.cert.signatureCheck
    if (!check.ok) {
      this.fail(refuse(check.reason, `${name(child.cert)} is signed with ${check.detail}, which is not accepted`), 1)
      return false
    }
    // Never spend a verification on a key that is refused anyway (huge RSA keys cost milliseconds).
    if (issuer.cert.keyProblem !== undefined) {
      this.fail(refuse('weak_key', `the intermediate or CA ${name(issuer.cert)} that issued ${name(child.cert)} has a refused key: ${issuer.cert.keyProblem}`), 1)
      return false
    }
    const held = child.held
    if (held?.issuers.includes(issuer.hash) === true) return true
    if (++this.signatures > LIMITS.MAX_SIGNATURE_CHECKS) throw new WorkLimit()
    if (!verifySignature(child.cert, issuer.cert)) {
      this.fail(refuse('bad_signature', `the signature on ${name(child.cert)} does not verify with the key of its issuer ${name(issuer.cert)}`), 1)
      return false
    }
    if (held !== undefined && held.issuers.length < MAX_LINKS_HELD) held.issuers.push(issuer.hash)
    return true
  }
}

/** RFC 5280 §4.2.1.1: when both key identifiers are present they must agree. */
function keyIdsAgree (child: Certificate, issuer: Certificate): boolean {
  return child.authorityKeyId === undefined || issuer.subjectKeyId === undefined || bytesEqual(child.authorityKeyId, issuer.subjectKeyId)
}

/** Is `cert`'s signature made by `issuer`'s key? (Also used for proof-of-possession certificates.) */
export function verifySignature (cert: Certificate, issuer: Certificate): boolean {
  const check = cert.signatureCheck
  if (!check.ok || check.keyType !== issuer.keyType) return false
  try {
    const key = issuer.publicKey()
    const k = check.pssSaltLength === undefined ? key : { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: check.pssSaltLength }
    return verify(check.hash, cert.tbs, k, cert.signature)
  } catch {
    return false // a key that does not decode verifies nothing
  }
}

function earliestNotAfter (chain: readonly Certificate[]): number {
  let earliest = Infinity
  for (const cert of chain) earliest = Math.min(earliest, cert.notAfter)
  return earliest
}

/** Every check on a complete candidate path: `chain` is the leaf, the intermediates upwards, then the anchor. */
function checkPath (chain: readonly Certificate[], opts: ValidateOptions): Refusal | undefined {
  const revoked = revocationProblem(chain, opts.revocation); if (revoked !== undefined) return revoked
  const leafProblem = nonconforming(chain[0] as Certificate, 'the device certificate', placeProblem(chain[0] as Certificate, 'leaf'))
  if (leafProblem !== undefined) return leafProblem
  for (let i = 1; i < chain.length; i++) {
    const ca = chain[i] as Certificate
    const who = i === chain.length - 1 ? 'the registered CA' : 'intermediate'
    const problem = validityProblem(ca, who, opts.at) ?? issuerProblem(ca, who, opts) ??
      nonconforming(ca, who, placeProblem(ca, i === chain.length - 1 ? 'anchor' : 'intermediate')) ??
      pathLenProblem(chain, i, who) ?? nameConstraintProblem(chain, i)
    if (problem !== undefined) return problem
  }
  const policy = policyProblem(chain.slice(0, -1).reverse())
  if (policy !== undefined) return refuse('policy_constraints_violated', policy)
  // Last: CRL signatures are checked only for a path that is otherwise valid.
  return suppliedCrlProblem(chain, opts.crls, opts.at)
}

function issuerProblem (ca: Certificate, who: string, opts: ValidateOptions): Refusal | undefined {
  if (ca.keyProblem !== undefined) return refuse('weak_key', `${who} ${name(ca)}: ${ca.keyProblem}`)
  if (ca.unknownCritical !== undefined) return refuse('unknown_critical_extension', `${who} ${name(ca)} has an unknown critical extension ${ca.unknownCritical}`)
  // RFC 5280 §6.1.4(k): issuers must be CAs; §4.2.1.3: and allowed to sign certificates.
  if (ca.basicConstraints?.ca !== true) return refuse('issuer_not_ca', `${who} ${name(ca)} is not a CA certificate (basicConstraints cA is not TRUE)`)
  if (ca.keyUsage !== undefined && ca.keyUsage[KEY_USAGE.keyCertSign] !== true) return refuse('issuer_not_ca', `${who} ${name(ca)} has a keyUsage without keyCertSign`)
  return ekuProblem(ca, who, opts.requiredEku, true)
}

/** RFC 5280 §4.2.1.9 / §6.1.4(l)-(m): self-issued intermediates do not count. */
function pathLenProblem (chain: readonly Certificate[], i: number, who: string): Refusal | undefined {
  const limit = (chain[i] as Certificate).basicConstraints?.pathLen
  if (limit === undefined) return undefined
  let below = 0
  for (let k = 1; k < i; k++) if (!(chain[k] as Certificate).selfIssued()) below++
  return below > limit ? refuse('path_length_exceeded', `${who} ${name(chain[i] as Certificate)} allows ${limit} intermediate(s) below it, the path has ${below}`) : undefined
}

/** RFC 5280 §6.1.3(b): a CA's constraints bind every later certificate, self-issued intermediates excepted. */
function nameConstraintProblem (chain: readonly Certificate[], i: number): Refusal | undefined {
  const nc = (chain[i] as Certificate).nameConstraints
  if (nc === undefined) return undefined
  for (let k = i - 1; k >= 0; k--) {
    const cert = chain[k] as Certificate
    if (k > 0 && cert.selfIssued()) continue
    const r = checkNameConstraints(cert, nc)
    if (r !== undefined) return refuse(r.reason, r.detail)
  }
  return undefined
}
