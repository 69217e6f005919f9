// What this proves: `kill -9` of the gateway process at any moment loses no registry change it
// acknowledged and leaves a consistent database. The gateway runs as its own process
// (`certgate start`, ports 0, a throwaway data directory). (a) A bulk import of 60,000 devices by
// `certgate device import --batch-size 1000` is cut by SIGKILL a random moment after a random
// batch became visible: the file the kill left passes `PRAGMA integrity_check`; after a restart on
// the same directory the registry holds exactly the first n whole batches (each request is one
// transaction: all or nothing), at least every batch the CLI saw acknowledged and at most one more,
// and every device is complete and as the file said (all rows read from the database, a sample
// through the API). (b) Loops of admin writes (PUT /devices/{fresh id}, both authentication types,
// and PUT /certificates/{fresh name}) are cut by SIGKILL 300–1500 ms in, three times at different
// moments on the same directory: after each restart every write answered 2xx is present and equal
// (same etag, same fields), writes in flight are either absent or complete, and the database passes
// integrity_check. Every process started here is stopped by PID in an after hook.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { issue, type Issued } from '../../pki/issue.js'

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url))
const started = new Set<ChildProcess>()
const dirs: string[] = []

after(() => {
  for (const child of started) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try { process.kill(child.pid, 'SIGKILL') } catch { /* already gone */ }
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

function tempDir (prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  dirs.push(d)
  return d
}

/** The environment without the test runner's CERTGATE_* variables. */
function baseEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CERTGATE_')) env[k] = v
  return env
}

interface Exit { readonly code: number | null, readonly signal: NodeJS.Signals | null }
interface Proc { readonly child: ChildProcess, readonly pid: number, readonly exited: Promise<Exit>, readonly output: () => string }

function run (args: readonly string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  started.add(child)
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => { resolve({ code, signal }) }))
  assert.ok(child.pid !== undefined, 'the child process did not start')
  return { child, pid: child.pid, exited, output: () => out }
}

interface Gateway extends Proc { readonly admin: string, readonly token: string, readonly dataDir: string }

async function startGateway (dataDir: string): Promise<Gateway> {
  const p = run(['start'], {
    ...baseEnv(),
    CERTGATE_DATA_DIR: dataDir,
    CERTGATE_LISTEN: '127.0.0.1:0',
    CERTGATE_ADMIN_LISTEN: '127.0.0.1:0',
    CERTGATE_LOG_LEVEL: 'warn',
    CERTGATE_WORKERS: '1',
    CERTGATE_DRAIN_TIMEOUT_MS: '200'
  })
  const admin = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no listening line in 15 s:\n${p.output()}`)) }, 15_000)
    const check = (): void => {
      const m = /^certgate listening device=\S+ admin=(\S+)$/m.exec(p.output())
      if (m !== null) { clearTimeout(timer); resolve(`http://${m[1] ?? ''}`) }
    }
    p.child.stdout?.on('data', check)
    p.exited.then((e) => { clearTimeout(timer); reject(new Error(`the gateway exited (${e.code ?? e.signal ?? ''}) before listening:\n${p.output()}`)) }, reject)
    check()
  })
  return { ...p, admin, token: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim(), dataDir }
}

async function kill9 (p: Proc): Promise<void> {
  process.kill(p.pid, 'SIGKILL')
  const e = await p.exited
  assert.equal(e.signal, 'SIGKILL', `the process ended by itself (${e.code ?? ''}) before the kill:\n${p.output()}`)
}

async function stop (p: Proc): Promise<void> {
  process.kill(p.pid, 'SIGTERM')
  assert.deepEqual(await p.exited, { code: 0, signal: null }, p.output())
}

interface Reply { readonly status: number, readonly body: Record<string, unknown>, readonly etag: string | null }

/** One admin API request; rejects when the connection fails (the gateway was killed). */
async function api (gw: Gateway, method: string, path: string, body?: unknown): Promise<Reply> {
  const res = await fetch(gw.admin + path, {
    method,
    headers: { authorization: `Bearer ${gw.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? {} : JSON.parse(text) as Record<string, unknown>, etag: res.headers.get('etag') }
}

/** `PRAGMA integrity_check` on the registry file, read-only, as the kill (or a clean stop) left it. */
function integrity (dataDir: string): string {
  const db = new Database(join(dataDir, 'registry.sqlite'), { readonly: true, fileMustExist: true })
  try {
    return String(db.pragma('integrity_check', { simple: true }))
  } finally {
    db.close()
  }
}

interface DeviceRow {
  device_id: string, auth_type: string, primary_thumbprint: string | null, secondary_thumbprint: string | null,
  status: string, status_reason: string | null, etag: string, created_at: string, updated_at: string
}

function deviceRows (dataDir: string): DeviceRow[] {
  const db = new Database(join(dataDir, 'registry.sqlite'), { readonly: true, fileMustExist: true })
  try {
    return db.prepare<[], DeviceRow>('SELECT * FROM devices ORDER BY device_id').all()
  } finally {
    db.close()
  }
}

function storedCaNames (dataDir: string): string[] {
  const db = new Database(join(dataDir, 'registry.sqlite'), { readonly: true, fileMustExist: true })
  try {
    return db.prepare<[], { name: string }>('SELECT name FROM cas ORDER BY name').all().map((r) => r.name)
  } finally {
    db.close()
  }
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

function assertCompleteRow (r: DeviceRow): void {
  assert.ok(r.auth_type === 'certificateAuthority' || r.auth_type === 'selfSigned', `${r.device_id}: auth_type ${r.auth_type}`)
  assert.ok(r.status === 'enabled' || r.status === 'disabled', `${r.device_id}: status ${r.status}`)
  assert.ok(r.etag.length > 0, `${r.device_id}: empty etag`)
  assert.match(r.created_at, ISO, r.device_id)
  assert.match(r.updated_at, ISO, r.device_id)
  if (r.auth_type === 'selfSigned') assert.match(r.primary_thumbprint ?? '', /^[0-9a-f]{64}$/, r.device_id)
  else assert.deepEqual([r.primary_thumbprint, r.secondary_thumbprint], [null, null], r.device_id)
}

// ---- (a) bulk import ---------------------------------------------------------------------------

const N = 60_000
const BATCH = 1000
const importId = (i: number): string => `crash-${String(i).padStart(6, '0')}`
/** What the CSV says about device i. */
const importStatus = (i: number): { status: string, statusReason: string | null } => i % 10 === 3 ? { status: 'disabled', statusReason: 'returned, to be wiped' } : { status: 'enabled', statusReason: null }

test('kill -9 during a bulk import keeps whole batches only, every acknowledged one, and a sound database', { timeout: 60_000 }, async (t) => {
  const dataDir = tempDir('certgate-crash-import-')
  const work = tempDir('certgate-crash-import-work-')
  const file = join(work, 'fleet.csv')
  const lines = ['deviceId,status,statusReason']
  for (let i = 0; i < N; i++) {
    const s = importStatus(i)
    lines.push(`${importId(i)},${s.status === 'disabled' ? 'disabled' : ''},${s.statusReason === null ? '' : `"${s.statusReason}"`}`)
  }
  writeFileSync(file, lines.join('\n') + '\n')
  // The CLI cuts a batch at --batch-size or at the admin API's 256 KiB body limit: here always the former.
  const longest = JSON.stringify({ deviceId: importId(N - 1), authentication: { type: 'certificateAuthority' }, status: 'disabled', statusReason: 'returned, to be wiped' }).length
  assert.ok((longest + 1) * BATCH + 64 < 256 * 1024, 'batches must be cut by --batch-size, not by the request size limit')

  let gw = await startGateway(dataDir)
  const cli = run(['device', 'import', '--file', file, '--batch-size', String(BATCH)], { ...baseEnv(), CERTGATE_ADMIN_URL: gw.admin, CERTGATE_ADMIN_TOKEN: gw.token })
  // Kill a random moment after a random batch (the 2nd to the 12th) became visible.
  const target = 1 + Math.floor(Math.random() * 11)
  const jitterMs = Math.floor(Math.random() * 40)
  const watched = importId((target + 1) * BATCH - 1)
  const startedAt = performance.now()
  for (;;) {
    const r = await api(gw, 'GET', `/devices/${watched}`)
    if (r.status === 200) break
    assert.equal(r.status, 404)
    assert.ok(cli.child.exitCode === null, `the import ended before batch ${target + 1} was visible:\n${cli.output()}`)
    assert.ok(performance.now() - startedAt < 30_000, 'the import made no progress in 30 s')
    await sleep(2)
  }
  await sleep(jitterMs)
  await kill9(gw)
  const cliExit = await cli.exited
  const killedAfterMs = performance.now() - startedAt

  // The CLI saw the gateway go: exit 1 and how many devices were acknowledged before.
  assert.equal(cliExit.code, 1, `the import should fail when the gateway dies:\n${cli.output()}`)
  const acked = /(\d+) of 60000 devices were imported before the batch starting at/.exec(cli.output())
  assert.ok(acked !== null, `the CLI did not say how far it got:\n${cli.output()}`)
  const acknowledged = Number(acked[1])

  assert.equal(integrity(dataDir), 'ok', 'the database as the kill left it')

  // Restart on the same directory: the batch seen before the kill is served, then a clean stop.
  gw = await startGateway(dataDir)
  assert.equal((await api(gw, 'GET', `/devices/${watched}`)).status, 200, `batch ${target + 1} was visible before the kill and is gone after the restart`)
  await stop(gw)
  assert.equal(integrity(dataDir), 'ok', 'the database after a restart and a clean stop')
  const rows = deviceRows(dataDir)
  const n = rows.length
  t.diagnostic(`import: killed ${killedAfterMs.toFixed(0)} ms after it started (${jitterMs} ms after batch ${target + 1} was visible); the CLI saw ${acknowledged} devices acknowledged; ${n} devices (${n / BATCH} batches) survived`)
  assert.equal(n % BATCH, 0, `${n} devices is not a whole number of ${BATCH}-device batches`)
  assert.ok(n >= (target + 1) * BATCH, `batch ${target + 1} was visible before the kill but only ${n} devices survived`)
  assert.ok(n >= acknowledged, `${acknowledged} devices were acknowledged but only ${n} survived`)
  assert.ok(n <= acknowledged + BATCH, `${n} devices survived but only ${acknowledged} were acknowledged: more than the one batch in flight`)
  assert.ok(n < N, 'the import finished before the kill: nothing was cut (make the kill earlier)')
  for (const [i, r] of rows.entries()) {
    assert.equal(r.device_id, importId(i), 'the surviving devices are exactly the first batches of the file')
    assertCompleteRow(r)
    const s = importStatus(i)
    assert.deepEqual([r.auth_type, r.status, r.status_reason], ['certificateAuthority', s.status, s.statusReason], r.device_id)
  }

  // Through the API after another restart: a sample of devices is served complete, and the first not imported is 404.
  gw = await startGateway(dataDir)
  const sample = [0, n - 1, ...Array.from({ length: 20 }, () => Math.floor(Math.random() * n))]
  for (const i of sample) {
    const r = await api(gw, 'GET', `/devices/${importId(i)}`)
    assert.equal(r.status, 200, importId(i))
    const s = importStatus(i)
    assert.deepEqual([r.body.deviceId, r.body.status, r.body.statusReason, (r.body.authentication as { type: string }).type], [importId(i), s.status, s.statusReason, 'certificateAuthority'])
    assert.equal(r.etag, `"${String(r.body.etag)}"`)
  }
  assert.equal((await api(gw, 'GET', `/devices/${importId(n)}`)).status, 404)
  await stop(gw)
})

// ---- (b) admin writes --------------------------------------------------------------------------

interface DeviceBody { authentication: { type: string, x509Thumbprint?: { primaryThumbprint: string, secondaryThumbprint: string | null } }, status: string, statusReason: string | null }
type Write =
  | { readonly kind: 'device', readonly id: string, readonly body: DeviceBody }
  | { readonly kind: 'ca', readonly name: string, readonly ca: Issued }
interface Acked { readonly write: Write, readonly etag: string, readonly thumbprint?: string }

function deviceBody (n: number): DeviceBody {
  if (n % 3 === 0) {
    return { authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: randomBytes(32).toString('hex'), secondaryThumbprint: n % 2 === 0 ? randomBytes(32).toString('hex') : null } }, status: 'enabled', statusReason: null }
  }
  return { authentication: { type: 'certificateAuthority' }, status: n % 5 === 0 ? 'disabled' : 'enabled', statusReason: n % 5 === 0 ? `crash test ${n}` : null }
}

/** PUTs fresh devices or CAs one after another until a request fails (the gateway died) or `stopped()`. */
async function writer (gw: Gateway, make: (n: number) => Write, acked: Acked[], unacked: Write[], unexpected: string[], stopped: () => boolean): Promise<number> {
  let n = 0
  while (!stopped()) {
    const w = make(n++)
    let r: Reply
    try {
      r = w.kind === 'device' ? await api(gw, 'PUT', `/devices/${w.id}`, w.body) : await api(gw, 'PUT', `/certificates/${w.name}`, { certificate: w.ca.pem })
    } catch {
      unacked.push(w) // in flight when the gateway died: may or may not have been applied
      return n
    }
    if (r.status !== 201) { unexpected.push(`${w.kind === 'device' ? w.id : w.name}: HTTP ${r.status} ${JSON.stringify(r.body)}`); continue }
    assert.ok(typeof r.body.etag === 'string' && r.etag === `"${r.body.etag}"`, `a 201 without a matching ETag: ${JSON.stringify(r.body)}`)
    acked.push({ write: w, etag: r.body.etag, ...(typeof r.body.thumbprint === 'string' ? { thumbprint: r.body.thumbprint } : {}) })
  }
  return n
}

/** 'absent', or 'present' and exactly what was written (and with the acknowledged etag, when there is one); throws otherwise. */
async function stored (gw: Gateway, w: Write, etag: string | undefined): Promise<'present' | 'absent'> {
  if (w.kind === 'device') {
    const r = await api(gw, 'GET', `/devices/${w.id}`)
    if (r.status === 404) return 'absent'
    assert.equal(r.status, 200, `${w.id}: ${JSON.stringify(r.body)}`)
    const auth = r.body.authentication as { type: string, x509Thumbprint: { primaryThumbprint: string | null, secondaryThumbprint: string | null } }
    assert.deepEqual({ type: auth.type, status: r.body.status, statusReason: r.body.statusReason, primary: auth.x509Thumbprint.primaryThumbprint, secondary: auth.x509Thumbprint.secondaryThumbprint }, {
      type: w.body.authentication.type,
      status: w.body.status,
      statusReason: w.body.statusReason,
      primary: w.body.authentication.x509Thumbprint?.primaryThumbprint ?? null,
      secondary: w.body.authentication.x509Thumbprint?.secondaryThumbprint ?? null
    }, `device ${w.id} is not what was written`)
    if (etag !== undefined) assert.equal(r.body.etag, etag, `device ${w.id}: the acknowledged etag changed`)
    return 'present'
  }
  const r = await api(gw, 'GET', `/certificates/${w.name}`)
  if (r.status === 404) return 'absent'
  assert.equal(r.status, 200, `${w.name}: ${JSON.stringify(r.body)}`)
  assert.equal(r.body.certificate, w.ca.pem, `CA ${w.name}: not the certificate uploaded`)
  assert.equal(r.body.isVerified, false)
  if (etag !== undefined) assert.equal(r.body.etag, etag, `CA ${w.name}: the acknowledged etag changed`)
  return 'present'
}

test('kill -9 during admin writes loses no acknowledged write, three times at different moments', { timeout: 60_000 }, async (t) => {
  const dataDir = tempDir('certgate-crash-writes-')
  const cas = await Promise.all(Array.from({ length: 40 }, (_, i) => issue({ cn: `Crash Test CA ${i}`, ca: true })))
  // Three kill moments, one from each third of 300-1500 ms, in random order.
  const moments = [300, 700, 1100].map((lo) => lo + Math.floor(Math.random() * 400)).sort(() => Math.random() - 0.5)
  const acked: Acked[] = []
  const everUnacked: Write[] = []
  let gw = await startGateway(dataDir)
  for (const [round, killAt] of moments.entries()) {
    const unacked: Write[] = []
    const unexpected: string[] = []
    let stopped = false
    const isStopped = (): boolean => stopped
    const writers = [
      writer(gw, (n) => ({ kind: 'device', id: `w${round}-a-${n}`, body: deviceBody(n) }), acked, unacked, unexpected, isStopped),
      writer(gw, (n) => ({ kind: 'device', id: `w${round}-b-${n}`, body: deviceBody(n + 1) }), acked, unacked, unexpected, isStopped),
      writer(gw, (n) => ({ kind: 'ca', name: `ca-${round}-${n}`, ca: cas[n % cas.length] as Issued }), acked, unacked, unexpected, isStopped)
    ]
    const before = acked.length
    await sleep(killAt)
    await kill9(gw)
    stopped = true
    const [a, b, c] = await Promise.all(writers)
    assert.deepEqual(unexpected, [], 'writes refused by a healthy gateway')
    assert.ok(acked.length > before, `round ${round}: no write was acknowledged in ${killAt} ms`)
    assert.equal(integrity(dataDir), 'ok', `round ${round}: the database as the kill left it`)

    gw = await startGateway(dataDir)
    for (const { write, etag } of acked) assert.equal(await stored(gw, write, etag), 'present', `an acknowledged write is missing: ${JSON.stringify(write.kind === 'device' ? write.id : write.name)}`)
    const applied = []
    for (const w of unacked) if (await stored(gw, w, undefined) === 'present') applied.push(w)
    everUnacked.push(...unacked)
    t.diagnostic(`round ${round}: killed ${killAt} ms into the writes; ${acked.length - before} acknowledged (${a} + ${b} device PUTs, ${c} CA uploads attempted), ${unacked.length} in flight of which ${applied.length} applied`)
  }
  await stop(gw)
  assert.equal(integrity(dataDir), 'ok', 'the database after the last restart and a clean stop')
  // Nothing else is there: every row is an acknowledged device or one that was in flight, and complete.
  const ackedIds = new Set(acked.flatMap((x) => x.write.kind === 'device' ? [x.write.id] : []))
  const inFlightIds = new Set(everUnacked.flatMap((w) => w.kind === 'device' ? [w.id] : []))
  const rows = deviceRows(dataDir)
  for (const r of rows) {
    assert.ok(ackedIds.has(r.device_id) || inFlightIds.has(r.device_id), `device ${r.device_id} was never written`)
    assertCompleteRow(r)
  }
  assert.ok(rows.length >= ackedIds.size)
  const uploaded = new Set([...acked.map((x) => x.write), ...everUnacked].flatMap((w) => w.kind === 'ca' ? [w.name] : []))
  for (const name of storedCaNames(dataDir)) assert.ok(uploaded.has(name), `CA ${name} was never uploaded`)
})
