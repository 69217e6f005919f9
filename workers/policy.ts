// RFC 5280 §6.1 certificate-policy processing with certgate's fixed inputs (§6.1.1(c),(f)-(i)):
// user-initial-policy-set = {anyPolicy}, no initial explicit policy, mapping and anyPolicy not
// inhibited. So a path fails only when a CA demands an explicit policy (requireExplicitPolicy) and
// no policy is valid along the whole path, or when a mapping involves anyPolicy (§6.1.4(a)).
// The tree is kept as RFC 9618's graph, one node per policy per depth, which bounds the work by
// the policies a certificate may carry (64) whatever the path: no exponential tree.
import { OID, type Certificate } from './certificate.js'

/** One depth of the valid policy graph: valid_policy → its expected_policy_set. */
type Level = Map<string, Set<string>>

const ANY = OID.anyPolicy

/** §6.1.2(a): the graph starts as anyPolicy expecting anyPolicy. Never modified (each step builds a new level), so shared. */
const INITIAL: Level = new Map([[ANY, new Set([ANY])]])

/** `certs` runs from the certificate the anchor issued down to the leaf (RFC 5280 order 1..n). */
export function policyProblem (certs: readonly Certificate[]): string | undefined {
  const n = certs.length
  let explicitPolicy = n + 1
  let inhibitAny = n + 1
  let policyMapping = n + 1
  let level: Level | undefined = INITIAL
  for (let i = 1; i <= n; i++) {
    const cert = certs[i - 1] as Certificate
    const last = i === n
    // (d), (e): extend the graph by the certificate's policies, or end it.
    level = level === undefined || cert.policies === undefined ? undefined : nextLevel(level, cert.policies, inhibitAny > 0 || (!last && cert.selfIssued()))
    // (f): with an explicit policy required, some policy must be valid up to here.
    if (explicitPolicy === 0 && level === undefined) {
      return 'a CA requires an explicit certificate policy and no policy is valid for the whole path (RFC 5280 §6.1.3(f))'
    }
    if (last) break
    // §6.1.4 (a), (b): policy mappings.
    const mappings = cert.policyMappings ?? []
    if (mappings.some(([a, b]) => a === ANY || b === ANY)) return 'a policy mapping involves anyPolicy (RFC 5280 §6.1.4(a))'
    if (level !== undefined && mappings.length > 0) level = applyMappings(level, mappings, policyMapping > 0)
    // (h), (i), (j): counters.
    if (!cert.selfIssued()) {
      if (explicitPolicy > 0) explicitPolicy--
      if (policyMapping > 0) policyMapping--
      if (inhibitAny > 0) inhibitAny--
    }
    const pc = cert.policyConstraints
    if (pc?.requireExplicitPolicy !== undefined && pc.requireExplicitPolicy < explicitPolicy) explicitPolicy = pc.requireExplicitPolicy
    if (pc?.inhibitPolicyMapping !== undefined && pc.inhibitPolicyMapping < policyMapping) policyMapping = pc.inhibitPolicyMapping
    if (cert.inhibitAnyPolicy !== undefined && cert.inhibitAnyPolicy < inhibitAny) inhibitAny = cert.inhibitAnyPolicy
  }
  // §6.1.5 (a), (b) wrap-up, then (g): the user-initial-policy-set is anyPolicy, so the graph stands.
  const leaf = certs[n - 1]
  if (explicitPolicy > 0) explicitPolicy--
  if (leaf?.policyConstraints?.requireExplicitPolicy === 0) explicitPolicy = 0
  if (explicitPolicy === 0 && level === undefined) {
    return 'an explicit certificate policy is required and no policy is valid for the whole path (RFC 5280 §6.1.5)'
  }
  return undefined
}

/** §6.1.3(d)(1)-(2): each policy hangs below the nodes expecting it, or below anyPolicy. */
function nextLevel (prev: Level, policies: readonly string[], anyAllowed: boolean): Level | undefined {
  const next: Level = new Map()
  for (const p of policies) {
    if (p === ANY) continue
    let matched = false
    for (const expected of prev.values()) if (expected.has(p)) { matched = true; break }
    if (matched || prev.has(ANY)) next.set(p, new Set([p]))
  }
  if (anyAllowed && policies.includes(ANY)) {
    for (const expected of prev.values()) {
      for (const p of expected) if (!next.has(p)) next.set(p, new Set([p]))
    }
  }
  // (d)(3): nodes without children are pruned; an empty depth ends the graph.
  return next.size === 0 ? undefined : next
}

/** §6.1.4(b): mapped policies change what the next certificate must assert, or are deleted. */
function applyMappings (level: Level, mappings: ReadonlyArray<readonly [string, string]>, allowed: boolean): Level | undefined {
  const subjects = new Map<string, Set<string>>()
  for (const [issuerPolicy, subjectPolicy] of mappings) {
    const set = subjects.get(issuerPolicy) ?? new Set<string>()
    set.add(subjectPolicy)
    subjects.set(issuerPolicy, set)
  }
  const out: Level = new Map(level)
  for (const [issuerPolicy, mapped] of subjects) {
    if (!allowed) { out.delete(issuerPolicy); continue }
    if (out.has(issuerPolicy)) out.set(issuerPolicy, mapped)
    else if (level.has(ANY)) out.set(issuerPolicy, mapped)
  }
  return out.size === 0 ? undefined : out
}
