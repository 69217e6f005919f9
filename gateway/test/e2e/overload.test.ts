// What this proves: certgate protects itself before and after the TLS handshake. Connections
// beyond the cap on handshakes in progress, or beyond a source address's handshake rate, are
// closed before any TLS work and counted (over_capacity, rate_limited) while other addresses and
// later connections get in; a full validation queue refuses new devices at once as `overloaded`;
// a chain refused moments ago is refused again without being validated again, until a registry
// change (which may be the fix) clears that memory; and an authenticated connection with no
// traffic is closed as `idle`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { issue, issueHierarchy } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { closed, connectDevice } from '../support/device.js'
import { createValidatorPool } from '../../validation/validator-pool.js'

const metric = async (h: Harness, name: string, labels: string): Promise<number> => {
  const text = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
  const m = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text)
  return Number(m?.[1] ?? NaN)
}

/** Opens a TCP connection from `localAddress` and keeps it silent (a handshake in progress). */
async function silent (port: number, localAddress = '127.0.0.1'): Promise<{ closedByServer: Promise<boolean>, end: () => void }> {
  const s = connect({ port, host: '127.0.0.1', localAddress })
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
  const closedByServer = new Promise<boolean>((resolve) => {
    s.once('close', () => { resolve(true) })
    setTimeout(() => { resolve(false) }, 300)
  })
  s.on('error', () => undefined)
  return { closedByServer, end: () => s.destroy() }
}

test('handshakes beyond the cap are closed before TLS; a good device gets in once they are gone', async () => {
  const h = await startHarness({ CERTGATE_MAX_HANDSHAKES: '3', CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '0' })
  try {
    const pki = await issueHierarchy()
    await h.registerCa('root', pki.root)
    await h.addDevice('cap-1')
    const held = await Promise.all([1, 2, 3].map(async () => await silent(h.gw.device.port)))
    const extra = await silent(h.gw.device.port)
    assert.equal(await extra.closedByServer, true, 'the 4th connection is closed at once')
    assert.ok(await metric(h, 'certgate_handshakes_failed_total', 'listener="device",bucket="over_capacity"') >= 1)
    for (const c of held) c.end()
    await new Promise((resolve) => setTimeout(resolve, 100))
    const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'cap-1', issuer: pki.int2 }), chain: [pki.int2, pki.int1] })
    await c.endAsync()
  } finally {
    await h.close()
  }
})

test('one source address beyond its handshake rate is cut off; another address is not', async () => {
  const h = await startHarness({ CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '5' })
  try {
    const flood = await Promise.all(Array.from({ length: 20 }, async () => await silent(h.gw.device.port, '127.0.0.1')))
    const cut = (await Promise.all(flood.map(async (c) => await c.closedByServer))).filter(Boolean).length
    assert.ok(cut >= 9 && cut <= 10, `${cut} of 20 closed (burst of 10 allowed)`)
    const other = await silent(h.gw.device.port, '127.0.0.2')
    assert.equal(await other.closedByServer, false, 'another address still gets a handshake')
    for (const c of [...flood, other]) c.end()
    assert.ok(await metric(h, 'certgate_handshakes_failed_total', 'listener="device",bucket="rate_limited"') >= 9)
  } finally {
    await h.close()
  }
})

test('a full validation queue answers overloaded at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-slow-worker-'))
  const real = pathToFileURL(join(import.meta.dirname, '../../../workers/validate-worker.js')).href
  // A worker that takes 300 ms per validation, delegating the real work to the real worker.
  writeFileSync(join(dir, 'slow-worker.mjs'), `import validate from '${real}'\nexport default function (task) { const until = Date.now() + 300; while (Date.now() < until); return validate(task) }\n`)
  const pool = createValidatorPool({ threads: 1, maxQueue: 2, cacheEntries: 0, workerFile: pathToFileURL(join(dir, 'slow-worker.mjs')) })
  try {
    const pki = await issueHierarchy()
    pool.setTrusted([{ name: 'root', der: pki.root.der }])
    const leaf = await issue({ cn: 'q-1', issuer: pki.int2 })
    const verdicts = await Promise.all(Array.from({ length: 8 }, async () => await pool.validate(leaf.der, [pki.int2.der, pki.int1.der])))
    const kinds = verdicts.map((v) => v.kind)
    assert.ok(kinds.includes('overloaded'), kinds.join(','))
    assert.ok(kinds.filter((k) => k === 'done').length >= 2, kinds.join(','))
    for (const v of verdicts) if (v.kind === 'done') assert.equal(v.outcome.chain.ok, true)
  } finally {
    await pool.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a chain refused moments ago is refused without validating it again, until the registry changes', async () => {
  const h = await startHarness()
  try {
    const pki = await issueHierarchy()
    await h.registerCa('root', pki.root)
    const leaf = await issue({ cn: 'later-1', issuer: pki.int2 })
    const attempt = async (): Promise<unknown> => await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] })
    await assert.rejects(attempt())
    await h.waitForLog((l) => l.event === 'refused' && l.deviceId === 'later-1')
    const validations = await metric(h, 'certgate_validation_duration_seconds_count', '')
    await assert.rejects(attempt())
    const again = await h.waitForLog((l) => l.event === 'refused' && l.deviceId === 'later-1' && (l.detail ?? '').includes('not validated again'))
    assert.equal(again.reason, 'device_unknown')
    assert.equal(await metric(h, 'certgate_validation_duration_seconds_count', ''), validations, 'no validation for the repeat')
    await h.addDevice('later-1') // the fix: the very next connection gets in
    const c = await attempt() as { endAsync: () => Promise<void> }
    await c.endAsync()
  } finally {
    await h.close()
  }
})

test('an authenticated connection with no traffic is closed as idle', async () => {
  const h = await startHarness({ CERTGATE_IDLE_TIMEOUT_S: '1' })
  try {
    const pki = await issueHierarchy()
    await h.registerCa('root', pki.root)
    await h.addDevice('quiet-1')
    const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'quiet-1', issuer: pki.int2 }), chain: [pki.int2, pki.int1] })
    const ms = await closed(c, 3000)
    assert.ok(ms >= 500 && ms < 2500, `closed after ${ms} ms`)
    await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'quiet-1' && l.reason === 'idle')
    c.end(true)
  } finally {
    await h.close()
  }
})
