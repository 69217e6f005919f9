// RFC 5280 §4.2.1.10 / §6.1.3(b)-(c) name constraints for the name forms certgate can judge:
// dNSName, rfc822Name, iPAddress and directoryName. A constraint of any other form, when the
// certificate carries a name of that form, fails closed ('unsupported').
import type { Certificate, GeneralName, NameConstraints } from './certificate.js'

export type NameConstraintResult = undefined | { readonly reason: 'name_constraints_violated' | 'name_constraints_unsupported', readonly detail: string }

/** Checks every name `cert` carries against the constraints of one CA. */
export function checkNameConstraints (cert: Certificate, nc: NameConstraints): NameConstraintResult {
  // A constraint that is not a well-formed name bounds nothing anyone can rely on.
  const subtrees = [...nc.permitted, ...nc.excluded]
  const malformed = subtrees.find((s) => !wellFormed(s.base, true))
  if (malformed !== undefined) return { reason: 'name_constraints_violated', detail: `the CA's name constraint ${describe(malformed.base)} is malformed` }
  const names: GeneralName[] = []
  // The subject's comparison keys are computed only for a directoryName constraint to judge.
  if (!cert.subjectIsEmpty && subtrees.some((s) => s.base.kind === 'dir')) names.push({ kind: 'dir', rdns: cert.subjectRdns() })
  for (const email of cert.emailAddresses) names.push({ kind: 'email', text: email })
  if (cert.subjectAltNames !== undefined) names.push(...cert.subjectAltNames)
  for (const name of names) {
    const ofKind = (list: NameConstraints['permitted']): GeneralName[] => list.map((s) => s.base).filter((b) => sameKind(b, name))
    const excluded = ofKind(nc.excluded)
    const permitted = ofKind(nc.permitted)
    // §4.2.1.10: a name that is not well formed cannot be shown to lie inside or outside a subtree.
    if (excluded.length + permitted.length > 0 && !wellFormed(name, false)) return { reason: 'name_constraints_violated',
      detail: `${describe(name)} is malformed, so the CA's name constraints cannot be met` }
    for (const base of excluded) {
      const m = name.kind === 'dns' && base.kind === 'dns' ? dnsMayOverlap(name.text, base.text) : matches(name, base)
      if (m === 'unsupported') return unsupported(name)
      if (m) return { reason: 'name_constraints_violated', detail: `${describe(name)} is in an excluded subtree` }
    }
    if (permitted.length === 0) continue
    let ok = false
    for (const base of permitted) {
      const m = matches(name, base)
      if (m === 'unsupported') return unsupported(name)
      if (m) { ok = true; break }
    }
    if (!ok) return { reason: 'name_constraints_violated', detail: `${describe(name)} is outside the permitted subtrees` }
  }
  return undefined
}

function unsupported (name: GeneralName): NameConstraintResult {
  return { reason: 'name_constraints_unsupported', detail: `cannot evaluate name constraints for ${describe(name)}` }
}

function sameKind (a: GeneralName, b: GeneralName): boolean {
  if (a.kind !== b.kind) return false
  return a.kind !== 'other' || (b.kind === 'other' && a.tag === b.tag)
}

function describe (n: GeneralName): string {
  switch (n.kind) {
    case 'dns': return `DNS name "${n.text}"`
    case 'email': return `email "${n.text}"`
    case 'uri': return `URI "${n.text}"`
    case 'ip': return `IP address ${Array.from(n.bytes).join('.')}`
    case 'dir': return 'subject name'
    case 'other': return `general name of tag 0x${n.tag.toString(16)}`
  }
}

function matches (name: GeneralName, base: GeneralName): boolean | 'unsupported' {
  if (name.kind === 'dns' && base.kind === 'dns') return dnsMatches(name.text, base.text)
  if (name.kind === 'email' && base.kind === 'email') return emailMatches(name.text, base.text)
  if (name.kind === 'ip' && base.kind === 'ip') return ipMatches(name.bytes, base.bytes)
  if (name.kind === 'dir' && base.kind === 'dir') return dirMatches(name.rdns, base.rdns)
  if (name.kind === 'uri' && base.kind === 'uri') return uriMatches(name.text, base.text)
  return 'unsupported'
}

// RFC 1034 §3.5 preferred name syntax as relaxed by RFC 1123 §2.1 (RFC 5280 §4.2.1.6).
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i

function hostName (text: string): boolean {
  if (text.length === 0 || text.length > 253) return false
  return text.split('.').every((l) => LABEL.test(l))
}

/**
 * Is a name (or, with `constraint`, a subtree base) well formed for its form? A dNSName may be a
 * wildcard only as its whole left-most label; a dNSName constraint is a host name or empty
 * (§4.2.1.10: labels are added to the left, so a leading period is not a dNSName); rfc822Name
 * and URI constraints may name a host or, with a leading period, a domain.
 */
function wellFormed (n: GeneralName, constraint: boolean): boolean {
  switch (n.kind) {
    case 'dns':
      if (constraint) return n.text === '' || hostName(n.text)
      return hostName(n.text.startsWith('*.') ? n.text.slice(2) : n.text)
    case 'email': {
      const at = n.text.indexOf('@')
      if (at === -1) return constraint && hostName(n.text.startsWith('.') ? n.text.slice(1) : n.text)
      return at > 0 && n.text.indexOf('@', at + 1) === -1 && !/\s/.test(n.text) && hostName(n.text.slice(at + 1))
    }
    case 'uri':
      return !constraint || hostName(n.text.startsWith('.') ? n.text.slice(1) : n.text)
    default:
      return true
  }
}

/**
 * For an excluded subtree: could the name be in it? A wildcard `*.example.com` stands for every
 * `x.example.com`, so it is excluded by `example.com`'s subtree and also by a single
 * `foo.example.com` (CVE-2025-61727: checking the literal `*` let such a certificate through).
 */
function dnsMayOverlap (name: string, constraint: string): boolean {
  if (dnsMatches(name, constraint)) return true
  if (!name.startsWith('*.')) return false
  const rest = name.slice(2).toLowerCase()
  const c = constraint.toLowerCase()
  return c.endsWith('.' + rest) && !c.slice(0, c.length - rest.length - 1).includes('.')
}

/** §4.2.1.10: a URI constraint names the host of the URI's authority, or a domain with a leading period. */
function uriMatches (uri: string, constraint: string): boolean | 'unsupported' {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(uri)
  if (m === null) return 'unsupported' // no authority: no host to judge, fail closed
  const authority = (m[1] as string).slice((m[1] as string).lastIndexOf('@') + 1)
  if (authority.startsWith('[')) return 'unsupported' // an IP literal against a host-name constraint
  const host = authority.replace(/:\d*$/, '').toLowerCase()
  if (!hostName(host)) return 'unsupported'
  const c = constraint.toLowerCase()
  return c.startsWith('.') ? host.endsWith(c) : host === c
}

/** §4.2.1.10: any name formed by adding labels to the left of the constraint matches. */
function dnsMatches (name: string, constraint: string): boolean {
  const n = name.toLowerCase()
  let c = constraint.toLowerCase()
  if (c === '') return true
  if (c.startsWith('.')) return n.endsWith(c) && n.length > c.length
  if (n === c) return true
  c = '.' + c
  return n.endsWith(c)
}

/** §4.2.1.10: a mailbox, a host (all mailboxes there) or a domain with a leading period. */
function emailMatches (email: string, constraint: string): boolean {
  const at = email.lastIndexOf('@')
  if (at < 1) return false
  const host = email.slice(at + 1).toLowerCase()
  if (constraint.includes('@')) {
    const cAt = constraint.lastIndexOf('@')
    return email.slice(0, at) === constraint.slice(0, cAt) && host === constraint.slice(cAt + 1).toLowerCase()
  }
  const c = constraint.toLowerCase()
  if (c.startsWith('.')) return host.endsWith(c)
  return host === c
}

/** The constraint is an address followed by a mask of the same length. */
function ipMatches (addr: Uint8Array, constraint: Uint8Array): boolean {
  if (constraint.length !== addr.length * 2) return false
  for (let i = 0; i < addr.length; i++) {
    const mask = constraint[addr.length + i] as number
    if (((addr[i] as number) & mask) !== ((constraint[i] as number) & mask)) return false
  }
  return true
}

/**
 * A directoryName matches when the constraint's RDNs are a prefix of the name's, compared by
 * RFC 5280 §7.1 (§4.2.1.10): a re-encoded or re-capitalised name cannot step out of an excluded subtree.
 */
function dirMatches (name: readonly string[], constraint: readonly string[]): boolean {
  if (constraint.length > name.length) return false
  for (let i = 0; i < constraint.length; i++) if (name[i] !== constraint[i]) return false
  return true
}
