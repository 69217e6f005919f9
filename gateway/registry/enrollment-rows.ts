// Row shapes of enrollment groups and of a device's registration columns, shared by the SQLite
// and PostgreSQL registries (same column names in both), and their mapping to records.
import type { DeviceStatus, EnrollmentGroupRecord, ProvisioningStatus, Registration } from './types.js'

export interface RegistrationColumns {
  enrollment_group_id: string | null, registered_at: string | null, registered_via: string | null
}

export interface GroupRow {
  enrollment_group_id: string, primary_ca: string, secondary_ca: string | null, provisioning_status: ProvisioningStatus,
  device_id_pattern: string | null, initial_status: DeviceStatus, etag: string, created_at: string, updated_at: string
}

export function registrationColumns (r: Registration): RegistrationColumns {
  return { enrollment_group_id: r.enrollmentGroupId, registered_at: r.registeredAt, registered_via: r.via }
}

export function toRegistration (r: RegistrationColumns): Registration | undefined {
  if (r.enrollment_group_id === null || r.registered_at === null) return undefined
  return { enrollmentGroupId: r.enrollment_group_id, registeredAt: r.registered_at, via: 'gateway' }
}

export function toGroup (r: GroupRow): EnrollmentGroupRecord {
  return {
    enrollmentGroupId: r.enrollment_group_id, primaryCa: r.primary_ca, secondaryCa: r.secondary_ca, provisioningStatus: r.provisioning_status,
    deviceIdPattern: r.device_id_pattern, initialStatus: r.initial_status, etag: r.etag, createdAt: r.created_at, updatedAt: r.updated_at
  }
}
