// The fleet registry: PostgreSQL through `pg` (a Pool for queries, one dedicated client for
// LISTEN). Same contract and semantics as the SQLite registry; every mutation NOTIFYs its change
// in the same transaction, so every gateway on the database hears every change (its own are
// emitted once, locally, at commit). Versioned migrations (postgres-schema.ts) run at open under
// an advisory lock, so gateways starting together migrate once. Losing the LISTEN session fails closed: every call
// throws until it is back (a gateway that cannot hear revocations must not admit devices);
// it reconnects by itself with bounded, jittered backoff and then emits one `bulk` change so
// whatever it missed is caught up. Only importer of pg.
import { EventEmitter } from 'node:events'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { PreconditionFailed, type DeviceInput, type DeviceRecord, type DeviceStatus, type Registry, type RegistryChange } from './types.js'
import { UPSERT_DEVICES, deviceColumns, migrate, toCa, toCrl, toDevice, toRevocation, type CaRow, type CrlRow, type DeviceRow, type RevocationRow } from './postgres-schema.js'
import { isOlderCrl } from './crl-order.js'
import { registrationColumns, toGroup, type GroupRow, type RegistrationColumns } from './enrollment-rows.js'
import { settingsJson } from './settings-column.js'
import { errorMessage } from '../../workers/errors.js'

const CHANNEL = 'certgate_registry'

/** One audit record, as the admin API writes it. */
export interface AuditRow {
  readonly time: string, readonly caller: string, readonly action: string, readonly resource: string,
  readonly result: string, readonly status: number, readonly error: string | undefined
}

export interface PostgresRegistry extends Registry {
  appendAudit: (row: AuditRow) => Promise<void>
}

export type ConnectionState = { readonly state: 'lost', readonly error: Error, readonly retryInMs: number } | { readonly state: 'restored' }

export interface PostgresRegistryOptions {
  readonly url: string
  readonly poolSize?: number
  /** Reconnect backoff: doubles from min to max, jittered. */
  readonly reconnectMinMs?: number
  readonly reconnectMaxMs?: number
  /** How often the LISTEN session is pinged, to notice a connection that died silently. */
  readonly pingIntervalMs?: number
  readonly onState?: (s: ConnectionState) => void
}

const newEtag = (): string => randomBytes(9).toString('base64url')
const nowIso = (): string => new Date().toISOString()

function checkMatch (stored: { etag: string } | undefined, ifMatch: string | undefined): void {
  if (ifMatch === undefined) return
  if (ifMatch === '*' ? stored === undefined : stored?.etag !== ifMatch) throw new PreconditionFailed(`If-Match ${ifMatch} does not match the current etag`)
}

/** The URL without its password, for messages. */
export function redactUrl (url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, '$1:***@').replace(/([?&]password=)[^&]*/i, '$1***')
}

export async function openPostgresRegistry (opts: PostgresRegistryOptions): Promise<PostgresRegistry> {
  const where = redactUrl(opts.url)
  const clientConfig = { connectionString: opts.url, connectionTimeoutMillis: 3000, keepAlive: true, query_timeout: 30_000 }
  const pool = new pg.Pool({ ...clientConfig, max: opts.poolSize ?? 10 })
  // An idle pooled client whose server went away emits here; the next query reconnects.
  pool.on('error', () => undefined)
  const origin = randomBytes(9).toString('base64url')
  const events = new EventEmitter()
  const emit = (c: RegistryChange): void => {
    // A listener's failure must not turn a committed write into a reported failure.
    try { events.emit('change', c) } catch (err) { process.emitWarning(`registry change listener failed: ${errorMessage(err)}`) }
  }

  try {
    const session = await pool.connect()
    try { await migrate(session) } finally { session.release() }
  } catch (err) {
    await pool.end()
    throw new Error(`the PostgreSQL registry at ${where} could not be opened: ${errorMessage(err)}`, { cause: err })
  }

  // The change feed: while it is down, nothing is served (fail closed).
  let listener: pg.Client | undefined
  let closing = false
  let attempt = 0
  let reconnectTimer: NodeJS.Timeout | undefined
  const minMs = opts.reconnectMinMs ?? 100
  const maxMs = opts.reconnectMaxMs ?? 5000

  async function listen (): Promise<pg.Client> {
    const client = new pg.Client(clientConfig)
    client.on('error', (err) => { lost(client, err) })
    client.on('end', () => { lost(client, new Error('the LISTEN session ended')) })
    client.on('notification', (n) => { if (n.channel === CHANNEL) heard(n.payload) })
    try {
      await client.connect()
      await client.query(`LISTEN ${CHANNEL}`)
    } catch (err) {
      client.removeAllListeners('end')
      await client.end().catch(() => undefined)
      throw err
    }
    return client
  }

  function heard (payload: string | undefined): void {
    let msg: { origin?: unknown, change?: RegistryChange }
    try { msg = JSON.parse(payload ?? '') as typeof msg } catch { msg = {} }
    if (msg.origin === origin) return // our own write: emitted at commit
    // An unreadable notification still means "something changed": recheck everything.
    emit(msg.change ?? { kind: 'bulk' })
  }

  function lost (client: pg.Client, error: Error): void {
    if (client !== listener || closing) return
    listener = undefined
    client.removeAllListeners('end')
    client.end().catch(() => undefined)
    reconnectLater(error)
  }

  function reconnectLater (error: Error): void {
    const retryInMs = Math.round(Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20)) * (0.5 + Math.random() / 2))
    attempt++
    opts.onState?.({ state: 'lost', error, retryInMs })
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined
      listen().then((client) => {
        if (closing) { void client.end(); return }
        listener = client
        attempt = 0
        opts.onState?.({ state: 'restored' })
        // Changes made while we were away were not heard: recheck everything.
        emit({ kind: 'bulk' })
      }, (err: unknown) => { if (!closing) reconnectLater(err as Error) })
    }, retryInMs)
  }

  try {
    listener = await listen()
  } catch (err) {
    await pool.end()
    throw new Error(`the PostgreSQL registry at ${where} could not be opened: ${errorMessage(err)}`, { cause: err })
  }

  // A session can die without a FIN (a partition, a killed VM): a ping notices within seconds.
  const ping = setInterval(() => {
    const client = listener
    if (client === undefined) return
    const timeout = new Promise<never>((_resolve, reject) => setTimeout(() => { reject(new Error('the LISTEN session did not answer a ping')) }, 3000).unref())
    Promise.race([client.query('SELECT 1'), timeout]).catch((err: unknown) => { lost(client, err as Error) })
  }, opts.pingIntervalMs ?? 5000)
  ping.unref()

  function available (): void {
    if (closing) throw new Error('the registry is closed')
    if (listener === undefined) throw new Error(`the PostgreSQL registry at ${where} is unreachable (reconnecting); refusing until it is back`)
  }

  async function read<R extends pg.QueryResultRow> (sql: string, params: unknown[] = []): Promise<R[]> {
    available()
    return (await pool.query<R>(sql, params)).rows
  }

  /** Runs `fn` in one transaction; `changes` it returns are NOTIFYd inside it and emitted after COMMIT. */
  async function tx<T> (fn: (c: pg.PoolClient) => Promise<{ result: T, changes: readonly RegistryChange[] }>): Promise<T> {
    available()
    const c = await pool.connect()
    let broken = false
    try {
      await c.query('BEGIN')
      const { result, changes } = await fn(c)
      for (const change of changes) await c.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify({ origin, change })])
      await c.query('COMMIT')
      for (const change of changes) emit(change)
      return result
    } catch (err) {
      await c.query('ROLLBACK').catch(() => { broken = true })
      throw err
    } finally {
      c.release(broken)
    }
  }

  const one = async <R extends pg.QueryResultRow>(c: pg.PoolClient, sql: string, params: unknown[]): Promise<R | undefined> => (await c.query<R>(sql, params)).rows[0]
  const deviceRow = (d: DeviceInput, now: string): DeviceRow => ({
    device_id: d.deviceId, auth_type: d.authType, primary_thumbprint: d.primaryThumbprint, secondary_thumbprint: d.secondaryThumbprint,
    status: d.status, status_reason: d.statusReason, etag: newEtag(), created_at: now, updated_at: now
  })
  const closed = { promise: undefined as Promise<void> | undefined }

  return {
    getDevice: async (id) => { const [r] = await read<DeviceRow>('SELECT * FROM devices WHERE device_id = $1', [id]); return r === undefined ? undefined : toDevice(r) },
    listDevices: async ({ after, limit, enrollmentGroupId }) => {
      const rows = enrollmentGroupId === undefined
        ? await read<DeviceRow>('SELECT * FROM devices WHERE device_id > $1 ORDER BY device_id LIMIT $2', [after ?? '', limit + 1])
        : await read<DeviceRow>('SELECT * FROM devices WHERE enrollment_group_id = $3 AND device_id > $1 ORDER BY device_id LIMIT $2', [after ?? '', limit + 1, enrollmentGroupId])
      const items = rows.slice(0, limit).map(toDevice)
      return { items, next: rows.length > limit ? items[items.length - 1]?.deviceId : undefined }
    },
    putDevice: async (d, ifMatch) => await tx(async (c) => {
      const existing = await one<DeviceRow & RegistrationColumns>(c, 'SELECT * FROM devices WHERE device_id = $1 FOR UPDATE', [d.deviceId])
      checkMatch(existing, ifMatch)
      const row = { ...deviceRow(d, nowIso()), ...(existing === undefined ? {} : { created_at: existing.created_at }) }
      await c.query(UPSERT_DEVICES, deviceColumns([row]))
      // A replaced device keeps its registration columns.
      const kept = existing === undefined ? row : { ...row, enrollment_group_id: existing.enrollment_group_id, registered_at: existing.registered_at, registered_via: existing.registered_via }
      return { result: { record: toDevice(kept), created: existing === undefined }, changes: [{ kind: 'device', deviceId: d.deviceId }] }
    }),
    importDevices: async (list) => await tx(async (c) => {
      const now = nowIso()
      // One row per deviceId (the last wins, as when applied one by one): ON CONFLICT may not touch a row twice.
      const byId = new Map<string, DeviceRow>()
      for (const d of list) { byId.delete(d.deviceId); byId.set(d.deviceId, deviceRow(d, now)) }
      const rows = [...byId.values()]
      for (let i = 0; i < rows.length; i += 5000) await c.query(UPSERT_DEVICES, deviceColumns(rows.slice(i, i + 5000)))
      return { result: list.length, changes: [{ kind: 'bulk' }] }
    }),
    deleteDevice: async (id, ifMatch) => await tx(async (c) => {
      checkMatch(await one<DeviceRow>(c, 'SELECT * FROM devices WHERE device_id = $1 FOR UPDATE', [id]), ifMatch)
      const deleted = ((await c.query('DELETE FROM devices WHERE device_id = $1', [id])).rowCount ?? 0) > 0
      return { result: deleted, changes: deleted ? [{ kind: 'device', deviceId: id }] : [] }
    }),
    insertDeviceIfAbsent: async (d, registration) => await tx<{ record: DeviceRecord, inserted: boolean }>(async (c) => {
      const row = { ...deviceRow(d, nowIso()), ...registrationColumns(registration) }
      // A racing insert of the same deviceId waits for the other transaction, then does nothing;
      // the winner's row is then visible to the next statement (READ COMMITTED).
      const inserted = await one<DeviceRow>(c, 'INSERT INTO devices (device_id, auth_type, primary_thumbprint, secondary_thumbprint, status, status_reason, etag, created_at, updated_at, ' +
        'enrollment_group_id, registered_at, registered_via) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (device_id) DO NOTHING RETURNING *',
      [row.device_id, row.auth_type, row.primary_thumbprint, row.secondary_thumbprint, row.status, row.status_reason, row.etag, row.created_at, row.updated_at,
        row.enrollment_group_id, row.registered_at, row.registered_via])
      if (inserted !== undefined) return { result: { record: toDevice(inserted), inserted: true }, changes: [{ kind: 'device', deviceId: d.deviceId }] }
      const winner = await one<DeviceRow>(c, 'SELECT * FROM devices WHERE device_id = $1', [d.deviceId])
      if (winner === undefined) throw new Error(`device "${d.deviceId}" was deleted while being registered`)
      return { result: { record: toDevice(winner), inserted: false }, changes: [] }
    }),
    setGroupDevicesStatus: async (group, status, statusReason) => await tx(async (c) => {
      const n = (await c.query('UPDATE devices SET status = $2, status_reason = $3, etag = $4, updated_at = $5 WHERE enrollment_group_id = $1 AND (status <> $2 OR status_reason IS DISTINCT FROM $3)',
        [group, status, statusReason, newEtag(), nowIso()])).rowCount ?? 0
      return { result: n, changes: n > 0 ? [{ kind: 'bulk' }] : [] }
    }),
    deleteGroupDevices: async (group) => await tx(async (c) => {
      const n = (await c.query('DELETE FROM devices WHERE enrollment_group_id = $1', [group])).rowCount ?? 0
      return { result: n, changes: n > 0 ? [{ kind: 'bulk' }] : [] }
    }),
    getEnrollmentGroup: async (id) => { const [r] = await read<GroupRow>('SELECT * FROM enrollment_groups WHERE enrollment_group_id = $1', [id]); return r === undefined ? undefined : toGroup(r) },
    listEnrollmentGroups: async () => (await read<GroupRow>('SELECT * FROM enrollment_groups ORDER BY enrollment_group_id')).map(toGroup),
    putEnrollmentGroup: async (g, ifMatch) => await tx(async (c) => {
      const existing = await one<GroupRow>(c, 'SELECT * FROM enrollment_groups WHERE enrollment_group_id = $1 FOR UPDATE', [g.enrollmentGroupId])
      checkMatch(existing, ifMatch)
      const now = nowIso()
      const row = await one<GroupRow>(c, 'INSERT INTO enrollment_groups VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (enrollment_group_id) DO UPDATE SET primary_ca = excluded.primary_ca, ' +
        'secondary_ca = excluded.secondary_ca, provisioning_status = excluded.provisioning_status, device_id_pattern = excluded.device_id_pattern, initial_status = excluded.initial_status, ' +
        'etag = excluded.etag, updated_at = excluded.updated_at RETURNING *',
      [g.enrollmentGroupId, g.primaryCa, g.secondaryCa, g.provisioningStatus, g.deviceIdPattern, g.initialStatus, newEtag(), now])
      return { result: { record: toGroup(row as GroupRow), created: existing === undefined }, changes: [{ kind: 'enrollmentGroup', enrollmentGroupId: g.enrollmentGroupId }] }
    }),
    deleteEnrollmentGroup: async (id, ifMatch) => await tx(async (c) => {
      checkMatch(await one<GroupRow>(c, 'SELECT * FROM enrollment_groups WHERE enrollment_group_id = $1 FOR UPDATE', [id]), ifMatch)
      const deleted = ((await c.query('DELETE FROM enrollment_groups WHERE enrollment_group_id = $1', [id])).rowCount ?? 0) > 0
      return { result: deleted, changes: deleted ? [{ kind: 'enrollmentGroup', enrollmentGroupId: id }] : [] }
    }),
    countDevices: async () => {
      const out: Record<DeviceStatus, number> = { enabled: 0, disabled: 0 }
      for (const r of await read<{ status: DeviceStatus, n: number }>('SELECT status, count(*)::int AS n FROM devices GROUP BY status')) out[r.status] = r.n
      return out
    },
    getCa: async (name) => { const [r] = await read<CaRow>('SELECT * FROM cas WHERE name = $1', [name]); return r === undefined ? undefined : toCa(r) },
    listCas: async () => (await read<CaRow>('SELECT * FROM cas ORDER BY name')).map(toCa),
    putCa: async (ca, ifMatch) => await tx(async (c) => {
      const existing = await one<CaRow>(c, 'SELECT * FROM cas WHERE name = $1 FOR UPDATE', [ca.name])
      checkMatch(existing, ifMatch)
      const settings = ca.settings === undefined ? null : settingsJson(ca.settings)
      if (existing?.thumbprint === ca.thumbprint) {
        if (existing.revocation_settings === settings) return { result: { record: toCa(existing), created: false }, changes: [] }
        // The same certificate with other settings: only the settings change (it stays verified).
        const updated = await one<CaRow>(c, 'UPDATE cas SET revocation_settings = $2, etag = $3, updated_at = $4 WHERE name = $1 RETURNING *', [ca.name, settings, newEtag(), nowIso()])
        return { result: { record: toCa(updated as CaRow), created: false }, changes: [{ kind: 'ca', name: ca.name }] }
      }
      const p = [ca.name, Buffer.from(ca.certificateDer), ca.subject, ca.thumbprint, ca.notAfter, newEtag(), nowIso(), settings]
      const row = existing === undefined
        ? await one<CaRow>(c, 'INSERT INTO cas (name, certificate, subject, thumbprint, not_after, is_verified, etag, created_at, updated_at, revocation_settings) VALUES ($1, $2, $3, $4, $5, false, $6, $7, $7, $8) RETURNING *', p)
        : await one<CaRow>(c, 'UPDATE cas SET certificate = $2, subject = $3, thumbprint = $4, not_after = $5, is_verified = false, etag = $6, updated_at = $7, revocation_settings = $8 WHERE name = $1 RETURNING *', p)
      return { result: { record: toCa(row as CaRow), created: existing === undefined }, changes: [{ kind: 'ca', name: ca.name }] }
    }),
    setVerificationCode: async (name, code, expiry) => {
      const [r] = await read<CaRow>('UPDATE cas SET verification_code = $2, verification_code_expiry = $3, verification_code_thumbprint = thumbprint, etag = $4, updated_at = $5 WHERE name = $1 RETURNING *',
        [name, code, expiry, newEtag(), nowIso()])
      return r === undefined ? undefined : toCa(r)
    },
    consumeVerificationCode: async (name, code, thumbprint, now) => await tx<Awaited<ReturnType<Registry['consumeVerificationCode']>>>(async (c) => {
      const row = await one<CaRow>(c, 'SELECT * FROM cas WHERE name = $1 FOR UPDATE', [name])
      if (row === undefined) return { result: undefined, changes: [] }
      if (row.verification_code === null) return { result: 'no_code' as const, changes: [] }
      if (row.verification_code !== code) return { result: 'wrong_code' as const, changes: [] }
      // Single use: a matching code is spent whatever happens next.
      const clear = [name, newEtag(), nowIso()]
      const clearSql = 'UPDATE cas SET verification_code = NULL, verification_code_expiry = NULL, verification_code_thumbprint = NULL, etag = $2, updated_at = $3 WHERE name = $1'
      if (row.verification_code_thumbprint !== row.thumbprint || row.thumbprint !== thumbprint) { await c.query(clearSql, clear); return { result: 'certificate_replaced' as const, changes: [] } }
      if ((row.verification_code_expiry ?? '') <= now) { await c.query(clearSql, clear); return { result: 'expired_code' as const, changes: [] } }
      const verified = await one<CaRow>(c, 'UPDATE cas SET is_verified = true, verification_code = NULL, verification_code_expiry = NULL, verification_code_thumbprint = NULL, etag = $2, updated_at = $3 WHERE name = $1 RETURNING *', clear)
      return { result: toCa(verified as CaRow), changes: [{ kind: 'ca', name }] }
    }),
    deleteCa: async (name, ifMatch) => await tx(async (c) => {
      checkMatch(await one<CaRow>(c, 'SELECT * FROM cas WHERE name = $1 FOR UPDATE', [name]), ifMatch)
      const deleted = ((await c.query('DELETE FROM cas WHERE name = $1', [name])).rowCount ?? 0) > 0
      return { result: deleted, changes: deleted ? [{ kind: 'ca', name }] : [] }
    }),
    listRevocations: async () => (await read<RevocationRow>('SELECT * FROM revocations ORDER BY thumbprint')).map(toRevocation),
    putRevocation: async (thumbprint, reason) => await tx(async (c) => {
      const now = nowIso()
      // xmax = 0 only for a freshly inserted row: tells created from replaced in one statement.
      const row = await one<RevocationRow & { inserted: boolean }>(c, 'INSERT INTO revocations VALUES ($1, $2, $3, $3) ON CONFLICT (thumbprint) DO UPDATE SET reason = excluded.reason, updated_at = excluded.updated_at RETURNING *, (xmax = 0) AS inserted', [thumbprint, reason, now])
      return { result: { record: toRevocation(row as RevocationRow), created: row?.inserted === true }, changes: [{ kind: 'revocation' }] }
    }),
    deleteRevocation: async (thumbprint) => await tx(async (c) => {
      const deleted = ((await c.query('DELETE FROM revocations WHERE thumbprint = $1', [thumbprint])).rowCount ?? 0) > 0
      return { result: deleted, changes: deleted ? [{ kind: 'revocation' }] : [] }
    }),
    getCrl: async (name, issuer) => { const [r] = await read<CrlRow>('SELECT * FROM crls WHERE ca_name = $1 AND issuer_thumbprint = $2', [name, issuer ?? '']); return r === undefined ? undefined : toCrl(r) },
    listCrls: async () => (await read<CrlRow>('SELECT * FROM crls ORDER BY ca_name, issuer_thumbprint')).map(toCrl),
    putCrl: async (crl) => await tx<Awaited<ReturnType<Registry['putCrl']>>>(async (c) => {
      const ca = await one<CaRow>(c, 'SELECT * FROM cas WHERE name = $1 FOR UPDATE', [crl.caName])
      if (ca?.thumbprint !== crl.caThumbprint) return { result: 'ca_changed' as const, changes: [] }
      const issuer = crl.issuerThumbprint ?? ''
      const held = await one<CrlRow>(c, 'SELECT * FROM crls WHERE ca_name = $1 AND issuer_thumbprint = $2 FOR UPDATE', [crl.caName, issuer])
      if (held !== undefined && held.ca_thumbprint === crl.caThumbprint && isOlderCrl(crl, { crlNumber: held.crl_number, thisUpdate: held.this_update })) return { result: 'stale' as const, changes: [] }
      const row = await one<CrlRow>(c, 'INSERT INTO crls (ca_name, ca_thumbprint, crl, issuer, this_update, next_update, crl_number, revoked_count, updated_at, issuer_thumbprint, issuer_certificate) ' +
        'VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (ca_name, issuer_thumbprint) DO UPDATE SET ca_thumbprint = excluded.ca_thumbprint, crl = excluded.crl, ' +
        'issuer = excluded.issuer, this_update = excluded.this_update, next_update = excluded.next_update, crl_number = excluded.crl_number, revoked_count = excluded.revoked_count, ' +
        'updated_at = excluded.updated_at, issuer_certificate = excluded.issuer_certificate RETURNING *',
      [crl.caName, crl.caThumbprint, Buffer.from(crl.der), crl.issuer, crl.thisUpdate, crl.nextUpdate, crl.crlNumber, crl.revokedCount, nowIso(), issuer,
        crl.issuerCertificateDer === null ? null : Buffer.from(crl.issuerCertificateDer)])
      return { result: toCrl(row as CrlRow), changes: [{ kind: 'revocation' }] }
    }),
    deleteCrl: async (name, issuer) => await tx(async (c) => {
      const deleted = ((await c.query('DELETE FROM crls WHERE ca_name = $1 AND issuer_thumbprint = $2', [name, issuer ?? ''])).rowCount ?? 0) > 0
      return { result: deleted, changes: deleted ? [{ kind: 'revocation' }] : [] }
    }),
    appendAudit: async (a) => {
      await read('INSERT INTO audit_log (time, caller, action, resource, result, status, error) VALUES ($1, $2, $3, $4, $5, $6, $7)',
        [a.time, a.caller, a.action, a.resource, a.result, a.status, a.error ?? null])
    },
    onChange: (listener) => { events.on('change', listener); return () => events.off('change', listener) },
    close: async () => {
      // Idempotent: a second close waits for the first.
      closed.promise ??= (async () => {
        closing = true
        clearInterval(ping)
        clearTimeout(reconnectTimer)
        const l = listener
        listener = undefined
        l?.removeAllListeners('end')
        await l?.end().catch(() => undefined)
        await pool.end()
      })()
      await closed.promise
    }
  }
}
