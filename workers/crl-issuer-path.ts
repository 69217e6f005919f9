// Delegated CRL signers (RFC 5280 §6.3.3 (f), §4.2.1.3 cRLSign): a CRL signed by an intermediate CA
// under a registered CA, for the certificates that intermediate issued. The operator supplies the
// intermediate (and any intermediates between it and the registered CA); this module decides whether
// that certificate is one the registered CA vouches for: every link signed by the one above it up to
// the CA, every certificate a CA, inside its validity, with the constraints a device path would
// check. Pure: no I/O. The CRL's own signature is checked against the result (crl.ts checkCrlIssuer).
import { KEY_USAGE, type Certificate } from './certificate.js'
import { verifySignature } from './validate-chain.js'

/** Certificates taken between the CRL's issuer and the registered CA (as a device's MAX_DEPTH). */
export const MAX_DELEGATION_DEPTH = 8

function who (cert: Certificate): string {
  const cn = cert.commonNames[0]
  return cn === undefined ? 'a certificate without CN' : `"${cn.slice(0, 64)}"`
}

/**
 * Orders `given` (the CRL issuer first, then intermediates in any order) into a path from the
 * issuer up to `ca`: each next certificate is the one whose subject is the current one's issuer
 * and whose key signed it. Returns the path (issuer first, `ca` excluded) or why there is none.
 */
export function delegationPath (given: readonly Certificate[], ca: Certificate): { path: Certificate[] } | { problem: string } {
  const issuer = given[0]
  if (issuer === undefined) return { problem: 'no issuer certificate was given' }
  if (given.length > MAX_DELEGATION_DEPTH) return { problem: `at most ${MAX_DELEGATION_DEPTH} certificates are taken between the CRL's issuer and the CA` }
  const path = [issuer]
  const rest = given.slice(1)
  for (;;) {
    const top = path[path.length - 1] as Certificate
    if (top.issuerKey === ca.subjectKey() && verifySignature(top, ca)) return { path }
    const i = rest.findIndex((c) => c.subjectKey() === top.issuerKey && verifySignature(top, c))
    if (i < 0) return { problem: `${who(top)} is not signed by this CA nor by an intermediate given with it` }
    path.push(rest.splice(i, 1)[0] as Certificate)
  }
}

/**
 * Why the path (CRL issuer first, registered CA excluded) does not make its first certificate a CRL
 * issuer under `ca` at `at`, or undefined. The same rules a device path through these certificates
 * would meet (validate-chain.ts), plus cRLSign on the issuer.
 */
export function delegationProblem (path: readonly Certificate[], ca: Certificate, at: number): string | undefined {
  const chain = [...path, ca]
  const t = Math.floor(at / 1000) * 1000 // RFC 5280 §4.1.2.5: whole seconds
  for (const [i, c] of chain.entries()) {
    if (t < c.notBefore || t > c.notAfter) return `${who(c)} is not within its validity period`
    if (c.keyProblem !== undefined) return `${who(c)} has a refused key: ${c.keyProblem}`
    if (c.unknownCritical !== undefined) return `${who(c)} has an unknown critical extension ${c.unknownCritical}`
    // The CRL's issuer issues device certificates: it must be a CA (RFC 5280 §6.1.4 (k)).
    if (c.basicConstraints?.ca !== true) return `${who(c)} is not a CA certificate (basicConstraints cA is not TRUE)`
    if (i > 0 && c.keyUsage !== undefined && c.keyUsage[KEY_USAGE.keyCertSign] !== true) return `${who(c)} has a keyUsage without keyCertSign`
    // RFC 5280 §4.2.1.9: intermediates below it, self-issued ones excepted.
    const limit = c.basicConstraints.pathLen
    if (i > 0 && limit !== undefined && chain.slice(0, i).filter((x) => !x.selfIssued()).length > limit) return `${who(c)} allows ${limit} intermediate(s) below it`
  }
  // RFC 5280 §4.2.1.3: the cRLSign bit for a key that signs CRLs (no keyUsage: any use).
  const issuer = path[0] as Certificate
  if (issuer.keyUsage !== undefined && issuer.keyUsage[CRL_SIGN] !== true) return `${who(issuer)} has a keyUsage without cRLSign`
  return undefined
}

/** RFC 5280 §4.2.1.3 keyUsage bit 6. */
const CRL_SIGN = 6
