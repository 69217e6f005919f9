// The registry's contract: registered CA certificates and devices, behind an asynchronous
// interface with change events, so the connection path never knows which database is behind it.
// Private keys are never stored: a CA record holds a certificate and the proof-of-possession state.

export const AUTH_TYPES = ['certificateAuthority', 'selfSigned'] as const
export type AuthType = typeof AUTH_TYPES[number]
export const DEVICE_STATUSES = ['enabled', 'disabled'] as const
export type DeviceStatus = typeof DEVICE_STATUSES[number]

/** How a device came to be registered by an enrollment group on its first connection. */
export interface Registration {
  readonly enrollmentGroupId: string
  readonly registeredAt: string
  /** Who registered it: 'gateway' (a first connection). */
  readonly via: 'gateway'
}

export interface DeviceRecord {
  readonly deviceId: string
  readonly authType: AuthType
  /** SHA-256 of the certificate DER, lowercase hex; selfSigned devices only. */
  readonly primaryThumbprint: string | null
  readonly secondaryThumbprint: string | null
  readonly status: DeviceStatus
  readonly statusReason: string | null
  readonly etag: string
  readonly createdAt: string
  readonly updatedAt: string
  /** Set when an enrollment group registered the device; kept when the device is replaced by PUT. */
  readonly registration?: Registration | undefined
}

export type DeviceInput = Omit<DeviceRecord, 'etag' | 'createdAt' | 'updatedAt' | 'registration'>

export const PROVISIONING_STATUSES = ['enabled', 'disabled'] as const
export type ProvisioningStatus = typeof PROVISIONING_STATUSES[number]

/** An enrollment group (Azure DPS shape): unknown devices under its CAs register on first connection. */
export interface EnrollmentGroupInput {
  readonly enrollmentGroupId: string
  readonly primaryCa: string
  readonly secondaryCa: string | null
  readonly provisioningStatus: ProvisioningStatus
  /** A regular expression (certgate's linear-time subset) the CN must match in full; null: any. */
  readonly deviceIdPattern: string | null
  readonly initialStatus: DeviceStatus
}

export interface EnrollmentGroupRecord extends EnrollmentGroupInput {
  readonly etag: string
  readonly createdAt: string
  readonly updatedAt: string
}

export interface CaRecord {
  readonly name: string
  readonly certificateDer: Uint8Array
  readonly subject: string
  /** SHA-256 of the certificate DER, lowercase hex. */
  readonly thumbprint: string
  readonly notAfter: string
  readonly isVerified: boolean
  readonly verificationCode: string | null
  readonly verificationCodeExpiry: string | null
  /** Thumbprint of the certificate the outstanding code was issued for. */
  readonly verificationCodeFor: string | null
  readonly etag: string
  readonly createdAt: string
  readonly updatedAt: string
}

/** A deny-list entry: a certificate refused wherever it appears in a path. */
export interface RevocationRecord {
  /** SHA-256 of the certificate DER, lowercase hex. */
  readonly thumbprint: string
  readonly reason: string | null
  readonly createdAt: string
  readonly updatedAt: string
}

/**
 * A CRL held for one registered CA (checked against that CA before it is stored): the CA's own, or
 * one signed by an intermediate under it (a delegated CRL issuer, RFC 5280 §6.3.3 (f)), one per issuer.
 */
export interface CrlRecord {
  readonly caName: string
  /** Thumbprint of the CA certificate the CRL was checked against: a replaced CA does not inherit it. */
  readonly caThumbprint: string
  /** SHA-256 of the intermediate that signed it; null for the CA's own CRL. */
  readonly issuerThumbprint: string | null
  /** That intermediate's DER (null for the CA's own CRL). */
  readonly issuerCertificateDer: Uint8Array | null
  readonly der: Uint8Array
  readonly issuer: string
  readonly thisUpdate: string
  readonly nextUpdate: string | null
  /** Decimal; RFC 5280 cRLNumbers reach 20 octets. */
  readonly crlNumber: string | null
  readonly revokedCount: number
  readonly updatedAt: string
}

export type CrlInput = Omit<CrlRecord, 'updatedAt'>

export type RegistryChange =
  | { readonly kind: 'device', readonly deviceId: string }
  | { readonly kind: 'ca', readonly name: string }
  | { readonly kind: 'revocation' }
  | { readonly kind: 'enrollmentGroup', readonly enrollmentGroupId: string }
  | { readonly kind: 'bulk' }

/** Thrown when an If-Match etag does not match the stored one. */
export class PreconditionFailed extends Error {
  override name = 'PreconditionFailed'
}

export interface Page<T> { readonly items: readonly T[], readonly next: string | undefined }

export interface Registry {
  getDevice: (deviceId: string) => Promise<DeviceRecord | undefined>
  /** A page in deviceId order; with `enrollmentGroupId`, only the devices that group registered. */
  listDevices: (opts: { after?: string | undefined, limit: number, enrollmentGroupId?: string | undefined }) => Promise<Page<DeviceRecord>>
  /** Creates or replaces; `ifMatch` ('*' or an etag) guards replacement. */
  putDevice: (device: DeviceInput, ifMatch?: string) => Promise<{ record: DeviceRecord, created: boolean }>
  /** Inserts or replaces many devices in one transaction. */
  importDevices: (devices: readonly DeviceInput[]) => Promise<number>
  deleteDevice: (deviceId: string, ifMatch?: string) => Promise<boolean>
  countDevices: () => Promise<Record<DeviceStatus, number>>
  /**
   * Creates the device unless one with its deviceId exists (a unique key decides between
   * gateways racing on the same new device); either way returns the stored record, and
   * `inserted` is true only for the caller whose row was written.
   */
  insertDeviceIfAbsent: (device: DeviceInput, registration: Registration) => Promise<{ record: DeviceRecord, inserted: boolean }>
  /** Sets the status of every device the group registered; returns how many changed. */
  setGroupDevicesStatus: (enrollmentGroupId: string, status: DeviceStatus, statusReason: string | null) => Promise<number>
  /** Deletes every device the group registered; returns how many. */
  deleteGroupDevices: (enrollmentGroupId: string) => Promise<number>

  getEnrollmentGroup: (id: string) => Promise<EnrollmentGroupRecord | undefined>
  listEnrollmentGroups: () => Promise<readonly EnrollmentGroupRecord[]>
  putEnrollmentGroup: (group: EnrollmentGroupInput, ifMatch?: string) => Promise<{ record: EnrollmentGroupRecord, created: boolean }>
  deleteEnrollmentGroup: (id: string, ifMatch?: string) => Promise<boolean>

  getCa: (name: string) => Promise<CaRecord | undefined>
  listCas: () => Promise<readonly CaRecord[]>
  /**
   * Stores a new or replacing certificate, unverified. Uploading the very certificate already
   * stored changes nothing (idempotent provisioning must not unverify a CA). A code issued for a
   * replaced certificate stays recorded only so verify can say why it no longer works.
   */
  putCa: (ca: { name: string, certificateDer: Uint8Array, subject: string, thumbprint: string, notAfter: string }, ifMatch?: string) => Promise<{ record: CaRecord, created: boolean }>
  setVerificationCode: (name: string, code: string, expiry: string) => Promise<CaRecord | undefined>
  /**
   * Marks the CA verified if, atomically, its code is `code`, unexpired at `now`, and its
   * certificate is still the one with `thumbprint`; the code is consumed either way it matched.
   */
  consumeVerificationCode: (name: string, code: string, thumbprint: string, now: string) => Promise<CaRecord | 'no_code' | 'wrong_code' | 'expired_code' | 'certificate_replaced' | undefined>
  deleteCa: (name: string, ifMatch?: string) => Promise<boolean>

  listRevocations: () => Promise<readonly RevocationRecord[]>
  putRevocation: (thumbprint: string, reason: string | null) => Promise<{ record: RevocationRecord, created: boolean }>
  deleteRevocation: (thumbprint: string) => Promise<boolean>
  /** The CA's own CRL, or (with `issuerThumbprint`) the one that intermediate under it signed. */
  getCrl: (caName: string, issuerThumbprint?: string | null) => Promise<CrlRecord | undefined>
  /** Every CRL held, for every CA and issuer. */
  listCrls: () => Promise<readonly CrlRecord[]>
  /**
   * Stores the CRL if, atomically, the CA is still the certificate it was checked against and the
   * CRL's number is not lower than the one held for the same (CA, issuer); otherwise says which.
   */
  putCrl: (crl: CrlInput) => Promise<CrlRecord | 'stale' | 'ca_changed'>
  /** Drops the CA's own CRL, or (with `issuerThumbprint`) that intermediate's. */
  deleteCrl: (caName: string, issuerThumbprint?: string | null) => Promise<boolean>

  onChange: (listener: (change: RegistryChange) => void) => () => void
  close: () => Promise<void>
}
