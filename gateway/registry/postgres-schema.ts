// The PostgreSQL registry's schema: versioned migrations (applied at open under an advisory
// lock, so gateways starting together migrate once), the row shapes and their mapping to
// records, and the statements shared by several operations. Talks to the database only through
// the small SqlSession interface, so `pg` stays in postgres-registry.ts.
import type { CaRecord, CrlRecord, DeviceRecord, DeviceStatus, RevocationRecord } from './types.js'
import { toRegistration, type RegistrationColumns } from './enrollment-rows.js'

/** What this module needs of a database session (a pg client fits). */
export interface SqlSession {
  query: (sql: string, params?: unknown[]) => Promise<{ rows: unknown[] }>
}

// pg_advisory_xact_lock key for migrations: any constant shared by every certgate ("cgmg").
const MIGRATION_LOCK = 0x63676d67

const MIGRATIONS: readonly string[] = [
  // COLLATE "C": deviceIds page in code-unit order, as on SQLite, whatever the database locale.
  `CREATE TABLE devices (
     device_id TEXT COLLATE "C" PRIMARY KEY,
     auth_type TEXT NOT NULL CHECK (auth_type IN ('certificateAuthority', 'selfSigned')),
     primary_thumbprint TEXT,
     secondary_thumbprint TEXT,
     status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
     status_reason TEXT,
     etag TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE cas (
     name TEXT COLLATE "C" PRIMARY KEY,
     certificate BYTEA NOT NULL,
     subject TEXT NOT NULL,
     thumbprint TEXT NOT NULL,
     not_after TEXT NOT NULL,
     is_verified BOOLEAN NOT NULL DEFAULT false,
     verification_code TEXT,
     verification_code_expiry TEXT,
     verification_code_thumbprint TEXT,
     etag TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE audit_log (
     id BIGSERIAL PRIMARY KEY,
     time TIMESTAMPTZ NOT NULL,
     caller TEXT NOT NULL,
     action TEXT NOT NULL,
     resource TEXT NOT NULL,
     result TEXT NOT NULL,
     status INTEGER NOT NULL,
     error TEXT
   );`,
  // Revocation: the deny-list, and one CRL per CA (dropped with its CA).
  `CREATE TABLE revocations (
     thumbprint TEXT COLLATE "C" PRIMARY KEY,
     reason TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE crls (
     ca_name TEXT COLLATE "C" PRIMARY KEY REFERENCES cas (name) ON DELETE CASCADE,
     ca_thumbprint TEXT NOT NULL,
     crl BYTEA NOT NULL,
     issuer TEXT NOT NULL,
     this_update TEXT NOT NULL,
     next_update TEXT,
     crl_number TEXT,
     revoked_count INTEGER NOT NULL,
     updated_at TEXT NOT NULL
   );`,
  // Enrollment groups, and which group registered a device (NULL: added by an operator).
  `ALTER TABLE devices ADD COLUMN enrollment_group_id TEXT COLLATE "C", ADD COLUMN registered_at TEXT, ADD COLUMN registered_via TEXT;
   CREATE INDEX devices_by_group ON devices (enrollment_group_id, device_id) WHERE enrollment_group_id IS NOT NULL;
   CREATE TABLE enrollment_groups (
     enrollment_group_id TEXT COLLATE "C" PRIMARY KEY,
     primary_ca TEXT NOT NULL,
     secondary_ca TEXT,
     provisioning_status TEXT NOT NULL CHECK (provisioning_status IN ('enabled', 'disabled')),
     device_id_pattern TEXT,
     initial_status TEXT NOT NULL CHECK (initial_status IN ('enabled', 'disabled')),
     etag TEXT NOT NULL,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );`,
  // 4: reserved for the per-CA settings (crlUrls, OCSP) of a parallel branch; on merge, theirs goes here.
  'SELECT 1;',
  // 5: CRLs per (CA, issuer): besides the CA's own (issuer_thumbprint ''), one per intermediate under
  // it that signs CRLs for the certificates it issued (RFC 5280 §6.3.3 (f)).
  `ALTER TABLE crls ADD COLUMN issuer_thumbprint TEXT COLLATE "C" NOT NULL DEFAULT '', ADD COLUMN issuer_certificate BYTEA;
   ALTER TABLE crls DROP CONSTRAINT crls_pkey, ADD PRIMARY KEY (ca_name, issuer_thumbprint);`
]

export interface DeviceRow {
  device_id: string, auth_type: DeviceRecord['authType'], primary_thumbprint: string | null, secondary_thumbprint: string | null,
  status: DeviceStatus, status_reason: string | null, etag: string, created_at: string, updated_at: string
}
export interface CaRow {
  name: string, certificate: Buffer, subject: string, thumbprint: string, not_after: string, is_verified: boolean,
  verification_code: string | null, verification_code_expiry: string | null, verification_code_thumbprint: string | null,
  etag: string, created_at: string, updated_at: string
}

export interface RevocationRow { thumbprint: string, reason: string | null, created_at: string, updated_at: string }
export interface CrlRow {
  ca_name: string, issuer_thumbprint: string, issuer_certificate: Buffer | null, ca_thumbprint: string, crl: Buffer, issuer: string, this_update: string, next_update: string | null,
  crl_number: string | null, revoked_count: number, updated_at: string
}

export const toRevocation = (r: RevocationRow): RevocationRecord => ({ thumbprint: r.thumbprint, reason: r.reason, createdAt: r.created_at, updatedAt: r.updated_at })
export const toCrl = (r: CrlRow): CrlRecord => ({
  caName: r.ca_name, caThumbprint: r.ca_thumbprint, issuerThumbprint: r.issuer_thumbprint === '' ? null : r.issuer_thumbprint,
  issuerCertificateDer: r.issuer_certificate === null ? null : new Uint8Array(r.issuer_certificate), der: new Uint8Array(r.crl), issuer: r.issuer, thisUpdate: r.this_update,
  nextUpdate: r.next_update, crlNumber: r.crl_number, revokedCount: r.revoked_count, updatedAt: r.updated_at
})

export function toDevice (r: DeviceRow & Partial<RegistrationColumns>): DeviceRecord {
  const registration = r.enrollment_group_id === undefined ? undefined : toRegistration({ enrollment_group_id: r.enrollment_group_id, registered_at: r.registered_at ?? null, registered_via: r.registered_via ?? null })
  return {
    deviceId: r.device_id, authType: r.auth_type, primaryThumbprint: r.primary_thumbprint, secondaryThumbprint: r.secondary_thumbprint,
    status: r.status, statusReason: r.status_reason, etag: r.etag, createdAt: r.created_at, updatedAt: r.updated_at,
    ...(registration === undefined ? {} : { registration })
  }
}

export function toCa (r: CaRow): CaRecord {
  return {
    name: r.name, certificateDer: new Uint8Array(r.certificate), subject: r.subject, thumbprint: r.thumbprint, notAfter: r.not_after,
    isVerified: r.is_verified, verificationCode: r.verification_code, verificationCodeExpiry: r.verification_code_expiry,
    verificationCodeFor: r.verification_code_thumbprint, etag: r.etag, createdAt: r.created_at, updatedAt: r.updated_at
  }
}

// The registration columns are left alone on replace: a registered device stays its group's.
export const UPSERT_DEVICES = `INSERT INTO devices (device_id, auth_type, primary_thumbprint, secondary_thumbprint, status, status_reason, etag, created_at, updated_at)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
  ON CONFLICT (device_id) DO UPDATE SET auth_type = excluded.auth_type, primary_thumbprint = excluded.primary_thumbprint,
    secondary_thumbprint = excluded.secondary_thumbprint, status = excluded.status, status_reason = excluded.status_reason,
    etag = excluded.etag, updated_at = excluded.updated_at`

export function deviceColumns (rows: readonly DeviceRow[]): unknown[] {
  const keys = ['device_id', 'auth_type', 'primary_thumbprint', 'secondary_thumbprint', 'status', 'status_reason', 'etag', 'created_at', 'updated_at'] as const
  return keys.map((k) => rows.map((r) => r[k]))
}

/** Brings the schema up to date in one transaction; refuses a database from a newer certgate. */
export async function migrate (c: SqlSession): Promise<void> {
  try {
    await c.query('BEGIN')
    // Two gateways starting at once: the second waits here, then finds the schema current.
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
    await c.query('CREATE TABLE IF NOT EXISTS certgate_schema (version INTEGER NOT NULL)')
    const row = (await c.query('SELECT version FROM certgate_schema')).rows[0] as { version: number } | undefined
    if (row === undefined) await c.query('INSERT INTO certgate_schema (version) VALUES (0)')
    const version = row?.version ?? 0
    if (version > MIGRATIONS.length) throw new Error(`the registry database is at schema version ${version}, newer than this certgate (${MIGRATIONS.length}); upgrade certgate`)
    for (let v = version; v < MIGRATIONS.length; v++) await c.query(MIGRATIONS[v] as string)
    await c.query('UPDATE certgate_schema SET version = $1', [Math.max(version, MIGRATIONS.length)])
    await c.query('COMMIT')
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined)
    throw err
  }
}
