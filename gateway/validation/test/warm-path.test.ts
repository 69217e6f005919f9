// The event loop's warm path in front of the pool (warm-path.ts). This proves that a chain goes to
// the pool until the pool has accepted one with the same intermediates, then is decided on the
// event loop with the same verdicts (a good leaf, a bad leaf, a forged leaf); that chains the pool
// refused never make anything warm; and that a trust change empties the warm path at once, so the
// very next validation of a chain warm a moment ago is refused if its CA is gone.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { issue, issueHierarchy } from '../../pki/issue.js'
import { createValidatorPool, type ValidatorPool } from '../validator-pool.js'
import { withWarmPath } from '../warm-path.js'

/** The real pool, counting what reaches it. */
function countingPool (): { pool: ValidatorPool, calls: () => number } {
  const pool = createValidatorPool({ threads: 1, maxQueue: 100, cacheEntries: 100 })
  let calls = 0
  return { pool: { ...pool, validate: async (leaf, intermediates) => { calls++; return await pool.validate(leaf, intermediates) } }, calls: () => calls }
}

test('a chain goes to the pool until the pool accepted its intermediates; then the event loop decides, with the same verdicts', async () => {
  const pki = await issueHierarchy()
  const other = await issueHierarchy({ rootCn: 'Other Root' })
  const { pool, calls } = countingPool()
  const validator = withWarmPath(pool, { cacheEntries: 100 })
  try {
    validator.setTrusted([{ name: 'root', der: pki.root.der }])
    const sent = [pki.int2.der, pki.int1.der]
    const first = await validator.validate((await issue({ cn: 'warm-1', issuer: pki.int2 })).der, sent)
    assert.ok(first.kind === 'done' && first.outcome.chain.ok)
    assert.equal(calls(), 1, 'a cold chain goes to the pool')

    // Same intermediates, other leaves: decided without the pool, exactly as the pool decides them.
    const leaves = {
      good: await issue({ cn: 'warm-2', issuer: pki.int2 }),
      expired: await issue({ cn: 'warm-3', issuer: pki.int2, notBefore: new Date(Date.now() - 3 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) }),
      serverOnly: await issue({ cn: 'warm-4', issuer: pki.int2, eku: ['1.3.6.1.5.5.7.3.1'] }),
      // Names int2 as its issuer but is signed by another hierarchy's key: its one signature must be checked.
      forged: await issue({ cn: 'warm-5', issuer: { ...other.int2, der: pki.int2.der } })
    }
    const expected = { good: true, expired: 'cert_expired', serverOnly: 'eku_not_allowed', forged: 'bad_signature' } as const
    for (const [name, leaf] of Object.entries(leaves) as Array<[keyof typeof leaves, typeof leaves.good]>) {
      const warm = await validator.validate(leaf.der, sent)
      const cold = await pool.validate(leaf.der, sent)
      assert.ok(warm.kind === 'done' && cold.kind === 'done')
      assert.deepEqual(warm, cold, `${name}: the event loop and the pool disagree`)
      assert.equal(warm.outcome.chain.ok ? true : warm.outcome.chain.reason, expected[name], name)
    }
    assert.equal(calls(), 1 + Object.keys(leaves).length, 'only the comparison validations reached the pool')
    assert.equal((await validator.validate(leaves.good.der, sent)).kind, 'done')
    assert.equal(calls(), 1 + Object.keys(leaves).length)

    // Another hierarchy's chain is refused by the pool every time: refusals teach nothing.
    for (let i = 0; i < 2; i++) {
      const v = await validator.validate((await issue({ cn: `other-${i}`, issuer: other.int2 })).der, [other.int2.der, other.int1.der])
      assert.ok(v.kind === 'done' && !v.outcome.chain.ok && v.outcome.chain.reason === 'chain_untrusted')
    }
    assert.equal(calls(), 3 + Object.keys(leaves).length, 'a refused chain goes to the pool each time')
  } finally {
    await validator.close()
  }
})

test('a trust change empties the warm path before the next validation: a CA removed vouches for nothing', async () => {
  const pki = await issueHierarchy()
  const { pool, calls } = countingPool()
  const validator = withWarmPath(pool, { cacheEntries: 100 })
  try {
    validator.setTrusted([{ name: 'root', der: pki.root.der }])
    const leaf = await issue({ cn: 'trust-1', issuer: pki.int2 })
    const sent = [pki.int2.der, pki.int1.der]
    await validator.validate(leaf.der, sent)
    const warm = await validator.validate(leaf.der, sent)
    assert.ok(warm.kind === 'done' && warm.outcome.chain.ok && warm.anchorName === 'root')
    assert.equal(calls(), 1)

    validator.setTrusted([]) // the root is removed
    const after = await validator.validate(leaf.der, sent)
    assert.ok(after.kind === 'done' && !after.outcome.chain.ok, 'the chain warm a moment ago must be refused at once')
    assert.equal(calls(), 2, 'after a trust change the chain is cold again')

    // Trusted again (a new epoch): cold first, then warm again, the anchor named as now registered.
    validator.setTrusted([{ name: 'root-again', der: pki.root.der }])
    for (const expectedCalls of [3, 3]) {
      const v = await validator.validate(leaf.der, sent)
      assert.ok(v.kind === 'done' && v.outcome.chain.ok && v.anchorName === 'root-again')
      assert.equal(calls(), expectedCalls)
    }
  } finally {
    await validator.close()
  }
})
