// The PostgreSQL registry's device queries: single devices, bulk import, first-connection
// registration, and what an enrollment group does to the devices it registered.
import type { DeviceInput, DeviceRecord, DeviceStatus, Registry } from './types.js'
import { UPSERT_DEVICES, deviceColumns, toDevice, type DeviceRow } from './postgres-schema.js'
import { registrationColumns, type RegistrationColumns } from './enrollment-rows.js'
import { checkMatch, newEtag, nowIso, one, touched, type PostgresAccess } from './postgres-access.js'

export type DeviceQueries = Pick<Registry, 'getDevice' | 'listDevices' | 'putDevice' | 'importDevices' | 'deleteDevice' |
'insertDeviceIfAbsent' | 'setGroupDevicesStatus' | 'deleteGroupDevices' | 'countDevices'>

const INSERT_IF_ABSENT = 'INSERT INTO devices (device_id, auth_type, primary_thumbprint, secondary_thumbprint, status, status_reason, etag, ' +
  'created_at, updated_at, enrollment_group_id, registered_at, registered_via) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ' +
  'ON CONFLICT (device_id) DO NOTHING RETURNING *'

const SET_GROUP_STATUS = 'UPDATE devices SET status = $2, status_reason = $3, etag = $4, updated_at = $5 ' +
  'WHERE enrollment_group_id = $1 AND (status <> $2 OR status_reason IS DISTINCT FROM $3)'

function deviceRow (d: DeviceInput, now: string): DeviceRow {
  return {
    device_id: d.deviceId,
    auth_type: d.authType,
    primary_thumbprint: d.primaryThumbprint,
    secondary_thumbprint: d.secondaryThumbprint,
    status: d.status,
    status_reason: d.statusReason,
    etag: newEtag(),
    created_at: now,
    updated_at: now
  }
}

export function deviceQueries ({ read, tx }: PostgresAccess): DeviceQueries {
  return {
    getDevice: async (id) => {
      const [r] = await read<DeviceRow>('SELECT * FROM devices WHERE device_id = $1', [id])
      return r === undefined ? undefined : toDevice(r)
    },
    listDevices: async ({ after, limit, enrollmentGroupId }) => {
      const rows = enrollmentGroupId === undefined
        ? await read<DeviceRow>('SELECT * FROM devices WHERE device_id > $1 ORDER BY device_id LIMIT $2', [after ?? '', limit + 1])
        : await read<DeviceRow>('SELECT * FROM devices WHERE enrollment_group_id = $3 AND device_id > $1 ORDER BY device_id LIMIT $2',
          [after ?? '', limit + 1, enrollmentGroupId])
      const items = rows.slice(0, limit).map(toDevice)
      return { items, next: rows.length > limit ? items[items.length - 1]?.deviceId : undefined }
    },
    putDevice: async (d, ifMatch) => await tx(async (c) => {
      const existing = await one<DeviceRow & RegistrationColumns>(c, 'SELECT * FROM devices WHERE device_id = $1 FOR UPDATE', [d.deviceId])
      checkMatch(existing, ifMatch)
      const row = { ...deviceRow(d, nowIso()), ...(existing === undefined ? {} : { created_at: existing.created_at }) }
      await c.query(UPSERT_DEVICES, deviceColumns([row]))
      // A replaced device keeps its registration columns.
      const kept = existing === undefined
        ? row
        : { ...row, enrollment_group_id: existing.enrollment_group_id, registered_at: existing.registered_at, registered_via: existing.registered_via }
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
      const deleted = await touched(c, 'DELETE FROM devices WHERE device_id = $1', [id])
      return { result: deleted, changes: deleted ? [{ kind: 'device', deviceId: id }] : [] }
    }),
    insertDeviceIfAbsent: async (d, registration) => await tx<{ record: DeviceRecord, inserted: boolean }>(async (c) => {
      const row = { ...deviceRow(d, nowIso()), ...registrationColumns(registration) }
      // A racing insert of the same deviceId waits for the other transaction, then does nothing;
      // the winner's row is then visible to the next statement (READ COMMITTED).
      const inserted = await one<DeviceRow>(c, INSERT_IF_ABSENT, [
        row.device_id, row.auth_type, row.primary_thumbprint, row.secondary_thumbprint, row.status, row.status_reason, row.etag,
        row.created_at, row.updated_at, row.enrollment_group_id, row.registered_at, row.registered_via
      ])
      if (inserted !== undefined) return { result: { record: toDevice(inserted), inserted: true }, changes: [{ kind: 'device', deviceId: d.deviceId }] }
      const winner = await one<DeviceRow>(c, 'SELECT * FROM devices WHERE device_id = $1', [d.deviceId])
      if (winner === undefined) throw new Error(`device "${d.deviceId}" was deleted while being registered`)
      return { result: { record: toDevice(winner), inserted: false }, changes: [] }
    }),
    setGroupDevicesStatus: async (group, status, statusReason) => await tx(async (c) => {
      const n = (await c.query(SET_GROUP_STATUS, [group, status, statusReason, newEtag(), nowIso()])).rowCount ?? 0
      return { result: n, changes: n > 0 ? [{ kind: 'bulk' }] : [] }
    }),
    deleteGroupDevices: async (group) => await tx(async (c) => {
      const n = (await c.query('DELETE FROM devices WHERE enrollment_group_id = $1', [group])).rowCount ?? 0
      return { result: n, changes: n > 0 ? [{ kind: 'bulk' }] : [] }
    }),
    countDevices: async () => {
      const out: Record<DeviceStatus, number> = { enabled: 0, disabled: 0 }
      for (const r of await read<{ status: DeviceStatus, n: number }>('SELECT status, count(*)::int AS n FROM devices GROUP BY status')) out[r.status] = r.n
      return out
    }
  }
}
