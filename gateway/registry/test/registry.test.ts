// What this proves: both registry backends — the embedded SQLite file and PostgreSQL (a real,
// throwaway cluster) — keep the same contract, checked by the same tests (SQLite also through the
// device cache a single-process gateway puts in front of it). Devices are created and
// replaced with fresh etags, and If-Match guards replacement and deletion. Listing pages in
// deviceId order, and following the cursors reaches every device exactly once. A 10,000-device
// import commits in one call, and counts by status add up. Writes emit change events and reads
// do not. A CA's proof-of-possession code is single use, expires, and stops working once the
// certificate it was issued for is replaced. Data survives a close and reopen, and a database
// written by a newer certgate (a higher schema version) is refused clearly.
import { test, describe, before, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { openSqliteRegistry } from '../sqlite-registry.js'
import { openPostgresRegistry } from '../postgres-registry.js'
import { withDeviceCache } from '../device-cache.js'
import { PreconditionFailed, type CrlInput, type DeviceInput, type DeviceStatus, type Registry, type RegistryChange } from '../types.js'
import { issue, type Issued } from '../../pki/issue.js'
import { startPostgres, type Postgres } from '../../test/support/postgres.js'

let dir: string
let caA: Issued
let caB: Issued
let pg: Postgres | undefined

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'certgate-registry-'))
  caA = await issue({ cn: 'certgate Registry CA', ca: true })
  caB = await issue({ cn: 'certgate Registry CA', ca: true })
})
after(async () => {
  await pg?.destroy()
  rmSync(dir, { recursive: true, force: true })
})

/** A backend under test: where a new, empty store is, how to open one, and its schema version. */
interface Backend {
  readonly name: string
  setup: () => Promise<void>
  newLocation: () => Promise<string>
  open: (location: string) => Promise<Registry>
  setSchemaVersion: (location: string, version: number) => Promise<void>
  schemaVersion: (location: string) => Promise<number>
  /** Puts the store back in its schema-3 shape (one CRL per CA, no CA settings column), rows kept, and the version at 3. */
  downgradeCrlsToV3: (location: string) => Promise<void>
  /** A registry on a fresh store, closed when the test ends. */
  fresh: (t: TestContext) => Promise<Registry>
}

function backend (b: Omit<Backend, 'fresh'>): Backend {
  return {
    ...b,
    fresh: async (t) => {
      const r = await b.open(await b.newLocation())
      t.after(async () => { await r.close() })
      return r
    }
  }
}

let storeNo = 0
const sqlite = backend({
  name: 'sqlite',
  setup: async () => undefined,
  newLocation: async () => join(dir, `registry-${++storeNo}.db`),
  open: async (file) => openSqliteRegistry(file),
  setSchemaVersion: async (file, version) => { const db = new Database(file); db.pragma(`user_version = ${version}`); db.close() },
  schemaVersion: async (file) => { const db = new Database(file); try { return db.pragma('user_version', { simple: true }) as number } finally { db.close() } },
  downgradeCrlsToV3: async (file) => {
    const db = new Database(file)
    try {
      db.exec(`CREATE TABLE crls_v3 (ca_name TEXT PRIMARY KEY REFERENCES cas (name) ON DELETE CASCADE, ca_thumbprint TEXT NOT NULL, crl BLOB NOT NULL,
                 issuer TEXT NOT NULL, this_update TEXT NOT NULL, next_update TEXT, crl_number TEXT, revoked_count INTEGER NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID;
               INSERT INTO crls_v3 SELECT ca_name, ca_thumbprint, crl, issuer, this_update, next_update, crl_number, revoked_count, updated_at FROM crls;
               DROP TABLE crls; ALTER TABLE crls_v3 RENAME TO crls;
               ALTER TABLE cas DROP COLUMN revocation_settings;`)
      db.pragma('user_version = 3')
    } finally {
      db.close()
    }
  }
})
// The single-process gateway's SQLite registry keeps device records between changes (device-cache.ts):
// the whole contract again through it, so a write is never followed by a stale read.
const sqliteCached = backend({ ...sqlite, name: 'sqlite with the device cache', open: async (file) => withDeviceCache(openSqliteRegistry(file)) })
const postgres = backend({
  name: 'postgres',
  setup: async () => { pg ??= await startPostgres() },
  newLocation: async () => await (pg as Postgres).createDatabase(`registry_${++storeNo}`),
  open: async (url) => await openPostgresRegistry({ url }),
  setSchemaVersion: async (url, version) => {
    const db = new URL(url).pathname.slice(1)
    await (pg as Postgres).query(db, 'CREATE TABLE IF NOT EXISTS certgate_schema (version INTEGER NOT NULL)')
    await (pg as Postgres).query(db, 'DELETE FROM certgate_schema')
    await (pg as Postgres).query(db, 'INSERT INTO certgate_schema VALUES ($1)', [version])
  },
  schemaVersion: async (url) => (await (pg as Postgres).query<{ version: number }>(new URL(url).pathname.slice(1), 'SELECT version FROM certgate_schema'))[0]?.version ?? 0,
  downgradeCrlsToV3: async (url) => {
    const db = new URL(url).pathname.slice(1)
    await (pg as Postgres).query(db, 'ALTER TABLE crls DROP CONSTRAINT crls_pkey, DROP COLUMN issuer_thumbprint, DROP COLUMN issuer_certificate, ADD PRIMARY KEY (ca_name)')
    await (pg as Postgres).query(db, 'ALTER TABLE cas DROP COLUMN revocation_settings')
    await (pg as Postgres).query(db, 'UPDATE certgate_schema SET version = 3')
  }
})

function device (deviceId: string, status: DeviceStatus = 'enabled', more: Partial<DeviceInput> = {}): DeviceInput {
  return { deviceId, authType: 'certificateAuthority', primaryThumbprint: null, secondaryThumbprint: null, status, statusReason: null, ...more }
}

const sha256 = (der: Uint8Array): string => createHash('sha256').update(der).digest('hex')

function caInput (name: string, ca: Issued): { name: string, certificateDer: Uint8Array, subject: string, thumbprint: string, notAfter: string } {
  return { name, certificateDer: ca.der, subject: `O=certgate, CN=${ca.subjectCn}`, thumbprint: sha256(ca.der), notAfter: new Date(Date.now() + 86_400_000).toISOString() }
}

function recordChanges (r: Registry): RegistryChange[] {
  const changes: RegistryChange[] = []
  r.onChange((c) => { changes.push(c) })
  return changes
}

for (const backend of [sqlite, sqliteCached, postgres]) describe(backend.name, () => {
  before(async () => { await backend.setup() })

  test('putDevice creates, then replaces with a new etag and keeps createdAt', async (t) => {
    const r = await backend.fresh(t)
    const input = device('dev-1', 'enabled', { authType: 'selfSigned', primaryThumbprint: 'a'.repeat(64), secondaryThumbprint: 'b'.repeat(64) })
    const first = await r.putDevice(input)
    assert.equal(first.created, true)
    assert.equal(first.record.deviceId, 'dev-1')
    assert.equal(first.record.authType, 'selfSigned')
    assert.equal(first.record.primaryThumbprint, 'a'.repeat(64))
    assert.equal(first.record.secondaryThumbprint, 'b'.repeat(64))
    assert.equal(first.record.status, 'enabled')
    assert.ok(first.record.etag.length > 0)
    assert.deepEqual(await r.getDevice('dev-1'), first.record)

    const second = await r.putDevice(device('dev-1', 'disabled', { statusReason: 'stolen' }))
    assert.equal(second.created, false)
    assert.notEqual(second.record.etag, first.record.etag)
    assert.equal(second.record.createdAt, first.record.createdAt)
    assert.ok(second.record.updatedAt >= first.record.updatedAt)
    const stored = await r.getDevice('dev-1')
    assert.deepEqual(stored, second.record)
    assert.equal(stored.status, 'disabled')
    assert.equal(stored.statusReason, 'stolen')
    assert.equal(stored.authType, 'certificateAuthority')
    assert.equal(stored.primaryThumbprint, null)
  })

  test('putDevice If-Match: the current etag succeeds, a stale one and "*" on a missing device throw PreconditionFailed', async (t) => {
    const r = await backend.fresh(t)
    const v1 = (await r.putDevice(device('dev-1'))).record
    const v2 = await r.putDevice(device('dev-1', 'disabled'), v1.etag)
    assert.equal(v2.created, false)
    assert.equal(v2.record.status, 'disabled')

    await assert.rejects(r.putDevice(device('dev-1', 'enabled'), v1.etag), PreconditionFailed)
    assert.equal((await r.getDevice('dev-1'))?.status, 'disabled', 'a refused replacement changes nothing')
    assert.equal((await r.getDevice('dev-1'))?.etag, v2.record.etag)

    await assert.rejects(r.putDevice(device('missing'), '*'), PreconditionFailed)
    assert.equal(await r.getDevice('missing'), undefined, 'a refused create stores nothing')
    await assert.rejects(r.putDevice(device('missing2'), 'some-etag'), PreconditionFailed)

    // '*' on an existing device means "only if it exists".
    const v3 = await r.putDevice(device('dev-1', 'enabled'), '*')
    assert.equal(v3.created, false)
    assert.equal(v3.record.status, 'enabled')
  })

  test('getDevice and deleteDevice, with If-Match on delete', async (t) => {
    const r = await backend.fresh(t)
    assert.equal(await r.getDevice('nobody'), undefined)
    const { record } = await r.putDevice(device('dev-1'))
    await r.putDevice(device('dev-2'))

    await assert.rejects(r.deleteDevice('dev-1', 'stale'), PreconditionFailed)
    assert.notEqual(await r.getDevice('dev-1'), undefined, 'a refused delete keeps the device')
    assert.equal(await r.deleteDevice('dev-1', record.etag), true)
    assert.equal(await r.getDevice('dev-1'), undefined)
    assert.equal(await r.deleteDevice('dev-1'), false, 'deleting a missing device reports false')
    await assert.rejects(r.deleteDevice('dev-1', '*'), PreconditionFailed)

    assert.equal(await r.deleteDevice('dev-2'), true)
    assert.deepEqual(await r.countDevices(), { enabled: 0, disabled: 0 })
  })

  test('listDevices pages in deviceId order and the cursors cover every device once', async (t) => {
    const r = await backend.fresh(t)
    const ids = Array.from({ length: 25 }, (_, i) => `dev-${String((i * 7) % 25).padStart(2, '0')}`)
    ids.push('A-upper', 'Z-upper', 'a-lower', '_under', '0-digit')
    for (const id of ids) await r.putDevice(device(id))
    const sorted = [...ids].sort()

    const page1 = await r.listDevices({ limit: 10 })
    assert.deepEqual(page1.items.map((d) => d.deviceId), sorted.slice(0, 10))
    assert.equal(page1.next, sorted[9])

    const seen: string[] = []
    let after: string | undefined
    let pages = 0
    do {
      const page = await r.listDevices({ after, limit: 10 })
      assert.ok(page.items.length <= 10)
      seen.push(...page.items.map((d) => d.deviceId))
      after = page.next
      pages++
      assert.ok(pages <= 10, 'paging does not terminate')
    } while (after !== undefined)
    assert.equal(pages, 3)
    assert.deepEqual(seen, sorted)

    // A last page that is exactly full has no next cursor (no empty trailing page).
    const last = await r.listDevices({ after: sorted[19], limit: 10 })
    assert.equal(last.items.length, 10)
    assert.equal(last.next, undefined)

    const everything = await r.listDevices({ limit: 1000 })
    assert.equal(everything.items.length, ids.length)
    assert.equal(everything.next, undefined)
    assert.deepEqual(await r.listDevices({ after: sorted[sorted.length - 1], limit: 10 }), { items: [], next: undefined })
  })

  test('importDevices stores 10,000 devices in one call, quickly, and countDevices counts them by status', async (t) => {
    const r = await backend.fresh(t)
    assert.deepEqual(await r.countDevices(), { enabled: 0, disabled: 0 })
    const existing = (await r.putDevice(device('dev-00000', 'disabled', { statusReason: 'old' }))).record
    const list = Array.from({ length: 10_000 }, (_, i) => device(`dev-${String(i).padStart(5, '0')}`, i % 10 === 0 ? 'disabled' : 'enabled'))

    const started = performance.now()
    const n = await r.importDevices(list)
    const elapsed = performance.now() - started
    assert.equal(n, 10_000)
    assert.ok(elapsed < 10_000, `import took ${Math.round(elapsed)} ms`)

    assert.deepEqual(await r.countDevices(), { enabled: 9000, disabled: 1000 })
    const all = await r.listDevices({ limit: 20_000 })
    assert.equal(all.items.length, 10_000)
    assert.deepEqual(all.items.map((d) => d.deviceId), list.map((d) => d.deviceId))
    assert.equal((await r.getDevice('dev-04567'))?.status, 'enabled')
    assert.equal((await r.getDevice('dev-04560'))?.status, 'disabled')

    // An import over an existing device replaces it (new etag, new fields) but keeps its createdAt.
    const replaced = await r.getDevice('dev-00000')
    assert.equal(replaced?.statusReason, null)
    assert.notEqual(replaced.etag, existing.etag)
    assert.equal(replaced.createdAt, existing.createdAt)
  })

  test('importDevices is all or nothing: one invalid device rolls the whole import back', async (t) => {
    const r = await backend.fresh(t)
    const changes = recordChanges(r)
    const bad = { ...device('dev-bad'), status: 'paused' as unknown as DeviceStatus }
    await assert.rejects(r.importDevices([device('dev-a'), device('dev-b'), bad]))
    assert.deepEqual(await r.countDevices(), { enabled: 0, disabled: 0 })
    assert.equal(await r.getDevice('dev-a'), undefined)
    assert.equal(changes.length, 0, 'a failed import emits nothing')
  })

  test('deviceIds are case-sensitive', async (t) => {
    const r = await backend.fresh(t)
    await r.putDevice(device('Dev-1'))
    assert.equal(await r.getDevice('dev-1'), undefined)
    assert.equal((await r.putDevice(device('dev-1', 'disabled'))).created, true)
    assert.equal((await r.getDevice('Dev-1'))?.status, 'enabled')
    assert.deepEqual(await r.countDevices(), { enabled: 1, disabled: 1 })
  })

  test('writes emit change events; reads and refused writes do not', async (t) => {
    const r = await backend.fresh(t)
    const changes = recordChanges(r)

    const { record } = await r.putDevice(device('dev-1'))
    assert.deepEqual(changes, [{ kind: 'device', deviceId: 'dev-1' }])

    await r.getDevice('dev-1')
    await r.listDevices({ limit: 10 })
    await r.countDevices()
    await r.getCa('root')
    await r.listCas()
    assert.equal(changes.length, 1, 'reads emit nothing')

    await assert.rejects(r.putDevice(device('dev-1'), 'stale'))
    await assert.rejects(r.deleteDevice('dev-1', 'stale'))
    assert.equal(changes.length, 1, 'refused writes emit nothing')

    await r.putDevice(device('dev-1', 'disabled'), record.etag)
    await r.importDevices([device('dev-2'), device('dev-3')])
    await r.deleteDevice('dev-2')
    await r.deleteDevice('does-not-exist')
    assert.deepEqual(changes.slice(1), [
      { kind: 'device', deviceId: 'dev-1' },
      { kind: 'bulk' },
      { kind: 'device', deviceId: 'dev-2' }
    ])

    await r.putCa(caInput('root', caA))
    await r.deleteCa('root')
    await r.deleteCa('root')
    assert.deepEqual(changes.slice(4), [{ kind: 'ca', name: 'root' }, { kind: 'ca', name: 'root' }], 'deleting a missing CA emits nothing')

    // Unsubscribing stops the events.
    const other: RegistryChange[] = []
    const off = r.onChange((c) => { other.push(c) })
    off()
    await r.putDevice(device('dev-4'))
    assert.equal(other.length, 0)
    assert.equal(changes.length, 7)
  })

  test('putCa then getCa: stored unverified with no code; setVerificationCode on a missing CA returns undefined', async (t) => {
    const r = await backend.fresh(t)
    const input = caInput('root', caA)
    const { record, created } = await r.putCa(input)
    assert.equal(created, true)
    assert.equal(record.isVerified, false)
    assert.equal(record.verificationCode, null)
    assert.equal(record.verificationCodeExpiry, null)
    const got = await r.getCa('root')
    assert.deepEqual(got, record)
    assert.deepEqual(Buffer.from(got.certificateDer), Buffer.from(caA.der))
    assert.equal(got.thumbprint, sha256(caA.der))
    assert.equal(got.subject, input.subject)
    assert.equal(got.notAfter, input.notAfter)
    assert.equal(await r.getCa('other'), undefined)

    assert.equal(await r.setVerificationCode('other', 'CODE', new Date().toISOString()), undefined)
    const expiry = new Date(Date.now() + 3_600_000).toISOString()
    const withCode = await r.setVerificationCode('root', 'CODE-1', expiry)
    assert.equal(withCode?.verificationCode, 'CODE-1')
    assert.equal(withCode.verificationCodeExpiry, expiry)
    assert.equal(withCode.isVerified, false)
    assert.notEqual(withCode.etag, record.etag)
  })

  test('consumeVerificationCode: unknown CA, no code, wrong code, expired code', async (t) => {
    const r = await backend.fresh(t)
    const { thumbprint } = caInput('root', caA)
    const now = new Date().toISOString()
    assert.equal(await r.consumeVerificationCode('root', 'X', thumbprint, now), undefined)
    await r.putCa(caInput('root', caA))
    assert.equal(await r.consumeVerificationCode('root', 'X', thumbprint, now), 'no_code')

    const expiryMs = Date.now() + 3_600_000
    const expiry = new Date(expiryMs).toISOString()
    await r.setVerificationCode('root', 'GOOD', expiry)
    assert.equal(await r.consumeVerificationCode('root', 'BAD', thumbprint, now), 'wrong_code')
    assert.equal((await r.getCa('root'))?.verificationCode, 'GOOD', 'a wrong code does not spend the real one')

    assert.equal(await r.consumeVerificationCode('root', 'GOOD', thumbprint, new Date(expiryMs + 1000).toISOString()), 'expired_code')
    const after = await r.getCa('root')
    assert.equal(after?.isVerified, false)
    assert.equal(after.verificationCode, null, 'an expired code that matched is spent')
    assert.equal(await r.consumeVerificationCode('root', 'GOOD', thumbprint, now), 'no_code')

    // Expiry is exclusive: a code is no longer good at its expiry instant.
    await r.setVerificationCode('root', 'EDGE', expiry)
    assert.equal(await r.consumeVerificationCode('root', 'EDGE', thumbprint, expiry), 'expired_code')
  })

  test('consumeVerificationCode: the happy path verifies and clears the code; a second use returns no_code', async (t) => {
    const r = await backend.fresh(t)
    const { thumbprint } = caInput('root', caA)
    await r.putCa(caInput('root', caA))
    const changes = recordChanges(r)
    await r.setVerificationCode('root', 'CODE', new Date(Date.now() + 3_600_000).toISOString())

    const result = await r.consumeVerificationCode('root', 'CODE', thumbprint, new Date().toISOString())
    assert.ok(typeof result === 'object', `expected a record, got ${JSON.stringify(result)}`)
    assert.equal(result.isVerified, true)
    assert.equal(result.verificationCode, null)
    assert.equal(result.verificationCodeExpiry, null)
    assert.deepEqual(await r.getCa('root'), result)
    assert.deepEqual(changes.at(-1), { kind: 'ca', name: 'root' }, 'becoming verified is a change (it adds a trust anchor)')

    assert.equal(await r.consumeVerificationCode('root', 'CODE', thumbprint, new Date().toISOString()), 'no_code')
    assert.equal((await r.getCa('root'))?.isVerified, true, 'a spent code does not undo verification')
  })

  test('replacing the CA certificate unverifies it, and a code issued before the replacement is certificate_replaced', async (t) => {
    const r = await backend.fresh(t)
    const a = caInput('root', caA)
    const b = caInput('root', caB)
    assert.notEqual(a.thumbprint, b.thumbprint)
    await r.putCa(a)
    await r.setVerificationCode('root', 'FIRST', new Date(Date.now() + 3_600_000).toISOString())
    const verified = await r.consumeVerificationCode('root', 'FIRST', a.thumbprint, new Date().toISOString())
    assert.equal(typeof verified === 'object' && verified.isVerified, true)

    const replaced = await r.putCa(b)
    assert.equal(replaced.created, false)
    assert.equal(replaced.record.isVerified, false)
    assert.equal(replaced.record.thumbprint, b.thumbprint)
    assert.deepEqual(Buffer.from(replaced.record.certificateDer), Buffer.from(caB.der))

    // A code issued for B, then B replaced by A: the code was for a certificate no longer there.
    await r.setVerificationCode('root', 'SECOND', new Date(Date.now() + 3_600_000).toISOString())
    await r.putCa(a)
    assert.equal(await r.consumeVerificationCode('root', 'SECOND', a.thumbprint, new Date().toISOString()), 'certificate_replaced')
    assert.equal((await r.getCa('root'))?.isVerified, false)
    assert.equal(await r.consumeVerificationCode('root', 'SECOND', a.thumbprint, new Date().toISOString()), 'no_code', 'the code is spent')

    // The caller's thumbprint must be the stored one too (the certificate it checked the proof against).
    await r.setVerificationCode('root', 'THIRD', new Date(Date.now() + 3_600_000).toISOString())
    assert.equal(await r.consumeVerificationCode('root', 'THIRD', b.thumbprint, new Date().toISOString()), 'certificate_replaced')
    assert.equal((await r.getCa('root'))?.isVerified, false)
  })

  test('putCa revocation settings: the same certificate with other settings updates only them (still verified, new etag, a change); unchanged settings change nothing', async (t) => {
    const r = await backend.fresh(t)
    const a = caInput('root', caA)
    const { record: plain } = await r.putCa(a)
    assert.deepEqual(plain.settings, { crlUrls: [], ocsp: null }, 'no settings: none')
    await r.setVerificationCode('root', 'CODE', new Date(Date.now() + 3_600_000).toISOString())
    await r.consumeVerificationCode('root', 'CODE', a.thumbprint, new Date().toISOString())
    const verified = await r.getCa('root')
    const changes = recordChanges(r)
    const settings = { crlUrls: ['http://pki.example/root.crl'], ocsp: { responders: ['http://ocsp.example/'], policy: 'open' as const } }
    const updated = await r.putCa({ ...a, settings }, verified?.etag)
    assert.equal(updated.created, false)
    assert.equal(updated.record.isVerified, true, 'settings do not unverify the CA')
    assert.notEqual(updated.record.etag, verified?.etag)
    assert.deepEqual(updated.record.settings, settings)
    assert.deepEqual(await r.getCa('root'), updated.record)
    assert.deepEqual(changes, [{ kind: 'ca', name: 'root' }])
    await assert.rejects(r.putCa({ ...a, settings: { crlUrls: [], ocsp: null } }, verified?.etag), PreconditionFailed, 'If-Match guards a settings change')

    const again = await r.putCa({ ...a, settings })
    assert.equal(again.record.etag, updated.record.etag, 'the same settings again change nothing')
    assert.equal(changes.length, 1)
    const cleared = await r.putCa(a)
    assert.deepEqual(cleared.record.settings, { crlUrls: [], ocsp: null }, 'omitted settings are none')
    assert.equal(cleared.record.isVerified, true)
    const replaced = await r.putCa({ ...caInput('root', caB), settings })
    assert.equal(replaced.record.isVerified, false)
    assert.deepEqual(replaced.record.settings, settings, 'a new certificate takes the settings sent with it')
    assert.equal(changes.length, 3)
  })

  test('deleteCa, with If-Match, and listCas', async (t) => {
    const r = await backend.fresh(t)
    const { record } = await r.putCa(caInput('root', caA))
    await r.putCa(caInput('alpha', caB))
    assert.deepEqual((await r.listCas()).map((c) => c.name), ['alpha', 'root'])

    await assert.rejects(r.deleteCa('root', 'stale'), PreconditionFailed)
    assert.notEqual(await r.getCa('root'), undefined)
    await assert.rejects(r.putCa(caInput('root', caB), 'stale'), PreconditionFailed)
    await assert.rejects(r.putCa(caInput('new', caB), '*'), PreconditionFailed)
    assert.equal(await r.getCa('new'), undefined)

    assert.equal(await r.deleteCa('root', record.etag), true)
    assert.equal(await r.getCa('root'), undefined)
    assert.equal(await r.deleteCa('root'), false)
    assert.deepEqual((await r.listCas()).map((c) => c.name), ['alpha'])
  })

  test('data survives closing and reopening the same store', async () => {
    const location = await backend.newLocation()
    const r1 = await backend.open(location)
    const dev = (await r1.putDevice(device('dev-1', 'disabled', { statusReason: 'parked' }))).record
    await r1.importDevices([device('dev-2'), device('dev-3')])
    await r1.putCa(caInput('root', caA))
    await r1.setVerificationCode('root', 'CODE', new Date(Date.now() + 3_600_000).toISOString())
    const ca = await r1.consumeVerificationCode('root', 'CODE', sha256(caA.der), new Date().toISOString())
    await r1.close()
    await r1.close() // closing twice is harmless

    if (backend === sqlite) {
      const raw = new Database(location)
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal')
      raw.close()
    }

    const r2 = await backend.open(location)
    try {
      assert.deepEqual(await r2.getDevice('dev-1'), dev)
      assert.deepEqual(await r2.countDevices(), { enabled: 2, disabled: 1 })
      const got = await r2.getCa('root')
      assert.deepEqual(got, ca)
      assert.equal(got?.isVerified, true)
    } finally {
      await r2.close()
    }
  })

  test('CRLs are held per (CA, issuer): the CA\'s own and one per delegated intermediate, each ordered, listed and dropped on its own', async (t) => {
    const r = await backend.fresh(t)
    const root = await issue({ cn: 'crl registry root', ca: true })
    await r.putCa(caInput('root', root))
    const tp = sha256(root.der)
    const crl = (issuerThumbprint: string | null, crlNumber: string): CrlInput => ({
      caName: 'root', caThumbprint: tp, issuerThumbprint, issuerCertificateDer: issuerThumbprint === null ? null : new Uint8Array([1, 2, 3]),
      der: new Uint8Array([0x30, 0]), issuer: issuerThumbprint ?? 'own', thisUpdate: new Date().toISOString(), nextUpdate: null, crlNumber, revokedCount: 0
    })
    const a = 'a'.repeat(64)
    const b = 'b'.repeat(64)
    assert.equal(typeof await r.putCrl(crl(null, '5')), 'object')
    const delegated = await r.putCrl(crl(a, '2'))
    assert.ok(typeof delegated === 'object')
    assert.equal(delegated.issuerThumbprint, a)
    assert.deepEqual(delegated.issuerCertificateDer, new Uint8Array([1, 2, 3]))
    assert.equal(typeof await r.putCrl(crl(b, '1')), 'object')
    // Numbers are compared per issuer: 2 < 5 (the CA's own) is no reason to refuse intermediate a's.
    assert.equal(await r.putCrl(crl(a, '1')), 'stale')
    assert.equal(typeof await r.putCrl(crl(a, '3')), 'object')
    assert.equal((await r.getCrl('root'))?.crlNumber, '5')
    assert.equal((await r.getCrl('root', a))?.crlNumber, '3')
    assert.deepEqual((await r.listCrls()).map((c) => [c.issuerThumbprint, c.crlNumber]), [[null, '5'], [a, '3'], [b, '1']])
    assert.equal(await r.deleteCrl('root', a), true)
    assert.equal(await r.deleteCrl('root', a), false)
    assert.equal(await r.getCrl('root', a), undefined)
    assert.deepEqual((await r.listCrls()).map((c) => c.issuerThumbprint), [null, b])
    assert.equal(await r.deleteCrl('root'), true)
    assert.deepEqual((await r.listCrls()).map((c) => c.issuerThumbprint), [b])
    // The CA goes: its delegated CRLs go with it.
    assert.equal(await r.deleteCa('root'), true)
    assert.deepEqual(await r.listCrls(), [])
  })

  test('a schema-3 store (one CRL per CA) migrates to CRLs per (CA, issuer): the CA\'s CRL is kept as its own', async () => {
    const location = await backend.newLocation()
    const r1 = await backend.open(location)
    await r1.putCa(caInput('root', caA))
    const held = await r1.putCrl({
      caName: 'root', caThumbprint: sha256(caA.der), issuerThumbprint: null, issuerCertificateDer: null, der: new Uint8Array([0x30, 0]),
      issuer: 'O=certgate, CN=root', thisUpdate: new Date().toISOString(), nextUpdate: null, crlNumber: '4', revokedCount: 0
    })
    await r1.close()
    await backend.downgradeCrlsToV3(location)
    assert.equal(await backend.schemaVersion(location), 3)
    const r2 = await backend.open(location)
    try {
      assert.equal(await backend.schemaVersion(location), 5)
      assert.deepEqual(await r2.getCrl('root'), held)
      assert.equal(await r2.putCrl({ ...(held as CrlInput), crlNumber: '3' }), 'stale')
    } finally {
      await r2.close()
    }
  })

  test('a database at a newer schema version is refused with a clear error', async () => {
    const location = await backend.newLocation()
    const r = await backend.open(location)
    await r.putDevice(device('dev-1'))
    await r.close()
    assert.equal(await backend.schemaVersion(location), 5, 'opening migrates to schema version 5')
    await backend.setSchemaVersion(location, 99)

    await assert.rejects(backend.open(location), (err: unknown) => {
      assert.ok(err instanceof Error)
      assert.match(err.message, /schema version 99/)
      assert.match(err.message, /newer/)
      assert.match(err.message, /upgrade certgate/)
      return true
    })

    // A brand-new store written by a newer certgate is refused the same way.
    const other = await backend.newLocation()
    await backend.setSchemaVersion(other, 99)
    await assert.rejects(backend.open(other), /schema version 99/)
  })
})
