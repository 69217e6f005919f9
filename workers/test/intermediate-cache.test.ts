// What the intermediate cache (validate-chain.ts, one per pool worker and one on the event loop)
// holds after a validation: one entry per intermediate the device sent, keyed by its SHA-256, with
// the issuers its signature verified with; never the leaf, whose signature is checked every time.
// It proves the cache never completes a chain (an intermediate held but not sent again is not
// used), and that what a device sends cannot grow an entry without bound: anyone can put a CA's key
// in a certificate of their own, so the issuers remembered per intermediate stop at MAX_LINKS_HELD
// and further links are verified each time instead.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { issue, issueHierarchy, type Issued } from '../../gateway/pki/issue.js'
import { createExpiringLru } from '../../cache/expiring-lru.js'
import { buildAnchorSet, MAX_LINKS_HELD, sha256Hex, validatePath, type AnchorSet, type IntermediateCache, type ValidateOptions } from '../validate-chain.js'
import { OID } from '../certificate.js'

/** A hierarchy with its root as the one anchor, an empty cache, validation options using it, and a leaf under int2. */
async function setUp (cn: string): Promise<{ pki: Awaited<ReturnType<typeof issueHierarchy>>, set: AnchorSet, cache: IntermediateCache, opts: ValidateOptions, leaf: Issued }> {
  const pki = await issueHierarchy()
  const cache: IntermediateCache = createExpiringLru({ maxEntries: 100 })
  return { pki, set: buildAnchorSet([pki.root.der]).set, cache, opts: { at: Date.now(), requiredEku: OID.clientAuth, cache }, leaf: await issue({ cn, issuer: pki.int2 }) }
}

test('the cache holds each intermediate sent with its verified issuer, never the leaf, and never completes a chain', async () => {
  const { pki, set, cache, opts, leaf } = await setUp('held-1')

  const first = validatePath(leaf.der, [pki.int2.der, pki.int1.der], set, opts)
  assert.ok(first.chain.ok)
  assert.equal(cache.size, 2)
  assert.deepEqual(cache.get(sha256Hex(pki.int2.der))?.issuers, [sha256Hex(pki.int1.der)])
  assert.deepEqual(cache.get(sha256Hex(pki.int1.der))?.issuers, [sha256Hex(pki.root.der)])
  assert.equal(cache.get(sha256Hex(leaf.der)), undefined, 'the leaf is never held')

  // int1 is held, but a device that does not send it again has no path.
  const partial = validatePath(leaf.der, [pki.int2.der], set, opts)
  assert.ok(!partial.chain.ok)
  assert.equal(partial.chain.reason, 'chain_untrusted')
})

test('the issuers remembered per intermediate stop at MAX_LINKS_HELD; later links are still verified', async () => {
  const { pki, set, cache, opts, leaf } = await setUp('held-2')
  // Re-issues of int1 with its key: each one's key verifies int2's signature.
  const twins = []
  for (let i = 0; i < MAX_LINKS_HELD + 2; i++) twins.push(await issue({ cn: pki.int1.subjectCn, issuer: pki.root, ca: true, keys: pki.int1.keys }))
  for (const twin of twins) {
    const v = validatePath(leaf.der, [pki.int2.der, twin.der], set, opts)
    assert.ok(v.chain.ok, `through a re-issue of int1: ${JSON.stringify(v.chain)}`)
  }
  assert.deepEqual(cache.get(sha256Hex(pki.int2.der))?.issuers, twins.slice(0, MAX_LINKS_HELD).map((t) => sha256Hex(t.der)))
  // With int2's entry full, an impostor of int1 (its name, the root as issuer, but its own key and
  // no key identifier to rule it out early) is still checked against int2's signature, and fails.
  const impostor = await issue({ cn: pki.int1.subjectCn, issuer: pki.root, ca: true, omitKeyIds: ['ski'] })
  const through = validatePath(leaf.der, [pki.int2.der, impostor.der], set, opts)
  assert.ok(!through.chain.ok)
  assert.equal(through.chain.reason, 'bad_signature')
  // A leaf naming int2 as its issuer but signed by another key: the leaf's link is never held.
  const other = await issueHierarchy({ rootCn: 'Other Root' })
  const forged = await issue({ cn: 'held-3', issuer: { ...other.int2, der: pki.int2.der } })
  const refused = validatePath(forged.der, [pki.int2.der, twins[0]?.der ?? pki.int1.der], set, opts)
  assert.ok(!refused.chain.ok)
  assert.equal(refused.chain.reason, 'bad_signature')
})
