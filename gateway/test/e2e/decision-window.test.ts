// What this proves: a registry change that commits while a device's own decision is in flight
// still reaches that device. Gateway A reads a real PostgreSQL through a proxy that holds the
// replies of its query sessions (its LISTEN session flows freely), so A's lookup of the device is
// provably on the wire, unanswered, when an operator disables the device (or deletes its CA)
// through gateway B and A hears the change. Nothing was tracked when A heard it; after the held
// reply arrives, A must still refuse the device, within a second, and never forward it. The same
// holds for a deny-list entry added through B, even when A's reload of the deny-list finished
// (and found nothing tracked to close) before the device's lookup answered.
import { test, before, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import type { Harness } from '../support/harness.js'
import { connectDevice } from '../support/device.js'
import { startPostgresFleet, type PostgresFleet } from '../support/postgres-fleet.js'
import { startPgHoldProxy, type PgHoldProxy } from '../support/pg-hold-proxy.js'
import { sha256Hex } from '../../../workers/validate-chain.js'

let fleet: PostgresFleet<'a' | 'b'> | undefined
let proxy: PgHoldProxy
let a: Harness
let b: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  fleet = await startPostgresFleet('window', {
    // A reaches PostgreSQL through the proxy that holds its query sessions' replies; B directly.
    a: async (pg) => {
      proxy = await startPgHoldProxy({ host: '127.0.0.1', port: pg.port })
      return { CERTGATE_REGISTRY_URL: `postgres://postgres@127.0.0.1:${proxy.port}/window`, CERTGATE_REFUSAL_MEMORY_S: '0' }
    },
    b: {}
  })
  ;({ a, b } = fleet.gateways)
  pki = await issueHierarchy()
  await b.registerCa('acme', pki.root)
  await a.waitForLog((l) => l.event === 'trust_updated' && (l as { cas?: number }).cas === 1)
})
after(async () => {
  (proxy as PgHoldProxy | undefined)?.release()
  await fleet?.close()
  await (proxy as PgHoldProxy | undefined)?.close()
})

const connectTo = async (h: Harness, leaf: Issued, chain: Issued[]): ReturnType<typeof connectDevice> =>
  await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain })

/** A log line written after `from` lines had been: what happened next, not what happened before. */
const after$ = (h: Harness, from: number, pred: (l: Harness['logs'][number]) => boolean): ReturnType<Harness['waitForLog']> =>
  h.waitForLog((l) => h.logs.indexOf(l) >= from && pred(l))

/**
 * A device of A's that connects once, then again with its registry lookup held on the wire: the
 * window opens. Resolves once the held lookup is on the wire.
 */
async function openWindowFor (deviceId: string): Promise<{ leaf: Issued, attempt: ReturnType<typeof connectTo> }> {
  await b.addDevice(deviceId)
  const leaf = await issue({ cn: deviceId, issuer: pki.int2 })
  // The path works before the window is opened.
  const ok = await connectTo(a, leaf, [pki.int2, pki.int1])
  ok.end(true)
  proxy.hold()
  const attempt = connectTo(a, leaf, [pki.int2, pki.int1])
  attempt.catch(() => undefined)
  await proxy.queried(deviceId) // A's lookup is on the wire, its answer held
  return { leaf, attempt }
}

/** Lets the held lookup answer; the device must be refused within 1 s, not forwarded; returns A's refusal line. */
async function releaseAndExpectRefusal (t: TestContext, attempt: Promise<unknown>, from: number, deviceId: string): ReturnType<Harness['waitForLog']> {
  proxy.release()
  const releasedAt = performance.now()
  await assert.rejects(attempt, 'the device was let in although the change committed while its lookup was in flight')
  const ms = performance.now() - releasedAt
  t.diagnostic(`refused ${Math.round(ms)} ms after the lookup answered`)
  assert.ok(ms <= 1000, `refused ${Math.round(ms)} ms after the lookup answered`)
  const refused = await after$(a, from, (l) => l.event === 'refused' && l.deviceId === deviceId)
  assert.ok(!a.logs.slice(from).some((l) => l.event === 'authenticated'), 'the device was forwarded')
  return refused
}

test('a device disabled while its registry lookup is in flight is refused once the lookup answers', async (t) => {
  const { attempt } = await openWindowFor('window-1')
  const from = a.logs.length
  await b.addDevice('window-1', { status: 'disabled', statusReason: 'stolen' })
  await after$(a, from, (l) => l.event === 'registry_change' && JSON.stringify(l).includes('window-1'))
  const refused = await releaseAndExpectRefusal(t, attempt, from, 'window-1')
  assert.equal(refused.reason, 'device_disabled')
})

test('a device whose CA is deleted while its lookup is in flight is refused, even after the trust reload finished', async (t) => {
  const other = await issueHierarchy()
  await b.registerCa('beta', other.root)
  await a.waitForLog((l) => l.event === 'trust_updated' && (l as { cas?: number }).cas === 2)
  await b.addDevice('window-2')
  const leaf = await issue({ cn: 'window-2', issuer: other.int2 })
  const ok = await connectTo(a, leaf, [other.int2, other.int1])
  ok.end(true)

  proxy.hold()
  const attempt = connectTo(a, leaf, [other.int2, other.int1])
  attempt.catch(() => undefined)
  await proxy.queried('window-2')
  const from = a.logs.length
  assert.equal(await b.gw.registry.deleteCa('beta'), true)
  // A hears it and reloads its trusted CAs (that query's answer is let through) while the
  // device's lookup is still held: the reload closes what is tracked, and the device is not yet.
  await after$(a, from, (l) => l.event === 'registry_change' && JSON.stringify(l).includes('beta'))
  proxy.releaseSessionsWithout('window-2')
  await after$(a, from, (l) => l.event === 'trust_updated' && (l as { cas?: number }).cas === 1)
  const refused = await releaseAndExpectRefusal(t, attempt, from, 'window-2')
  assert.equal(refused.reason, 'chain_untrusted')
})

test('a device whose certificate is deny-listed while its lookup is in flight is refused, even after the deny-list reload finished', async (t) => {
  const { leaf, attempt } = await openWindowFor('window-3')
  const from = a.logs.length
  await b.gw.registry.putRevocation(sha256Hex(leaf.der), 'stolen')
  await after$(a, from, (l) => l.event === 'registry_change' && JSON.stringify(l).includes('revocation'))
  proxy.releaseSessionsWithout('window-3')
  await after$(a, from, (l) => l.event === 'revocation_updated' && (l as { denied?: number }).denied === 1)
  const refused = await releaseAndExpectRefusal(t, attempt, from, 'window-3')
  assert.equal(refused.reason, 'cert_revoked')
})
