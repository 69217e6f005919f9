// Runs x509-limbo-format cases (workers/test/fixtures/conformance/README.md) through the library's
// validateChain and grades each verdict. Owns the mapping from the suite's inputs to certgate's and
// the host-name check a TLS client would do; owns no X.509 rule (those live in workers/).
import { readFileSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import { validateChain, type ValidateChainInput, type ValidateChainResult } from '../../../index.js'

export interface LimboCase {
  readonly id: string
  readonly features: readonly string[] | null
  readonly validation_kind: 'SERVER' | 'CLIENT'
  readonly trusted_certs: readonly string[]
  readonly untrusted_intermediates: readonly string[]
  readonly peer_certificate: string
  readonly validation_time: string | null
  readonly extended_key_usage: readonly string[] | null
  readonly expected_result: 'SUCCESS' | 'FAILURE'
  readonly expected_peer_name: { readonly kind: 'DNS' | 'IP' | 'RFC822', readonly value: string } | null
  readonly max_chain_depth: number | null
  readonly crls: readonly string[] | null
  readonly x_pkits?: { readonly initial_policy_set: readonly string[], readonly initial_explicit_policy: boolean, readonly initial_policy_mapping_inhibit: boolean, readonly initial_any_policy_inhibit: boolean }
}

export const OUTCOMES = ['pass', 'false_accept', 'false_reject', 'skipped'] as const
export type Outcome = typeof OUTCOMES[number]

export interface Graded {
  readonly id: string
  readonly category: string
  readonly outcome: Outcome
  /** Why it was skipped (the feature), or the refusal reason / name-check note. */
  readonly note: string
}

/**
 * Features certgate does not implement, so their cases are skipped and counted:
 * - has-crl: only when `crlsSupported` is false (validateChain takes `crls`; conformance.test.ts sets it).
 * - max-chain-depth: certgate's depth is a fixed LIMITS.MAX_DEPTH, not an input.
 * - pedantic-public-suffix-wildcard: host-name policy (a public-suffix list), a TLS client's job.
 * - policy-inputs: PKITS cases run with non-default §6.1.1 inputs, which certgate does not take
 *   (it runs policy processing with user-initial-policy-set = anyPolicy and nothing inhibited).
 */
export interface RunnerOptions { readonly crlsSupported: boolean }

const SKIPPED_FEATURES = ['max-chain-depth', 'pedantic-public-suffix-wildcard'] as const

export function loadCases (file: URL): LimboCase[] {
  return (JSON.parse(readFileSync(file, 'utf8')) as { testcases: LimboCase[] }).testcases
}

/** The namespace of an id is its category (`rfc5280::nc::foo` → `rfc5280::nc`). */
export function category (id: string): string {
  return id.slice(0, id.lastIndexOf('::'))
}

function pemToDer (pem: string): Uint8Array {
  const b64 = pem.replace(/-----(BEGIN|END) [A-Z0-9 ]+-----/g, '').replace(/\s+/g, '')
  return new Uint8Array(Buffer.from(b64, 'base64'))
}

function skipReason (c: LimboCase, opts: RunnerOptions): string | undefined {
  const features = c.features ?? []
  if (features.includes('has-crl') && !opts.crlsSupported) return 'has-crl'
  const skipped = SKIPPED_FEATURES.find((f) => features.includes(f))
  if (skipped !== undefined) return skipped
  const p = c.x_pkits
  if (p !== undefined && (p.initial_explicit_policy || p.initial_policy_mapping_inhibit || p.initial_any_policy_inhibit ||
    p.initial_policy_set.length !== 1 || p.initial_policy_set[0] !== '2.5.29.32.0')) return 'policy-inputs'
  return undefined
}

/**
 * The EKU to require: the case's own, else the one its kind implies (a TLS client checking a
 * server wants serverAuth, a server checking a client clientAuth), since certgate always
 * requires one and grants it to leaves without the extension (CONTRACT.md §Library).
 */
function requiredEku (c: LimboCase): string {
  const named = c.extended_key_usage?.[0]
  if (named !== undefined) return named
  return c.validation_kind === 'SERVER' ? 'serverAuth' : 'clientAuth'
}

export async function runCase (c: LimboCase, opts: RunnerOptions): Promise<{ graded: Graded, result: ValidateChainResult | undefined }> {
  const cat = category(c.id)
  const skip = skipReason(c, opts)
  if (skip !== undefined) return { graded: { id: c.id, category: cat, outcome: 'skipped', note: skip }, result: undefined }
  const input: ValidateChainInput & { crls?: readonly Uint8Array[] } = {
    leaf: pemToDer(c.peer_certificate),
    intermediates: c.untrusted_intermediates.map(pemToDer),
    anchors: c.trusted_certs.map(pemToDer),
    requiredEku: requiredEku(c),
    ...(c.validation_time === null ? {} : { at: new Date(c.validation_time) }),
    ...(opts.crlsSupported && c.crls !== null && c.crls.length > 0 ? { crls: c.crls.map(pemToDer) } : {})
  }
  const result = await validateChain(input)
  let accepted = result.ok
  let note = result.ok ? 'accepted' : result.reason
  if (accepted && c.validation_kind === 'SERVER' && c.expected_peer_name !== null) {
    const nameOk = peerNameMatches(input.leaf, c.expected_peer_name)
    if (!nameOk) { accepted = false; note = 'runner: peer name not in the leaf SAN' }
  }
  const expectedOk = c.expected_result === 'SUCCESS'
  const outcome: Outcome = accepted === expectedOk ? 'pass' : accepted ? 'false_accept' : 'false_reject'
  return { graded: { id: c.id, category: cat, outcome, note }, result }
}

/**
 * What a TLS client does after the chain: the expected name must be in the leaf's SAN
 * (RFC 6125 §6.4, no CN fallback; a wildcard only as the whole left-most label). Node's
 * X509Certificate does the matching, with its subject (CN) fallback turned off.
 */
function peerNameMatches (leafDer: Uint8Array, name: NonNullable<LimboCase['expected_peer_name']>): boolean {
  let cert: X509Certificate
  try {
    cert = new X509Certificate(leafDer)
  } catch {
    return false
  }
  if (name.kind === 'IP') return isIP(name.value) !== 0 && cert.checkIP(name.value) !== undefined
  if (name.kind === 'DNS') return cert.checkHost(name.value, { subject: 'never', wildcards: true, partialWildcards: false, multiLabelWildcards: false }) !== undefined
  return cert.checkEmail(name.value, { subject: 'never' }) !== undefined
}
