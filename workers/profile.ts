// RFC 5280 profile rules a certificate must meet in its place on a path, beyond what path
// validation (§6) itself checks: extension criticality, key identifiers, a CA's subject, and
// extensions that belong only to CAs. A certificate breaking one was not made by a conforming CA,
// and the strictest validators refuse it; so does certgate ('nonconforming_certificate').
// Pure: facts in (certificate.ts), a problem sentence out; validate-chain.ts decides when to ask.
import { KEY_USAGE, type Certificate } from './certificate.js'

export type Place = 'leaf' | 'intermediate' | 'anchor'

/** Rules for the device certificate alone (also when it is self-signed). */
export function leafProfileProblem (cert: Certificate): string | undefined {
  if (cert.serialProblem !== undefined) return cert.serialProblem
  if (cert.wronglyCritical !== undefined) return `its ${cert.wronglyCritical} extension is critical (RFC 5280 requires it non-critical)`
  // §4.2.1.10: name constraints MUST be used only in a CA certificate.
  if (cert.nameConstraints !== undefined) return 'it carries name constraints, which only a CA certificate may (RFC 5280 §4.2.1.10)'
  // §4.2.1.6: with an empty subject the identity is in the SAN, which must then be critical.
  if (cert.subjectIsEmpty && !cert.subjectAltNamesCritical) return 'its subject is empty and its subjectAltName is not critical (RFC 5280 §4.2.1.6)'
  return undefined
}

/** §4.2.1.3: keyCertSign asserted requires cA asserted. */
export function leafCanSignCertificates (cert: Certificate): boolean {
  return cert.keyUsage?.[KEY_USAGE.keyCertSign] === true && cert.basicConstraints?.ca !== true
}

/** Rules for a certificate in its place on a CA-signed path (the leaf, an intermediate, the anchor). */
export function placeProblem (cert: Certificate, place: Place): string | undefined {
  if (place !== 'leaf') {
    const ca = caProblem(cert)
    if (ca !== undefined) return ca
  }
  // Anchors are trusted by registration; a long-trusted root has serial 0 (Starfield Root G2).
  if (place === 'intermediate' && cert.serialProblem !== undefined) return cert.serialProblem
  // §4.2.1.1: keyIdentifier MUST be in every certificate a conforming CA issues, but for a
  // self-signed one. Not asked of an anchor: §6.1.1(d) takes only its name and key, and a
  // cross-signed CA registered as an anchor is trusted as such. A v1 certificate cannot carry
  // extensions (OpenSSL 3.0's `x509 -req` still makes them), so the rule binds v3 certificates.
  if (place !== 'anchor' && cert.version === 3 && cert.authorityKeyId === undefined) {
    return 'it has no authorityKeyIdentifier keyIdentifier (RFC 5280 §4.2.1.1)'
  }
  if (place === 'anchor' && cert.selfIssued() && cert.hasAuthorityKeyIdExtension) return selfSignedAkiProblem(cert)
  return undefined
}

function caProblem (cert: Certificate): string | undefined {
  if (cert.wronglyCritical !== undefined) return `its ${cert.wronglyCritical} extension is critical (RFC 5280 requires it non-critical)`
  // §4.1.2.6: a CA's subject MUST be a non-empty distinguished name.
  if (cert.subjectIsEmpty) return 'it is a CA with an empty subject (RFC 5280 §4.1.2.6)'
  // §4.2.1.9: basicConstraints MUST be critical in a CA certificate.
  if (cert.basicConstraints?.ca === true && !cert.basicConstraints.critical) return 'its basicConstraints is not critical (RFC 5280 §4.2.1.9)'
  // §4.2.1.2: the subjectKeyIdentifier MUST appear in all conforming CA certificates.
  if (cert.version === 3 && cert.subjectKeyId === undefined) return 'it is a CA without a subjectKeyIdentifier (RFC 5280 §4.2.1.2)'
  // §4.2.1.10: conforming CAs MUST mark name constraints critical.
  if (cert.nameConstraints !== undefined && !cert.nameConstraintsCritical) return 'its nameConstraints is not critical (RFC 5280 §4.2.1.10)'
  return undefined
}

/**
 * A self-signed anchor's AKI, when present, names a key and nothing else: a keyIdentifier, no
 * issuer name or serial (§4.2.1.1, CA/B BR 7.1.2.1.3). It is not required to equal the SKI:
 * OpenSSL 3.0's `req -x509` with a chosen SKI writes the key's hash as the AKI.
 */
function selfSignedAkiProblem (cert: Certificate): string | undefined {
  if (cert.authorityKeyId === undefined) return 'its authorityKeyIdentifier has no keyIdentifier'
  if (cert.authorityKeyIdNamesIssuer) return 'its authorityKeyIdentifier names an issuer or serial number, which a self-signed certificate must not'
  return undefined
}
