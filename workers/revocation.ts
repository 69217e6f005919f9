// Revocation look-ups on a validated path: the deny-list (SHA-256 thumbprints) and the CRLs held
// (revoked serials per issuer name). The look-up structure is built once per snapshot (a Set and
// a Map of Sets), so a check costs a few hash look-ups per certificate whatever the CRLs' sizes:
// never a scan. Pure and synchronous; used by the workers on every validation and by the gateway
// to recheck live connections against a new snapshot.
import { hash } from 'node:crypto'
import type { Certificate } from './certificate.js'
import type { PathCert, Refusal, RevocationData, ValidationOutcome } from './types.js'

export interface RevocationSet {
  readonly denied: ReadonlySet<string>
  /**
   * Issuer Name (comparison key) → each CRL held for that name: its source (`CA "name"`, or which
   * intermediate under which CA) and its revoked serials. Usually one; several when CAs or
   * intermediates share a name, or a CA's own CRL and an intermediate's speak for one name.
   */
  readonly byIssuer: ReadonlyMap<string, readonly HeldCrl[]>
}

export interface HeldCrl { readonly source: string, readonly serials: ReadonlySet<string> }

export const EMPTY_REVOCATION: RevocationData = { denied: [], crls: [] }

export function buildRevocationSet (data: RevocationData): RevocationSet {
  const byIssuer = new Map<string, Array<{ source: string, serials: Set<string> }>>()
  for (const crl of data.crls) {
    // Several CRLs for one issuer name: a serial in any is revoked, and the refusal names the one listing it.
    const entry = { source: crl.source, serials: new Set(crl.serials) }
    const held = byIssuer.get(crl.issuer)
    if (held === undefined) byIssuer.set(crl.issuer, [entry])
    else held.push(entry)
  }
  return { denied: new Set(data.denied.map((t) => t.toLowerCase())), byIssuer }
}

/** The CRL (of those held for one issuer name) listing `serial`: a loop, no closure, on the handshake path. */
function listing (held: readonly HeldCrl[] | undefined, serial: string): HeldCrl | undefined {
  if (held === undefined) return undefined
  for (const crl of held) if (crl.serials.has(serial)) return crl
  return undefined
}

/** Why a certificate of the path is revoked, naming it and the source; undefined when none is. */
export function revokedPathCert (path: readonly PathCert[], set: RevocationSet): string | undefined {
  for (const [i, c] of path.entries()) {
    const who = i === 0 ? 'the device certificate' : i === path.length - 1 ? 'the registered CA' : 'intermediate'
    if (set.denied.has(c.thumbprint)) return `${who} with SHA-256 thumbprint ${c.thumbprint} is on the deny-list`
    const crl = listing(set.byIssuer.get(c.issuer), c.serial)
    if (crl !== undefined) return `${who} with serial ${c.serial} (thumbprint ${c.thumbprint}) is revoked by the CRL of ${crl.source}`
  }
  return undefined
}

/** The path facts revocation needs, from the certificates of a path (leaf first, anchor last). */
export function pathCerts (chain: ReadonlyArray<{ readonly cert: Certificate, readonly hash: string }>): PathCert[] {
  return chain.map((n) => ({ thumbprint: n.hash, issuer: n.cert.issuerKey, serial: n.cert.serial }))
}

const thumbprints = new WeakMap<Certificate, string>()

function thumbprintOf (cert: Certificate): string {
  let t = thumbprints.get(cert)
  if (t === undefined) { t = hash('sha256', cert.der, 'hex'); thumbprints.set(cert, t) }
  return t
}

/** The refusal checkPath returns for a candidate path holding a revoked certificate (leaf first, anchor last). */
export function revocationProblem (chain: readonly Certificate[], set: RevocationSet | undefined): Refusal<'cert_revoked'> | undefined {
  if (set === undefined || (set.denied.size === 0 && set.byIssuer.size === 0)) return undefined
  // Thumbprints are needed only when a deny-list exists; anchors and cached intermediates are the
  // same objects connection after connection, so each is hashed once, not per connection.
  const path = chain.map((cert) => ({ thumbprint: set.denied.size === 0 ? '' : thumbprintOf(cert), issuer: cert.issuerKey, serial: cert.serial }))
  const detail = revokedPathCert(path, set)
  return detail === undefined ? undefined : { ok: false, reason: 'cert_revoked', detail }
}

/**
 * The deny-list also binds a self-signed device's certificate, which has no chain to check: a
 * denied leaf makes both the leaf's own verdict and the chain's a refusal.
 */
export function withLeafDenial (outcome: ValidationOutcome, set: RevocationSet): ValidationOutcome {
  const leaf = outcome.leaf
  if (leaf === undefined || !set.denied.has(leaf.thumbprint)) return outcome
  const refusal: Refusal = { ok: false, reason: 'cert_revoked',
    detail: `the device certificate with SHA-256 thumbprint ${leaf.thumbprint} is on the deny-list` }
  return { leaf: { ...leaf, ownProblem: leaf.ownProblem ?? refusal }, chain: outcome.chain.ok ? refusal : outcome.chain }
}
