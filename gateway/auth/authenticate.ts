// The authentication decision for one connection: the validator's verdict on what the device
// sent, combined with the registry's record of the device named by the leaf CN.
import { deviceIdProblem } from '../control/device-id.js'
import type { RefusalReason } from '../reasons.js'
import type { PoolVerdict } from '../validation/validator-pool.js'
import type { DeviceRecord, Registry } from '../registry/types.js'
import type { PathCert } from '../../workers/types.js'
import type { Enrollment } from './enrollment.js'
import { errorMessage } from '../../workers/errors.js'

export interface Identity {
  readonly deviceId: string
  readonly authType: DeviceRecord['authType']
  /** The registered CA the chain ended at (certificateAuthority devices). */
  readonly caName: string | undefined
  readonly thumbprint: string
  /** When the first certificate the authentication relied on expires (ms since epoch). */
  readonly notAfter: number
  /** When the device certificate itself expires (ms since epoch). */
  readonly leafNotAfter: number
  /** Every certificate the authentication relied on, leaf first: what a later revocation is checked against. */
  readonly path: readonly PathCert[]
}

export type Decision =
  | { readonly ok: true, readonly identity: Identity }
  | { readonly ok: false, readonly reason: RefusalReason, readonly detail: string, readonly deviceId?: string | undefined }

type Refused = Extract<Decision, { ok: false }>

/**
 * Is this device, as the registry has it now, allowed? For a selfSigned device, `held` is the
 * thumbprint of the certificate it connects (or is connected) with; for a live connection,
 * `authType` is the type it was authenticated as.
 */
export function checkDevice (device: DeviceRecord | undefined, deviceId: string,
  held: { thumbprint: string, authType?: DeviceRecord['authType'] }): Refused | { ok: true, device: DeviceRecord } {
  if (device === undefined) return { ok: false, reason: 'device_unknown', detail: `no device "${deviceId}" is registered`, deviceId }
  if (device.status !== 'enabled') return { ok: false, reason: 'device_disabled', detail: `device "${deviceId}" is disabled${device.statusReason === null ? '' : `: ${device.statusReason}`}`, deviceId }
  if (held.authType !== undefined && device.authType !== held.authType) return { ok: false, reason: 'thumbprint_mismatch',
    detail: `device "${deviceId}" changed authentication type`, deviceId }
  if (device.authType === 'selfSigned' && held.thumbprint !== device.primaryThumbprint && held.thumbprint !== device.secondaryThumbprint) {
    return { ok: false, reason: 'thumbprint_mismatch',
      detail: `the certificate's SHA-256 thumbprint ${held.thumbprint} is neither the primary nor the secondary thumbprint of device "${deviceId}"`, deviceId }
  }
  return { ok: true, device }
}

export async function authenticate (verdict: PoolVerdict, registry: Registry, enrollment?: Enrollment): Promise<Decision> {
  if (verdict.kind === 'overloaded') return { ok: false, reason: 'overloaded', detail: 'the validation queue is full; try again later' }
  if (verdict.kind === 'failed') return { ok: false, reason: 'validator_failed', detail: `validation failed internally: ${verdict.detail}` }
  const { leaf, chain } = verdict.outcome
  if (leaf === undefined) {
    return chain.ok ? { ok: false, reason: 'validator_failed', detail: 'no leaf facts' } : { ok: false, reason: chain.reason, detail: chain.detail }
  }

  // The device is named by the leaf's CN attribute itself, exact and case-sensitive.
  const deviceId = leaf.commonNames[0]
  if (deviceId === undefined) return { ok: false, reason: 'no_device_id', detail: 'the device certificate has no CN; its CN must be the deviceId' }
  if (leaf.commonNames.length > 1) return { ok: false, reason: 'ambiguous_device_id',
    detail: `the device certificate has ${leaf.commonNames.length} CN attributes; it must have exactly one, the deviceId` }
  const idProblem = deviceIdProblem(deviceId)
  if (idProblem !== undefined) return { ok: false, reason: 'invalid_device_id', detail: `the certificate CN is not a valid deviceId: ${idProblem}` }

  let device: DeviceRecord | undefined
  try {
    device = await registry.getDevice(deviceId)
  } catch (err) {
    return { ok: false, reason: 'registry_unavailable', detail: `the registry could not be read: ${errorMessage(err)}`, deviceId }
  }
  if (device === undefined && enrollment !== undefined) {
    // Unknown: an enrollment group may register it now, on this very connection.
    const enrolled = await enrollment.enroll(deviceId, chain.ok ? verdict.anchorName : undefined)
    if (!enrolled.ok) return enrolled
    device = enrolled.device
  }
  const checked = checkDevice(device, deviceId, { thumbprint: leaf.thumbprint })
  if (!checked.ok) return checked

  if (checked.device.authType === 'selfSigned') {
    if (leaf.ownProblem !== undefined) return { ok: false, reason: leaf.ownProblem.reason, detail: leaf.ownProblem.detail, deviceId }
    // Self-signed: no issuer whose CRL could list it; only the deny-list applies.
    const path = [{ thumbprint: leaf.thumbprint, issuer: '', serial: '' }]
    return { ok: true, identity: { deviceId, authType: 'selfSigned', caName: undefined, thumbprint: leaf.thumbprint, notAfter: leaf.notAfter,
      leafNotAfter: leaf.notAfter, path } }
  }
  if (!chain.ok) return { ok: false, reason: chain.reason, detail: chain.detail, deviceId }
  return { ok: true, identity: { deviceId, authType: 'certificateAuthority', caName: verdict.anchorName, thumbprint: leaf.thumbprint,
    notAfter: chain.pathNotAfter, leafNotAfter: leaf.notAfter, path: chain.path } }
}
