// First-connection registration by enrollment groups: a device the registry does not know, whose
// chain validated to a verified registered CA (the validator's anchor), is created if an enabled
// group referencing that CA has a deviceIdPattern its CN matches. Creation is insert-if-absent on
// the registry's unique key, so gateways racing on the same new device create one record; only
// the inserter audits `device_registered`. Whatever was stored (ours or the winner's) then
// governs the connection like any registered device. Refusals stay `device_unknown`, with a
// detail that says which group did not cover the device and why.
import { compileDeviceIdPattern } from '../control/device-id-pattern.js'
import type { AuditLog } from '../registry/audit-log.js'
import type { RefusalReason } from '../reasons.js'
import type { DeviceRecord, EnrollmentGroupRecord, Registry } from '../registry/types.js'
import { errorMessage } from '../../workers/errors.js'

export type Enrolled =
  | { readonly ok: true, readonly device: DeviceRecord }
  | { readonly ok: false, readonly reason: Extract<RefusalReason, 'device_unknown' | 'registry_unavailable'>, readonly detail: string,
    readonly deviceId: string }

export interface Enrollment {
  /** An unknown device: `anchorName` is the verified CA its chain validated to, if it did. */
  enroll: (deviceId: string, anchorName: string | undefined) => Promise<Enrolled>
  stop: () => void
}

export interface EnrollmentDeps {
  readonly registry: Registry
  readonly audit?: AuditLog | undefined
  /** A device was registered by this process (counted and logged by the caller). */
  readonly onRegistered?: (deviceId: string, enrollmentGroupId: string) => void
  readonly now?: () => Date
}

interface Group { readonly record: EnrollmentGroupRecord, readonly matches: (deviceId: string) => boolean }

export function createEnrollment (deps: EnrollmentDeps): Enrollment {
  const now = deps.now ?? (() => new Date())
  // The groups, read once and kept until any registry change that could touch them (every
  // gateway hears every change), so a storm of new devices does not re-read them per device.
  let groups: Promise<readonly Group[]> | undefined
  const stop = deps.registry.onChange((c) => { if (c.kind !== 'device') groups = undefined })
  const load = async (): Promise<readonly Group[]> => {
    const records = await deps.registry.listEnrollmentGroups()
    return records.map((record) => {
      if (record.deviceIdPattern === null) return { record, matches: () => true }
      const compiled = compileDeviceIdPattern(record.deviceIdPattern)
      // Stored patterns were checked at PUT; one that no longer compiles matches nothing (closed).
      return { record, matches: compiled.ok ? compiled.matches : () => false }
    })
  }
  const current = async (): Promise<readonly Group[]> => {
    const mine = groups ?? load()
    groups = mine
    try {
      return await mine
    } catch (err) {
      if (groups === mine) groups = undefined // do not keep a failed read
      throw err
    }
  }

  const unknown = (deviceId: string, why: string): Enrolled => ({ ok: false, reason: 'device_unknown',
    detail: `no device "${deviceId}" is registered and ${why}`, deviceId })
  const names = (gs: readonly Group[]): string => gs.map((g) => `"${g.record.enrollmentGroupId}"`).join(', ')

  return {
    enroll: async (deviceId, anchorName) => {
      if (anchorName === undefined) return unknown(deviceId, 'no enrollment group covers it: its chain does not validate to a verified registered CA')
      let all: readonly Group[]
      try {
        all = await current()
      } catch (err) {
        return { ok: false, reason: 'registry_unavailable', detail: `the enrollment groups could not be read: ${errorMessage(err)}`, deviceId }
      }
      const onCa = all.filter((g) => g.record.primaryCa === anchorName || g.record.secondaryCa === anchorName)
      if (onCa.length === 0) return unknown(deviceId, `no enrollment group covers its CA "${anchorName}"`)
      const enabled = onCa.filter((g) => g.record.provisioningStatus === 'enabled')
      if (enabled.length === 0) return unknown(deviceId,
        `enrollment group ${names(onCa)} on its CA "${anchorName}" ${onCa.length === 1 ? 'is' : 'are'} disabled`)
      const group = enabled.find((g) => g.matches(deviceId))
      if (group === undefined) return unknown(deviceId, `it does not match the deviceIdPattern of enrollment group ${names(enabled)}`)

      const g = group.record
      try {
        const { record, inserted } = await deps.registry.insertDeviceIfAbsent(
          {
            deviceId,
            authType: 'certificateAuthority',
            primaryThumbprint: null,
            secondaryThumbprint: null,
            status: g.initialStatus,
            statusReason: g.initialStatus === 'enabled' ? null : `registered disabled by enrollment group ${g.enrollmentGroupId}`
          },
          { enrollmentGroupId: g.enrollmentGroupId, registeredAt: now().toISOString(), via: 'gateway' }
        )
        if (inserted) {
          deps.audit?.record({ caller: `enrollmentGroup:${g.enrollmentGroupId}`, action: 'device_registered', resource: `/devices/${deviceId}`, status: 201 })
          deps.onRegistered?.(deviceId, g.enrollmentGroupId)
        }
        return { ok: true, device: record }
      } catch (err) {
        return { ok: false, reason: 'registry_unavailable', detail: `device "${deviceId}" could not be registered: ${errorMessage(err)}`, deviceId }
      }
    },
    stop
  }
}
