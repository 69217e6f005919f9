// The embedded registry: one SQLite file in the data directory (better-sqlite3, WAL,
// synchronous=FULL so a committed change survives kill -9 and power loss). Versioned schema
// migrations run at open. Only importer of better-sqlite3.
import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import Database from 'better-sqlite3'
import {
  PreconditionFailed, type CaRecord, type CrlInput, type CrlRecord, type DeviceInput, type DeviceRecord, type DeviceStatus,
  type EnrollmentGroupInput, type Registry, type RegistryChange, type RevocationRecord
} from './types.js'
import { isOlderCrl } from './crl-order.js'
import { registrationColumns, toGroup, toRegistration, type GroupRow, type RegistrationColumns } from './enrollment-rows.js'
import { errorMessage } from '../../workers/errors.js'

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE devices (
     device_id TEXT PRIMARY KEY,
     auth_type TEXT NOT NULL CHECK (auth_type IN ('certificateAuthority', 'selfSigned')),
     primary_thumbprint TEXT,
     secondary_thumbprint TEXT,
     status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
     status_reason TEXT,
     etag TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE cas (
     name TEXT PRIMARY KEY,
     certificate BLOB NOT NULL,
     subject TEXT NOT NULL,
     thumbprint TEXT NOT NULL,
     not_after TEXT NOT NULL,
     is_verified INTEGER NOT NULL DEFAULT 0,
     verification_code TEXT,
     verification_code_expiry TEXT,
     verification_code_thumbprint TEXT,
     etag TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   ) WITHOUT ROWID;`,
  // Revocation: the deny-list, and one CRL per CA (dropped with its CA).
  `CREATE TABLE revocations (
     thumbprint TEXT PRIMARY KEY,
     reason TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE TABLE crls (
     ca_name TEXT PRIMARY KEY REFERENCES cas (name) ON DELETE CASCADE,
     ca_thumbprint TEXT NOT NULL,
     crl BLOB NOT NULL,
     issuer TEXT NOT NULL,
     this_update TEXT NOT NULL,
     next_update TEXT,
     crl_number TEXT,
     revoked_count INTEGER NOT NULL,
     updated_at TEXT NOT NULL
   ) WITHOUT ROWID;`,
  // Enrollment groups, and which group registered a device (NULL: added by an operator).
  `ALTER TABLE devices ADD COLUMN enrollment_group_id TEXT;
   ALTER TABLE devices ADD COLUMN registered_at TEXT;
   ALTER TABLE devices ADD COLUMN registered_via TEXT;
   CREATE INDEX devices_by_group ON devices (enrollment_group_id, device_id) WHERE enrollment_group_id IS NOT NULL;
   CREATE TABLE enrollment_groups (
     enrollment_group_id TEXT PRIMARY KEY,
     primary_ca TEXT NOT NULL,
     secondary_ca TEXT,
     provisioning_status TEXT NOT NULL CHECK (provisioning_status IN ('enabled', 'disabled')),
     device_id_pattern TEXT,
     initial_status TEXT NOT NULL CHECK (initial_status IN ('enabled', 'disabled')),
     etag TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   ) WITHOUT ROWID;`,
  // 4: reserved for the per-CA settings (crlUrls, OCSP) of a parallel branch; on merge, theirs goes here.
  'SELECT 1;',
  // 5: CRLs per (CA, issuer): besides the CA's own (issuer_thumbprint ''), one per intermediate under
  // it that signs CRLs for the certificates it issued (RFC 5280 §6.3.3 (f)). SQLite cannot change a
  // primary key in place: the table is rebuilt.
  `CREATE TABLE crls_by_issuer (
     ca_name TEXT NOT NULL REFERENCES cas (name) ON DELETE CASCADE,
     issuer_thumbprint TEXT NOT NULL DEFAULT '',
     issuer_certificate BLOB,
     ca_thumbprint TEXT NOT NULL,
     crl BLOB NOT NULL,
     issuer TEXT NOT NULL,
     this_update TEXT NOT NULL,
     next_update TEXT,
     crl_number TEXT,
     revoked_count INTEGER NOT NULL,
     updated_at TEXT NOT NULL,
     PRIMARY KEY (ca_name, issuer_thumbprint)
   ) WITHOUT ROWID;
   INSERT INTO crls_by_issuer (ca_name, ca_thumbprint, crl, issuer, this_update, next_update, crl_number, revoked_count, updated_at)
     SELECT ca_name, ca_thumbprint, crl, issuer, this_update, next_update, crl_number, revoked_count, updated_at FROM crls;
   DROP TABLE crls;
   ALTER TABLE crls_by_issuer RENAME TO crls;`
]

interface DeviceRow {
  device_id: string, auth_type: DeviceRecord['authType'], primary_thumbprint: string | null, secondary_thumbprint: string | null,
  status: DeviceStatus, status_reason: string | null, etag: string, created_at: string, updated_at: string
}
type StoredDeviceRow = DeviceRow & RegistrationColumns
interface CaRow {
  name: string, certificate: Buffer, subject: string, thumbprint: string, not_after: string, is_verified: number,
  verification_code: string | null, verification_code_expiry: string | null, verification_code_thumbprint: string | null,
  etag: string, created_at: string, updated_at: string
}

interface RevocationRow { thumbprint: string, reason: string | null, created_at: string, updated_at: string }
interface CrlRow {
  ca_name: string, issuer_thumbprint: string, issuer_certificate: Buffer | null, ca_thumbprint: string, crl: Buffer, issuer: string, this_update: string, next_update: string | null,
  crl_number: string | null, revoked_count: number, updated_at: string
}

const toRevocation = (r: RevocationRow): RevocationRecord => ({ thumbprint: r.thumbprint, reason: r.reason, createdAt: r.created_at, updatedAt: r.updated_at })
const toCrl = (r: CrlRow): CrlRecord => ({
  caName: r.ca_name, caThumbprint: r.ca_thumbprint, issuerThumbprint: r.issuer_thumbprint === '' ? null : r.issuer_thumbprint,
  issuerCertificateDer: r.issuer_certificate === null ? null : new Uint8Array(r.issuer_certificate), der: new Uint8Array(r.crl), issuer: r.issuer, thisUpdate: r.this_update,
  nextUpdate: r.next_update, crlNumber: r.crl_number, revokedCount: r.revoked_count, updatedAt: r.updated_at
})

const newEtag = (): string => randomBytes(9).toString('base64url')
const nowIso = (): string => new Date().toISOString()

function toDevice (r: StoredDeviceRow | DeviceRow): DeviceRecord {
  const registration = 'enrollment_group_id' in r ? toRegistration(r) : undefined
  return {
    deviceId: r.device_id, authType: r.auth_type, primaryThumbprint: r.primary_thumbprint, secondaryThumbprint: r.secondary_thumbprint,
    status: r.status, statusReason: r.status_reason, etag: r.etag, createdAt: r.created_at, updatedAt: r.updated_at,
    ...(registration === undefined ? {} : { registration })
  }
}

function toCa (r: CaRow): CaRecord {
  return {
    name: r.name, certificateDer: new Uint8Array(r.certificate), subject: r.subject, thumbprint: r.thumbprint, notAfter: r.not_after,
    isVerified: r.is_verified === 1, verificationCode: r.verification_code, verificationCodeExpiry: r.verification_code_expiry,
    verificationCodeFor: r.verification_code_thumbprint, etag: r.etag, createdAt: r.created_at, updatedAt: r.updated_at
  }
}

function checkMatch (stored: { etag: string } | undefined, ifMatch: string | undefined): void {
  if (ifMatch === undefined) return
  if (ifMatch === '*' ? stored === undefined : stored?.etag !== ifMatch) throw new PreconditionFailed(`If-Match ${ifMatch} does not match the current etag`)
}

export function openSqliteRegistry (file: string): Registry {
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('foreign_keys = ON')
  db.pragma('busy_timeout = 5000')
  try {
    migrate(db)
  } catch (err) {
    db.close()
    throw err
  }
  const events = new EventEmitter()
  // A listener's failure must not turn a committed write into a reported failure.
  const emit = (c: RegistryChange): void => {
    try { events.emit('change', c) } catch (err) { process.emitWarning(`registry change listener failed: ${errorMessage(err)}`) }
  }

  const q = {
    getDevice: db.prepare<[string], StoredDeviceRow>('SELECT * FROM devices WHERE device_id = ?'),
    listDevices: db.prepare<[string, number], StoredDeviceRow>('SELECT * FROM devices WHERE device_id > ? ORDER BY device_id LIMIT ?'),
    listGroupDevices: db.prepare<[string, string, number], StoredDeviceRow>('SELECT * FROM devices WHERE enrollment_group_id = ? AND device_id > ? ORDER BY device_id LIMIT ?'),
    // The registration columns are left alone on replace: a registered device stays its group's.
    upsertDevice: db.prepare('INSERT INTO devices (device_id, auth_type, primary_thumbprint, secondary_thumbprint, status, status_reason, etag, created_at, updated_at) ' +
      'VALUES (@device_id, @auth_type, @primary_thumbprint, @secondary_thumbprint, @status, @status_reason, @etag, @created_at, @updated_at) ' +
      'ON CONFLICT (device_id) DO UPDATE SET auth_type = excluded.auth_type, primary_thumbprint = excluded.primary_thumbprint, secondary_thumbprint = excluded.secondary_thumbprint, ' +
      'status = excluded.status, status_reason = excluded.status_reason, etag = excluded.etag, updated_at = excluded.updated_at'),
    deleteDevice: db.prepare<[string]>('DELETE FROM devices WHERE device_id = ?'),
    insertDeviceIfAbsent: db.prepare('INSERT INTO devices VALUES (@device_id, @auth_type, @primary_thumbprint, @secondary_thumbprint, @status, @status_reason, @etag, ' +
      '@created_at, @updated_at, @enrollment_group_id, @registered_at, @registered_via) ON CONFLICT (device_id) DO NOTHING'),
    setGroupStatus: db.prepare('UPDATE devices SET status = @status, status_reason = @status_reason, etag = @etag, updated_at = @now WHERE enrollment_group_id = @group AND (status <> @status OR status_reason IS NOT @status_reason)'),
    deleteGroupDevices: db.prepare<[string]>('DELETE FROM devices WHERE enrollment_group_id = ?'),
    getGroup: db.prepare<[string], GroupRow>('SELECT * FROM enrollment_groups WHERE enrollment_group_id = ?'),
    listGroups: db.prepare<[], GroupRow>('SELECT * FROM enrollment_groups ORDER BY enrollment_group_id'),
    upsertGroup: db.prepare('INSERT INTO enrollment_groups VALUES (@enrollment_group_id, @primary_ca, @secondary_ca, @provisioning_status, @device_id_pattern, @initial_status, @etag, @created_at, @updated_at) ' +
      'ON CONFLICT (enrollment_group_id) DO UPDATE SET primary_ca = excluded.primary_ca, secondary_ca = excluded.secondary_ca, provisioning_status = excluded.provisioning_status, ' +
      'device_id_pattern = excluded.device_id_pattern, initial_status = excluded.initial_status, etag = excluded.etag, updated_at = excluded.updated_at'),
    deleteGroup: db.prepare<[string]>('DELETE FROM enrollment_groups WHERE enrollment_group_id = ?'),
    countDevices: db.prepare<[], { status: DeviceStatus, n: number }>('SELECT status, count(*) AS n FROM devices GROUP BY status'),
    getCa: db.prepare<[string], CaRow>('SELECT * FROM cas WHERE name = ?'),
    listCas: db.prepare<[], CaRow>('SELECT * FROM cas ORDER BY name'),
    insertCa: db.prepare('INSERT INTO cas (name, certificate, subject, thumbprint, not_after, is_verified, etag, created_at, updated_at) VALUES (@name, @certificate, @subject, @thumbprint, @not_after, 0, @etag, @now, @now)'),
    replaceCa: db.prepare('UPDATE cas SET certificate = @certificate, subject = @subject, thumbprint = @thumbprint, not_after = @not_after, is_verified = 0, etag = @etag, updated_at = @now WHERE name = @name'),
    setCode: db.prepare('UPDATE cas SET verification_code = @code, verification_code_expiry = @expiry, verification_code_thumbprint = thumbprint, etag = @etag, updated_at = @now WHERE name = @name'),
    clearCode: db.prepare('UPDATE cas SET verification_code = NULL, verification_code_expiry = NULL, verification_code_thumbprint = NULL, etag = @etag, updated_at = @now WHERE name = @name'),
    verifyCa: db.prepare('UPDATE cas SET is_verified = 1, verification_code = NULL, verification_code_expiry = NULL, verification_code_thumbprint = NULL, etag = @etag, updated_at = @now WHERE name = @name'),
    deleteCa: db.prepare<[string]>('DELETE FROM cas WHERE name = ?'),
    listRevocations: db.prepare<[], RevocationRow>('SELECT * FROM revocations ORDER BY thumbprint'),
    getRevocation: db.prepare<[string], RevocationRow>('SELECT * FROM revocations WHERE thumbprint = ?'),
    upsertRevocation: db.prepare('INSERT INTO revocations VALUES (@thumbprint, @reason, @now, @now) ON CONFLICT (thumbprint) DO UPDATE SET reason = excluded.reason, updated_at = excluded.updated_at'),
    deleteRevocation: db.prepare<[string]>('DELETE FROM revocations WHERE thumbprint = ?'),
    getCrl: db.prepare<[string, string], CrlRow>('SELECT * FROM crls WHERE ca_name = ? AND issuer_thumbprint = ?'),
    listCrls: db.prepare<[], CrlRow>('SELECT * FROM crls ORDER BY ca_name, issuer_thumbprint'),
    upsertCrl: db.prepare('INSERT INTO crls (ca_name, issuer_thumbprint, issuer_certificate, ca_thumbprint, crl, issuer, this_update, next_update, crl_number, revoked_count, updated_at) ' +
      'VALUES (@ca_name, @issuer_thumbprint, @issuer_certificate, @ca_thumbprint, @crl, @issuer, @this_update, @next_update, @crl_number, @revoked_count, @updated_at) ' +
      'ON CONFLICT (ca_name, issuer_thumbprint) DO UPDATE SET issuer_certificate = excluded.issuer_certificate, ca_thumbprint = excluded.ca_thumbprint, crl = excluded.crl, issuer = excluded.issuer, this_update = excluded.this_update, ' +
      'next_update = excluded.next_update, crl_number = excluded.crl_number, revoked_count = excluded.revoked_count, updated_at = excluded.updated_at'),
    deleteCrl: db.prepare<[string, string]>('DELETE FROM crls WHERE ca_name = ? AND issuer_thumbprint = ?')
  }

  const deviceRow = (d: DeviceInput, existing: DeviceRow | undefined, now: string): DeviceRow => ({
    device_id: d.deviceId, auth_type: d.authType, primary_thumbprint: d.primaryThumbprint, secondary_thumbprint: d.secondaryThumbprint,
    status: d.status, status_reason: d.statusReason, etag: newEtag(), created_at: existing?.created_at ?? now, updated_at: now
  })

  const putDevice = db.transaction((d: DeviceInput, ifMatch: string | undefined) => {
    const existing = q.getDevice.get(d.deviceId)
    checkMatch(existing, ifMatch)
    q.upsertDevice.run(deviceRow(d, existing, nowIso()))
    // Read back: a replaced device keeps its registration columns.
    return { record: toDevice(q.getDevice.get(d.deviceId) as StoredDeviceRow), created: existing === undefined }
  })
  const importDevices = db.transaction((list: readonly DeviceInput[]) => {
    const now = nowIso()
    for (const d of list) q.upsertDevice.run(deviceRow(d, undefined, now))
    return list.length
  })
  const deleteDevice = db.transaction((id: string, ifMatch: string | undefined) => {
    checkMatch(q.getDevice.get(id), ifMatch)
    return q.deleteDevice.run(id).changes > 0
  })
  const putGroup = db.transaction((g: EnrollmentGroupInput, ifMatch: string | undefined) => {
    const existing = q.getGroup.get(g.enrollmentGroupId)
    checkMatch(existing, ifMatch)
    const now = nowIso()
    const row: GroupRow = {
      enrollment_group_id: g.enrollmentGroupId, primary_ca: g.primaryCa, secondary_ca: g.secondaryCa, provisioning_status: g.provisioningStatus,
      device_id_pattern: g.deviceIdPattern, initial_status: g.initialStatus, etag: newEtag(), created_at: existing?.created_at ?? now, updated_at: now
    }
    q.upsertGroup.run(row)
    return { record: toGroup(row), created: existing === undefined }
  })
  const deleteGroup = db.transaction((id: string, ifMatch: string | undefined) => {
    checkMatch(q.getGroup.get(id), ifMatch)
    return q.deleteGroup.run(id).changes > 0
  })
  // First-connection registrations arriving together (a storm of new devices) are written in one
  // transaction: one WAL fsync for the batch instead of one per device, on the event loop.
  interface PendingInsert { readonly row: StoredDeviceRow, readonly resolve: (r: { record: DeviceRecord, inserted: boolean }) => void, readonly reject: (err: Error) => void }
  let pendingInserts: PendingInsert[] = []
  const insertBatch = db.transaction((rows: readonly StoredDeviceRow[]) => rows.map((row) => {
    const inserted = q.insertDeviceIfAbsent.run(row).changes > 0
    return { record: toDevice(inserted ? row : q.getDevice.get(row.device_id) as StoredDeviceRow), inserted }
  }))
  const flushInserts = (): void => {
    const batch = pendingInserts
    pendingInserts = []
    let results: Array<{ record: DeviceRecord, inserted: boolean }>
    try {
      results = insertBatch(batch.map((p) => p.row))
    } catch (err) {
      for (const p of batch) p.reject(err as Error)
      return
    }
    batch.forEach((p, i) => {
      const r = results[i] as { record: DeviceRecord, inserted: boolean }
      if (r.inserted) emit({ kind: 'device', deviceId: r.record.deviceId })
      p.resolve(r)
    })
  }
  const putCa = db.transaction((ca: { name: string, certificateDer: Uint8Array, subject: string, thumbprint: string, notAfter: string }, ifMatch: string | undefined) => {
    const existing = q.getCa.get(ca.name)
    checkMatch(existing, ifMatch)
    if (existing?.thumbprint === ca.thumbprint) return { record: toCa(existing), created: false, changed: false }
    const params = { name: ca.name, certificate: Buffer.from(ca.certificateDer), subject: ca.subject, thumbprint: ca.thumbprint, not_after: ca.notAfter, etag: newEtag(), now: nowIso() }
    if (existing === undefined) q.insertCa.run(params)
    else q.replaceCa.run(params)
    return { record: toCa(q.getCa.get(ca.name) as CaRow), created: existing === undefined, changed: true }
  })
  const consume = db.transaction((name: string, code: string, thumbprint: string, now: string) => {
    const row = q.getCa.get(name)
    if (row === undefined) return undefined
    if (row.verification_code === null) return 'no_code' as const
    if (row.verification_code !== code) return 'wrong_code' as const
    // Single use: a matching code is spent whatever happens next.
    const clear = { name, etag: newEtag(), now: nowIso() }
    if (row.verification_code_thumbprint !== row.thumbprint || row.thumbprint !== thumbprint) { q.clearCode.run(clear); return 'certificate_replaced' as const }
    if ((row.verification_code_expiry ?? '') <= now) { q.clearCode.run(clear); return 'expired_code' as const }
    q.verifyCa.run(clear)
    return toCa(q.getCa.get(name) as CaRow)
  })
  const deleteCa = db.transaction((name: string, ifMatch: string | undefined) => {
    checkMatch(q.getCa.get(name), ifMatch)
    return q.deleteCa.run(name).changes > 0
  })

  const putRevocation = db.transaction((thumbprint: string, reason: string | null) => {
    const created = q.getRevocation.get(thumbprint) === undefined
    q.upsertRevocation.run({ thumbprint, reason, now: nowIso() })
    return { record: toRevocation(q.getRevocation.get(thumbprint) as RevocationRow), created }
  })
  const putCrl = db.transaction((crl: CrlInput): CrlRecord | 'stale' | 'ca_changed' => {
    if (q.getCa.get(crl.caName)?.thumbprint !== crl.caThumbprint) return 'ca_changed'
    const held = q.getCrl.get(crl.caName, crl.issuerThumbprint ?? '')
    if (held !== undefined && held.ca_thumbprint === crl.caThumbprint && isOlderCrl(crl, { crlNumber: held.crl_number, thisUpdate: held.this_update })) return 'stale'
    const row: CrlRow = {
      ca_name: crl.caName, issuer_thumbprint: crl.issuerThumbprint ?? '', issuer_certificate: crl.issuerCertificateDer === null ? null : Buffer.from(crl.issuerCertificateDer),
      ca_thumbprint: crl.caThumbprint, crl: Buffer.from(crl.der), issuer: crl.issuer, this_update: crl.thisUpdate,
      next_update: crl.nextUpdate, crl_number: crl.crlNumber, revoked_count: crl.revokedCount, updated_at: nowIso()
    }
    q.upsertCrl.run(row)
    return toCrl(row)
  })

  return {
    getDevice: async (id) => { const r = q.getDevice.get(id); return r === undefined ? undefined : toDevice(r) },
    listDevices: async ({ after, limit, enrollmentGroupId }) => {
      const rows = enrollmentGroupId === undefined ? q.listDevices.all(after ?? '', limit + 1) : q.listGroupDevices.all(enrollmentGroupId, after ?? '', limit + 1)
      const items = rows.slice(0, limit).map(toDevice)
      return { items, next: rows.length > limit ? items[items.length - 1]?.deviceId : undefined }
    },
    putDevice: async (d, ifMatch) => { const r = putDevice(d, ifMatch); emit({ kind: 'device', deviceId: d.deviceId }); return r },
    importDevices: async (list) => { const n = importDevices(list); emit({ kind: 'bulk' }); return n },
    deleteDevice: async (id, ifMatch) => { const r = deleteDevice(id, ifMatch); if (r) emit({ kind: 'device', deviceId: id }); return r },
    insertDeviceIfAbsent: async (d, registration) => await new Promise((resolve, reject) => {
      pendingInserts.push({ row: { ...deviceRow(d, undefined, nowIso()), ...registrationColumns(registration) }, resolve, reject })
      if (pendingInserts.length === 1) setImmediate(flushInserts)
    }),
    setGroupDevicesStatus: async (group, status, statusReason) => {
      const n = q.setGroupStatus.run({ group, status, status_reason: statusReason, etag: newEtag(), now: nowIso() }).changes
      if (n > 0) emit({ kind: 'bulk' })
      return n
    },
    deleteGroupDevices: async (group) => {
      const n = q.deleteGroupDevices.run(group).changes
      if (n > 0) emit({ kind: 'bulk' })
      return n
    },
    getEnrollmentGroup: async (id) => { const r = q.getGroup.get(id); return r === undefined ? undefined : toGroup(r) },
    listEnrollmentGroups: async () => q.listGroups.all().map(toGroup),
    putEnrollmentGroup: async (g, ifMatch) => { const r = putGroup(g, ifMatch); emit({ kind: 'enrollmentGroup', enrollmentGroupId: g.enrollmentGroupId }); return r },
    deleteEnrollmentGroup: async (id, ifMatch) => { const r = deleteGroup(id, ifMatch); if (r) emit({ kind: 'enrollmentGroup', enrollmentGroupId: id }); return r },
    countDevices: async () => {
      const out: Record<DeviceStatus, number> = { enabled: 0, disabled: 0 }
      for (const r of q.countDevices.all()) out[r.status] = r.n
      return out
    },
    getCa: async (name) => { const r = q.getCa.get(name); return r === undefined ? undefined : toCa(r) },
    listCas: async () => q.listCas.all().map(toCa),
    putCa: async (ca, ifMatch) => {
      const { record, created, changed } = putCa(ca, ifMatch)
      if (changed) emit({ kind: 'ca', name: ca.name })
      return { record, created }
    },
    setVerificationCode: async (name, code, expiry) => {
      if (q.setCode.run({ name, code, expiry, etag: newEtag(), now: nowIso() }).changes === 0) return undefined
      return toCa(q.getCa.get(name) as CaRow)
    },
    consumeVerificationCode: async (name, code, thumbprint, now) => {
      const r = consume(name, code, thumbprint, now)
      if (typeof r === 'object') emit({ kind: 'ca', name })
      return r
    },
    deleteCa: async (name, ifMatch) => { const r = deleteCa(name, ifMatch); if (r) emit({ kind: 'ca', name }); return r },
    listRevocations: async () => q.listRevocations.all().map(toRevocation),
    putRevocation: async (thumbprint, reason) => { const r = putRevocation(thumbprint, reason); emit({ kind: 'revocation' }); return r },
    deleteRevocation: async (thumbprint) => { const r = q.deleteRevocation.run(thumbprint).changes > 0; if (r) emit({ kind: 'revocation' }); return r },
    getCrl: async (name, issuer) => { const r = q.getCrl.get(name, issuer ?? ''); return r === undefined ? undefined : toCrl(r) },
    listCrls: async () => q.listCrls.all().map(toCrl),
    putCrl: async (crl) => { const r = putCrl(crl); if (typeof r === 'object') emit({ kind: 'revocation' }); return r },
    deleteCrl: async (name, issuer) => { const r = q.deleteCrl.run(name, issuer ?? '').changes > 0; if (r) emit({ kind: 'revocation' }); return r },
    onChange: (listener) => { events.on('change', listener); return () => events.off('change', listener) },
    close: async () => { db.close() }
  }
}

function migrate (db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number
  if (version > MIGRATIONS.length) throw new Error(`the registry database is at schema version ${version}, newer than this certgate (${MIGRATIONS.length}); upgrade certgate`)
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] as string)
      db.pragma(`user_version = ${v + 1}`)
    })()
  }
}
