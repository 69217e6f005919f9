// What this proves: certgate fails closed and recovers when its parts fail. A validation worker
// that throws fails that validation ('failed', so the device is refused as validator_failed) and
// the next validation on the same thread succeeds; a worker thread that dies mid-validation
// (process.exit inside the worker, or an exception thrown from a callback so the thread crashes)
// fails the validation in flight and the pool respawns the thread, so later validations succeed
// (both faults are injected by a wrapper worker module written at test time around the real
// one). A registry that cannot be read refuses the device as registry_unavailable — a real
// verdict from the pool combined with a registry that rejects or throws, and end to end, a
// device whose registry read fails never reaches the upstream and gets in once the registry
// answers again. SIGTERM on the `start` process stops accepting at once (new connections fail,
// /healthz turns 503), lets a connected device stay for the drain timeout, then closes it
// (logged as closed/shutdown) and exits 0. The upstream going away (its connections ended or
// reset) closes every device connected through it within a second, each logged as
// closed/upstream_closed, and the next device is refused as upstream_unavailable.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { issue, issueHierarchy, type Issued } from '../pki/issue.js'
import { createValidatorPool, type PoolVerdict, type ValidatorPool } from '../validation/validator-pool.js'
import { authenticate } from '../auth/authenticate.js'
import { openSqliteRegistry } from '../registry/sqlite-registry.js'
import type { Registry } from '../registry/types.js'
import { startHarness, type Harness } from './support/harness.js'
import { closed, connectDevice } from './support/device.js'
import { startRecordingUpstream, type RecordingUpstream } from './support/recording-upstream.js'

const REAL_WORKER = new URL('../../workers/validate-worker.js', import.meta.url)
const CLI = fileURLToPath(new URL('../cli.js', import.meta.url))

const THROWS = 0x00
const EXITS = 0x01
const CRASHES = 0x02

let pki: { root: Issued, int1: Issued, int2: Issued }
let scratch: string
let faultyWorker: URL
// For the end-to-end tests: a gateway forwarding to a recording upstream.
let h: Harness
let upstream: RecordingUpstream

before(async () => {
  pki = await issueHierarchy({ rootCn: 'Faults Root' })
  scratch = mkdtempSync(join(tmpdir(), 'certgate-faults-'))
  // The real worker, wrapped: a marker in the leaf's first byte injects a fault, anything else is
  // delegated unchanged (the real module reads its workerData on import, in this same thread).
  faultyWorker = pathToFileURL(join(scratch, 'faulty-worker.mjs'))
  writeFileSync(fileURLToPath(faultyWorker), `
import realValidate from ${JSON.stringify(REAL_WORKER.href)}
export default function validate (task) {
  switch (task.leaf[0]) {
    case ${THROWS}: throw new Error('injected fault: the worker threw')
    case ${EXITS}: process.exit(1)
    case ${CRASHES}: return new Promise(() => { setImmediate(() => { throw new Error('injected fault: the thread crashed') }) })
    default: return realValidate(task)
  }
}
`)
  upstream = await startRecordingUpstream()
  h = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${upstream.port}`, CERTGATE_PROTOCOL: 'mqtt' })
  await h.registerCa('faults-root', pki.root)
})
after(async () => {
  await h.close()
  await upstream.close()
  rmSync(scratch, { recursive: true, force: true })
})

const marker = (byte: number): Uint8Array => new Uint8Array([byte, 0x30, 0x03, 0x02, 0x01, 0x00])

/** The pool's verdict, or a timeout: a fault must never leave a validation hanging. */
async function validateWithin (pool: ValidatorPool, leaf: Uint8Array, intermediates: readonly Uint8Array[], ms = 5000): Promise<PoolVerdict> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      pool.validate(leaf, intermediates),
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`validation still pending after ${ms} ms`)) }, ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}

async function faultyPool (): Promise<ValidatorPool> {
  const pool = createValidatorPool({ threads: 1, maxQueue: 10, cacheEntries: 10, workerFile: faultyWorker })
  pool.setTrusted([{ name: 'faults-root', der: pki.root.der }])
  return pool
}

/** A good device validates, ends at the registered CA and names its deviceId. */
async function assertValidates (pool: ValidatorPool, cn: string): Promise<void> {
  const leaf = await issue({ cn, issuer: pki.int2 })
  const v = await validateWithin(pool, leaf.der, [pki.int2.der, pki.int1.der])
  assert.equal(v.kind, 'done', JSON.stringify(v))
  assert.equal(v.outcome.chain.ok, true, JSON.stringify(v.outcome.chain))
  assert.equal(v.anchorName, 'faults-root')
  assert.deepEqual(v.outcome.leaf?.commonNames, [cn])
}

test('(a) a worker that throws fails that validation closed; the next one on the same thread succeeds', async () => {
  const pool = await faultyPool()
  try {
    await assertValidates(pool, 'before-throw')
    const v = await validateWithin(pool, marker(THROWS), [])
    assert.equal(v.kind, 'failed')
    assert.match(v.detail, /injected fault: the worker threw/)
    // And the gateway turns that into a refusal, whatever the registry says.
    const decision = await authenticate(v, { getDevice: async () => { throw new Error('must not be asked') } } as unknown as Registry)
    assert.equal(decision.ok, false)
    assert.ok(!decision.ok)
    assert.equal(decision.reason, 'validator_failed')
    await assertValidates(pool, 'after-throw')
    assert.equal(pool.stats().threads, 1)
  } finally {
    await pool.close()
  }
})

for (const [what, byte, detail] of [
  ['exits (process.exit(1) in the worker)', EXITS, /worker exited with code: 1/],
  ['crashes (an exception thrown from a setImmediate)', CRASHES, /injected fault: the thread crashed/]
] as const) {
  test(`(b) a worker thread that ${what} fails the validation in flight; the pool respawns it`, async () => {
    const pool = await faultyPool()
    try {
      await assertValidates(pool, 'before-death')
      const v = await validateWithin(pool, marker(byte), [])
      assert.equal(v.kind, 'failed', JSON.stringify(v))
      assert.match(v.detail, detail)
      // Several in a row: a respawned thread (a fresh trust epoch) takes them all.
      for (let i = 0; i < 3; i++) await assertValidates(pool, `after-death-${i}`)
      // Twice: the replacement thread can die and be replaced too.
      const again = await validateWithin(pool, marker(byte), [])
      assert.equal(again.kind, 'failed')
      await assertValidates(pool, 'after-second-death')
    } finally {
      await pool.close()
    }
  })
}

test('(c) a registry that cannot be read refuses the device as registry_unavailable', async () => {
  const pool = createValidatorPool({ threads: 1, maxQueue: 10, cacheEntries: 10 })
  const dir = mkdtempSync(join(tmpdir(), 'certgate-faults-registry-'))
  const registry = openSqliteRegistry(join(dir, 'registry.sqlite'))
  try {
    pool.setTrusted([{ name: 'faults-root', der: pki.root.der }])
    await registry.putDevice({ deviceId: 'reg-1', authType: 'certificateAuthority', primaryThumbprint: null, secondaryThumbprint: null, status: 'enabled', statusReason: null })
    const leaf = await issue({ cn: 'reg-1', issuer: pki.int2 })
    const verdict = await validateWithin(pool, leaf.der, [pki.int2.der, pki.int1.der])
    assert.equal(verdict.kind, 'done')
    // With the registry answering, this very verdict authenticates the device...
    const ok = await authenticate(verdict, registry)
    assert.equal(ok.ok, true, JSON.stringify(ok))
    // ... and with the registry failing (rejecting, or throwing before it returns a promise), it does not.
    const rejecting: Registry = { ...registry, getDevice: async () => { throw new Error('SQLITE_BUSY: database is locked') } }
    const throwing: Registry = { ...registry, getDevice: () => { throw new Error('SQLITE_IOERR: disk I/O error') } }
    for (const [broken, message] of [[rejecting, /database is locked/], [throwing, /disk I\/O error/]] as const) {
      const d = await authenticate(verdict, broken)
      assert.equal(d.ok, false)
      assert.ok(!d.ok)
      assert.equal(d.reason, 'registry_unavailable')
      assert.equal(d.deviceId, 'reg-1')
      assert.match(d.detail, message)
    }
  } finally {
    await pool.close()
    await registry.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

// ---- (d) SIGTERM on the `start` process

interface Started {
  readonly device: number
  readonly admin: number
  readonly stdout: () => string
  readonly exited: Promise<number | null>
  /** Resolves once stdout holds a match for `re` (bounded: rejects after `ms`). */
  readonly printed: (re: RegExp, ms: number) => Promise<void>
}

async function startProcess (env: Record<string, string>): Promise<Started & { kill: (signal: NodeJS.Signals) => void }> {
  const child = spawn(process.execPath, [CLI, 'start'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  const line = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`no listening line in 15 s:\n${out}\n${err}`)) }, 15_000)
    const check = (): void => {
      const m = /^certgate listening device=127\.0\.0\.1:(\d+) admin=127\.0\.0\.1:(\d+)$/m.exec(out)
      if (m !== null) { clearTimeout(timer); child.stdout.off('data', check); resolve(m) }
    }
    child.stdout.on('data', check)
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`exited ${code}:\n${out}\n${err}`)) })
  })
  const printed = async (re: RegExp, ms: number): Promise<void> => { await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { child.stdout.off('data', check); reject(new Error(`stdout never matched ${re} within ${ms} ms:\n${out}`)) }, ms)
    function check (): void {
      if (re.test(out)) { clearTimeout(timer); child.stdout.off('data', check); resolve() }
    }
    child.stdout.on('data', check)
    check()
  }) }
  return { device: Number(line[1]), admin: Number(line[2]), stdout: () => out, exited, printed, kill: (signal) => { child.kill(signal) } }
}

test('(d) SIGTERM stops accepting at once, drains for the drain timeout, closes the rest and exits 0', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'certgate-drain-'))
  const token = 'faults-test-admin-token-0123456789'
  const proc = await startProcess({
    CERTGATE_DATA_DIR: dataDir,
    CERTGATE_LISTEN: '127.0.0.1:0',
    CERTGATE_ADMIN_LISTEN: '127.0.0.1:0',
    CERTGATE_ADMIN_TOKEN: token,
    CERTGATE_DRAIN_TIMEOUT_MS: '1000',
    CERTGATE_WORKERS: '1',
    CERTGATE_LOG_LEVEL: 'info'
  })
  try {
    const admin = `http://127.0.0.1:${proc.admin}`
    const call = async (method: string, path: string, body?: unknown): Promise<{ status: number, body: Record<string, unknown> }> => {
      const res = await fetch(admin + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
      const text = await res.text()
      return { status: res.status, body: text === '' ? {} : JSON.parse(text) as Record<string, unknown> }
    }
    // The CA with proof of possession, and two devices, all over the admin API.
    assert.equal((await call('PUT', '/certificates/fleet', { certificate: pki.root.pem })).status, 201)
    const code = (await call('POST', '/certificates/fleet/generateVerificationCode')).body.verificationCode
    assert.ok(typeof code === 'string')
    const proof = await issue({ cn: code, issuer: pki.root, eku: [] })
    assert.equal((await call('POST', '/certificates/fleet/verify', { certificate: proof.pem })).body.isVerified, true)
    for (const id of ['drain-1', 'drain-2']) assert.equal((await call('PUT', `/devices/${id}`, { authentication: { type: 'certificateAuthority' }, status: 'enabled' })).status, 201)
    const serverCa = readFileSync(join(dataDir, 'dev-server-cert.pem'), 'utf8')
    const [leaf1, leaf2] = await Promise.all([issue({ cn: 'drain-1', issuer: pki.int2 }), issue({ cn: 'drain-2', issuer: pki.int2 })])
    const device = { port: proc.device, serverCa, chain: [pki.int2, pki.int1] }
    const c1 = await connectDevice({ ...device, leaf: leaf1 })
    // drain-2 gets in before SIGTERM, so its refusal afterwards is the shutdown's doing.
    await (await connectDevice({ ...device, leaf: leaf2 })).endAsync()

    const sigterm = Date.now()
    const gone = closed(c1, 3000)
    proc.kill('SIGTERM')
    // The gateway has taken the signal (it logs this, then stops accepting, in one step): a device
    // still connected now is one the drain lets stay, not one whose close has not happened yet.
    await proc.printed(/"signal":"SIGTERM"[^\n]*draining and shutting down/, 1000)
    assert.equal(c1.connected, true, 'a connected device may stay while the gateway drains')
    assert.equal((await fetch(`${admin}/healthz`)).status, 503, '/healthz while draining')
    const refused = await connectDevice({ ...device, leaf: leaf2 }).then(() => undefined, (e: unknown) => e as Error & { code?: string })
    assert.ok(refused !== undefined, 'a new connection after SIGTERM must fail')
    assert.equal(refused.code, 'ECONNREFUSED', refused.message)

    const closedAfter = await gone
    const code0 = await Promise.race([proc.exited, new Promise<string>((resolve) => setTimeout(() => { resolve('still running') }, 3000 - (Date.now() - sigterm)))])
    const exitedAfter = Date.now() - sigterm
    assert.equal(code0, 0, `exit code within 3 s of SIGTERM\n${proc.stdout()}`)
    assert.ok(closedAfter >= 900 && closedAfter <= 2000, `the device was closed ${closedAfter} ms after SIGTERM (drain timeout 1000 ms)`)
    const shutdownLine = proc.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.event === 'closed' && l.deviceId === 'drain-1')
    assert.equal(shutdownLine?.reason, 'shutdown', proc.stdout())
    c1.end(true)
    t.diagnostic(`device closed ${closedAfter} ms and process exited ${exitedAfter} ms after SIGTERM (drain timeout 1000 ms)`)
    assert.ok(exitedAfter < 3000, `exited ${exitedAfter} ms after SIGTERM`)
  } finally {
    proc.kill('SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  }
})

// ---- (e) and the end-to-end registry failure, through the harness gateway

test('end to end: a device whose registry read fails is refused and never reaches the upstream', async () => {
  await h.addDevice('flaky-reg-1')
  const leaf = await issue({ cn: 'flaky-reg-1', issuer: pki.int2 })
  const getDevice = h.gw.registry.getDevice
  h.gw.registry.getDevice = async () => { throw new Error('SQLITE_BUSY: database is locked') }
  try {
    await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] }))
  } finally {
    h.gw.registry.getDevice = getDevice
  }
  const line = await h.waitForLog((l) => l.event === 'refused' && l.deviceId === 'flaky-reg-1')
  assert.equal(line.reason, 'registry_unavailable')
  assert.match(line.detail ?? '', /database is locked/)
  assert.equal(upstream.connects.filter((c) => c.clientId === 'flaky-reg-1').length, 0)
  // Not remembered as a refusal of the certificate: with the registry back, it gets in at once.
  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] })
  await upstream.waitForConnect('flaky-reg-1')
  await c.endAsync()
})

test('(e) the upstream going away closes every device connected through it within a second', async (t) => {
  const ids = ['up-1', 'up-2', 'up-3']
  const clients = []
  for (const id of ids) {
    await h.addDevice(id)
    clients.push(await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: id, issuer: pki.int2 }), chain: [pki.int2, pki.int1] }))
    await upstream.waitForConnect(id)
  }
  const gone = clients.map(async (c) => await closed(c, 1000))
  // A FIN for two of them, a TCP RST for the third (no end-of-stream for a pipe to pass on).
  await upstream.kill({ reset: (id) => id === 'up-3' })
  const ms = await Promise.all(gone)
  t.diagnostic(`devices closed ${ms.join(', ')} ms after the upstream went away`)
  for (const [i, id] of ids.entries()) {
    assert.ok(ms[i]! < 1000, `${id} closed after ${ms[i]!} ms`)
    await h.waitForLog((l) => l.event === 'closed' && l.deviceId === id && l.reason === 'upstream_closed', 1000)
  }
  // With the upstream gone, the next device is refused for it.
  await h.addDevice('up-4')
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: 'up-4', issuer: pki.int2 }), chain: [pki.int2, pki.int1] }))
  const refusal = await h.waitForLog((l) => l.event === 'refused' && l.deviceId === 'up-4')
  assert.equal(refusal.reason, 'upstream_unavailable')
  for (const c of clients) c.end(true)
})
