// The pool batches validations that queue up while its threads are busy. This proves that a
// batch answers each device with its own verdict (in order, nothing crossed), that a trust change
// during a batch re-validates the whole batch against the new trust, and that the waiting queue
// is what `maxQueue` bounds.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { issue, issueHierarchy } from '../../pki/issue.js'
import { busyShare, createValidatorPool } from '../validator-pool.js'

test('validations sent together as a batch each get their own verdict, in order', async () => {
  const pki = await issueHierarchy()
  const other = await issueHierarchy({ rootCn: 'Other Root' })
  const pool = createValidatorPool({ threads: 1, maxQueue: 100, cacheEntries: 100 })
  try {
    pool.setTrusted([{ name: 'root', der: pki.root.der }])
    // Every third device chains to a CA that is not trusted: its verdict must not leak to its neighbours.
    const devices = await Promise.all(Array.from({ length: 30 }, async (_, i) => ({ i, leaf: await issue({ cn: `batch-${i}`, issuer: i % 3 === 2 ? other.int2 : pki.int2 }), good: i % 3 !== 2 })))
    const verdicts = await Promise.all(devices.map(async (d) => await pool.validate(d.leaf.der, d.good ? [pki.int2.der, pki.int1.der] : [other.int2.der, other.int1.der])))
    verdicts.forEach((v, i) => {
      assert.ok(v.kind === 'done', v.kind)
      assert.deepEqual(v.outcome.leaf?.commonNames, [`batch-${i}`])
      assert.equal(v.outcome.chain.ok, devices[i]?.good, `device ${i}`)
      assert.equal(v.anchorName, devices[i]?.good === true ? 'root' : undefined)
    })
  } finally {
    await pool.close()
  }
})

test('a trust change while a batch is out re-validates it against the new trust', async () => {
  const pki = await issueHierarchy()
  const pool = createValidatorPool({ threads: 1, maxQueue: 100, cacheEntries: 100 })
  try {
    pool.setTrusted([{ name: 'root', der: pki.root.der }])
    const leaves = await Promise.all(Array.from({ length: 10 }, async (_, i) => await issue({ cn: `change-${i}`, issuer: pki.int2 })))
    const pending = leaves.map(async (leaf) => await pool.validate(leaf.der, [pki.int2.der, pki.int1.der]))
    pool.setTrusted([]) // the CA is removed while they are being validated
    for (const v of await Promise.all(pending)) {
      assert.ok(v.kind === 'done')
      assert.equal(v.outcome.chain.ok, false)
    }
  } finally {
    await pool.close()
  }
})

test('maxQueue bounds the validations waiting for a thread; a closed pool fails what waits', async () => {
  const pki = await issueHierarchy()
  const pool = createValidatorPool({ threads: 1, maxQueue: 3, cacheEntries: 0 })
  pool.setTrusted([{ name: 'root', der: pki.root.der }])
  const leaf = await issue({ cn: 'q', issuer: pki.int2 })
  // One goes to the thread at once, three wait, the rest are refused.
  const verdicts = await Promise.all(Array.from({ length: 8 }, async () => await pool.validate(leaf.der, [pki.int2.der, pki.int1.der])))
  assert.deepEqual(verdicts.map((v) => v.kind), ['done', 'done', 'done', 'done', 'overloaded', 'overloaded', 'overloaded', 'overloaded'])
  const waiting = [pool.validate(leaf.der, []), pool.validate(leaf.der, [])]
  await pool.close()
  for (const v of await Promise.all(waiting)) assert.ok(v.kind === 'failed' || v.kind === 'done')
  assert.equal((await pool.validate(leaf.der, [])).kind, 'failed')
})

test('utilization is the busy share of the pool threads since the previous reading', async () => {
  const pki = await issueHierarchy()
  const leaf = await issue({ cn: 'busy', issuer: pki.int2 })
  const pool = createValidatorPool({ threads: 1, maxQueue: 100, cacheEntries: 0 }) // no cache: every validation verifies three signatures
  try {
    pool.setTrusted([{ name: 'root', der: pki.root.der }])
    await pool.validate(leaf.der, [pki.int2.der, pki.int1.der]) // the thread is up
    pool.stats()
    const started = performance.now()
    while (performance.now() - started < 300) {
      await Promise.all(Array.from({ length: 8 }, async () => await pool.validate(leaf.der, [pki.int2.der, pki.int1.der])))
    }
    const busy = pool.stats().utilization
    assert.ok(busy > 0.5, `kept busy for 300 ms: ${busy}`)
    // The interval itself is what is measured: nothing is sent for 300 ms.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const idle = pool.stats().utilization
    assert.ok(idle < 0.2, `idle for 300 ms: ${idle}`)
  } finally {
    await pool.close()
  }
})

test('utilization counts thread-time with a message out, exactly, between readings', () => {
  let t = 0
  const share = busyShare(2, () => t)
  t = 10; share.account(0) // 0 → 1 message out
  t = 20; share.account(1) // 1 → 2
  t = 35; share.account(2) // 2 → 1
  t = 40
  assert.equal(share.read(1), (10 * 1 + 15 * 2 + 5 * 1) / (40 * 2))
  t = 50
  assert.equal(share.read(1), 0.5, 'one of two threads taken since the last reading')
  t = 60; share.account(1) // 1 → 0
  t = 100
  assert.equal(share.read(0), (10 * 1) / (50 * 2))
  t = 100
  assert.equal(share.read(0), 0, 'no time passed')
})
