// The admin API's resources as the CLI reads them (shapes in device-routes.ts and
// certificate-routes.ts), checked just enough that a wrong server fails clearly.
import { CommandFailed } from './errors.js'

export interface DeviceResource {
  readonly deviceId: string
  readonly etag: string
  readonly status: 'enabled' | 'disabled'
  readonly statusReason: string | null
  readonly connectionState?: string
  readonly authentication: {
    readonly type: 'certificateAuthority' | 'selfSigned'
    readonly x509Thumbprint?: { readonly primaryThumbprint: string | null, readonly secondaryThumbprint: string | null }
  }
  readonly createdAt?: string
  readonly updatedAt?: string
}

export interface CertificateResource {
  readonly name: string
  readonly subject: string
  readonly thumbprint: string
  readonly isVerified: boolean
  readonly expiry: string
  readonly etag: string
  readonly certificate?: string
  /** The CA's revocation settings (a PUT without them sets none). */
  readonly crlUrls?: readonly string[]
  readonly ocsp?: unknown
  readonly verificationCode?: string
  readonly verificationCodeExpiry?: string
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function unexpected (what: string, body: unknown): CommandFailed {
  const text = body === undefined ? 'an empty body' : JSON.stringify(body).slice(0, 200)
  return new CommandFailed(`the admin API answered with something that is not ${what}: ${text}`)
}

export function asDevice (body: unknown): DeviceResource {
  if (!isObject(body) || typeof body.deviceId !== 'string' || typeof body.etag !== 'string' || !isObject(body.authentication)) {
    throw unexpected('a device', body)
  }
  return body as unknown as DeviceResource
}

export function asDevices (body: unknown): DeviceResource[] {
  if (!Array.isArray(body)) throw unexpected('a list of devices', body)
  return body.map(asDevice)
}

export function asCertificate (body: unknown): CertificateResource {
  if (!isObject(body) || typeof body.name !== 'string' || typeof body.isVerified !== 'boolean') throw unexpected('a CA certificate', body)
  return body as unknown as CertificateResource
}

export function asCertificates (body: unknown): CertificateResource[] {
  if (!isObject(body) || !Array.isArray(body.value)) throw unexpected('a list of CA certificates', body)
  return body.value.map(asCertificate)
}
