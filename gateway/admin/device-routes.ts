// Admin API: the device registry (IoT Hub device identity shapes). PUT creates or replaces
// (If-Match honoured), GET one or a page (`top`, continuation in `x-ms-continuation`), DELETE.
import { deviceIdProblem } from '../control/device-id.js'
import { PreconditionFailed, type DeviceInput, type DeviceRecord, type Registry } from '../registry/types.js'
import { ApiError, type AdminRequest, type AdminResponse, type AdminRoute } from './admin-server.js'
import { etagHeader, ifMatch, objectBody, pathParam } from './http-helpers.js'

export interface DeviceRouteDeps {
  readonly registry: Registry
  /** How many authenticated connections a device has now. */
  readonly liveCount: (deviceId: string) => number
}

const THUMBPRINT = /^[0-9a-fA-F]{64}$/
const MAX_PAGE = 1000

export function deviceResource (d: DeviceRecord, live: number): Record<string, unknown> {
  return {
    deviceId: d.deviceId,
    etag: d.etag,
    status: d.status,
    statusReason: d.statusReason,
    connectionState: live > 0 ? 'Connected' : 'Disconnected',
    authentication: {
      type: d.authType,
      x509Thumbprint: { primaryThumbprint: d.primaryThumbprint, secondaryThumbprint: d.secondaryThumbprint }
    },
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
    ...(d.registration === undefined ? {} : { registration: d.registration })
  }
}

/** Validates a device body; every refusal names the field. Exported for the CLI's bulk import. */
export function parseDeviceBody (deviceId: string, body: unknown): DeviceInput {
  const problem = deviceIdProblem(deviceId)
  if (problem !== undefined) throw new ApiError(400, 'invalid_device_id', problem)
  const b = objectBody(body, ['deviceId', 'authentication', 'status', 'statusReason', 'etag', 'connectionState', 'createdAt', 'updatedAt', 'registration'])
  if (b.deviceId !== undefined && b.deviceId !== deviceId) throw new ApiError(400, 'device_id_mismatch',
    `the body's deviceId ${JSON.stringify(b.deviceId)} differs from the path's "${deviceId}"`)
  const auth = objectBody(b.authentication, ['type', 'x509Thumbprint'], 'authentication')
  if (auth.type !== 'certificateAuthority' && auth.type !== 'selfSigned') throw new ApiError(400, 'invalid_authentication',
    'authentication.type must be "certificateAuthority" or "selfSigned"')
  const status = b.status ?? 'enabled'
  if (status !== 'enabled' && status !== 'disabled') throw new ApiError(400, 'invalid_status', 'status must be "enabled" or "disabled"')
  const reason = b.statusReason ?? null
  if (reason !== null && (typeof reason !== 'string' || reason.length > 128)) throw new ApiError(400, 'invalid_status_reason',
    'statusReason must be a string of at most 128 characters')
  let primary: string | null = null
  let secondary: string | null = null
  if (auth.type === 'selfSigned') {
    const tp = objectBody(auth.x509Thumbprint, ['primaryThumbprint', 'secondaryThumbprint'], 'authentication.x509Thumbprint')
    primary = thumbprint(tp.primaryThumbprint, 'primaryThumbprint', true)
    secondary = thumbprint(tp.secondaryThumbprint, 'secondaryThumbprint', false)
  } else if (auth.x509Thumbprint !== undefined && auth.x509Thumbprint !== null) {
    const tp = objectBody(auth.x509Thumbprint, ['primaryThumbprint', 'secondaryThumbprint'], 'authentication.x509Thumbprint')
    if ((tp.primaryThumbprint ?? null) !== null || (tp.secondaryThumbprint ?? null) !== null) {
      throw new ApiError(400, 'invalid_authentication', 'certificateAuthority devices are authenticated by their CA chain and take no thumbprints')
    }
  }
  return { deviceId, authType: auth.type, primaryThumbprint: primary, secondaryThumbprint: secondary, status, statusReason: reason }
}

function thumbprint (value: unknown, field: string, required: boolean): string | null {
  if (value === undefined || value === null || value === '') {
    if (required) throw new ApiError(400, 'invalid_thumbprint', `selfSigned devices need authentication.x509Thumbprint.${field}`)
    return null
  }
  if (typeof value !== 'string' || !THUMBPRINT.test(value)) throw new ApiError(400, 'invalid_thumbprint',
    `${field} must be the SHA-256 of the certificate DER: 64 hex characters`)
  return value.toLowerCase()
}

export function createDeviceRoutes (deps: DeviceRouteDeps): AdminRoute {
  const one = async (req: AdminRequest, id: string): Promise<AdminResponse> => {
    switch (req.method) {
      case 'GET': {
        const d = await deps.registry.getDevice(id)
        if (d === undefined) throw new ApiError(404, 'device_not_found', `no device "${id}"`)
        return { status: 200, body: deviceResource(d, deps.liveCount(id)), headers: etagHeader(d.etag) }
      }
      case 'PUT': {
        const input = parseDeviceBody(id, req.body)
        try {
          const { record, created } = await deps.registry.putDevice(input, ifMatch(req))
          return { status: created ? 201 : 200, body: deviceResource(record, deps.liveCount(id)), headers: etagHeader(record.etag) }
        } catch (err) {
          if (err instanceof PreconditionFailed) throw new ApiError(412, 'precondition_failed', `${err.message}; GET the device for its current etag`)
          throw err
        }
      }
      case 'DELETE': {
        let deleted: boolean
        try {
          deleted = await deps.registry.deleteDevice(id, ifMatch(req))
        } catch (err) {
          if (err instanceof PreconditionFailed) throw new ApiError(412, 'precondition_failed', `${err.message}; GET the device for its current etag`)
          throw err
        }
        if (!deleted) throw new ApiError(404, 'device_not_found', `no device "${id}"`)
        return { status: 204 }
      }
      default:
        throw new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /devices/{deviceId}; use GET, PUT or DELETE`)
    }
  }

  const list = async (req: AdminRequest): Promise<AdminResponse> => {
    if (req.method !== 'GET') throw new ApiError(405, 'method_not_allowed',
      `${req.method} is not allowed on /devices; use GET (PUT /devices/{deviceId} creates)`)
    const topRaw = req.query.get('top') ?? String(MAX_PAGE)
    const top = /^\d+$/.test(topRaw) ? Number(topRaw) : NaN
    if (!(top >= 1 && top <= MAX_PAGE)) throw new ApiError(400, 'invalid_top', `top must be an integer from 1 to ${MAX_PAGE}`)
    const token = headerValue(req.headers['x-ms-continuation']) ?? req.query.get('continuationToken') ?? undefined
    const after = token === undefined || token === '' ? undefined : decodeToken(token)
    const page = await deps.registry.listDevices({ after, limit: top, enrollmentGroupId: req.query.get('enrollmentGroupId') ?? undefined })
    const headers: Record<string, string> = page.next === undefined ? {} : { 'x-ms-continuation': Buffer.from(page.next).toString('base64url') }
    return { status: 200, body: page.items.map((d) => deviceResource(d, deps.liveCount(d.deviceId))), headers }
  }

  return async (req) => {
    if (req.path === '/devices') return await list(req)
    const id = pathParam(req.path, '/devices/')
    return id === undefined ? undefined : await one(req, id)
  }
}

function headerValue (v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

function decodeToken (token: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(token)) throw new ApiError(400, 'invalid_continuation', 'the continuation token is not one this API issued')
  return Buffer.from(token, 'base64url').toString('utf8')
}
