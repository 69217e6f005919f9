// Admin API: enrollment groups (Azure DPS enrollment group shapes). PUT creates or replaces
// (If-Match honoured), GET one or all, DELETE; and the bulk actions on the devices a group
// registered: POST /enrollmentGroups/{id}:disableDevices and :deleteDevices (their live
// connections close through the registry's change events, on every gateway).
import { compileDeviceIdPattern } from '../control/device-id-pattern.js'
import { PreconditionFailed, type EnrollmentGroupInput, type EnrollmentGroupRecord, type Registry } from '../registry/types.js'
import { ApiError, type AdminRequest, type AdminResponse, type AdminRoute } from './admin-server.js'
import { etagHeader, ifMatch, objectBody, pathParam } from './http-helpers.js'

export interface EnrollmentRouteDeps {
  readonly registry: Registry
}

// DPS allows letters, digits and - . _ ; ':' is kept out because it introduces an action.
const GROUP_ID = /^[A-Za-z0-9._-]{1,128}$/
const ACTIONS = ['disableDevices', 'deleteDevices'] as const
type Action = typeof ACTIONS[number]

export function enrollmentGroupResource (g: EnrollmentGroupRecord): Record<string, unknown> {
  return {
    enrollmentGroupId: g.enrollmentGroupId,
    attestation: { type: 'x509', x509: { caReferences: { primary: g.primaryCa, ...(g.secondaryCa === null ? {} : { secondary: g.secondaryCa }) } } },
    provisioningStatus: g.provisioningStatus,
    ...(g.deviceIdPattern === null ? {} : { deviceIdPattern: g.deviceIdPattern }),
    initialStatus: g.initialStatus,
    etag: g.etag,
    createdDateTimeUtc: g.createdAt,
    lastUpdatedDateTimeUtc: g.updatedAt
  }
}

export function groupIdProblem (id: string): string | undefined {
  return GROUP_ID.test(id) ? undefined : 'an enrollmentGroupId is 1 to 128 letters, digits, "-", "." or "_"'
}

/** Validates a group body; every refusal names the field. The referenced CAs are checked by the caller. */
export function parseEnrollmentGroupBody (id: string, body: unknown): EnrollmentGroupInput {
  const idProblem = groupIdProblem(id)
  if (idProblem !== undefined) throw new ApiError(400, 'invalid_enrollment_group_id', idProblem)
  const b = objectBody(body, ['enrollmentGroupId', 'attestation', 'provisioningStatus', 'deviceIdPattern', 'initialStatus', 'etag',
    'createdDateTimeUtc', 'lastUpdatedDateTimeUtc'])
  if (b.enrollmentGroupId !== undefined && b.enrollmentGroupId !== id) {
    throw new ApiError(400, 'enrollment_group_id_mismatch',
      `the body's enrollmentGroupId ${JSON.stringify(b.enrollmentGroupId)} differs from the path's "${id}"`)
  }
  const attestation = objectBody(b.attestation, ['type', 'x509'], 'attestation')
  if (attestation.type !== 'x509') throw new ApiError(400, 'invalid_attestation',
    'attestation.type must be "x509" (certgate attests devices by their X.509 CA chain)')
  const x509 = objectBody(attestation.x509, ['caReferences'], 'attestation.x509')
  const refs = objectBody(x509.caReferences, ['primary', 'secondary'], 'attestation.x509.caReferences')
  if (typeof refs.primary !== 'string' || refs.primary === '') throw new ApiError(400, 'invalid_attestation',
    'attestation.x509.caReferences.primary must name a registered CA certificate')
  const secondary = refs.secondary ?? null
  if (secondary !== null && (typeof secondary !== 'string' || secondary === '')) throw new ApiError(400, 'invalid_attestation',
    'attestation.x509.caReferences.secondary, when given, must name a registered CA certificate')
  const provisioningStatus = b.provisioningStatus ?? 'enabled'
  if (provisioningStatus !== 'enabled' && provisioningStatus !== 'disabled') throw new ApiError(400, 'invalid_provisioning_status',
    'provisioningStatus must be "enabled" or "disabled"')
  const initialStatus = b.initialStatus ?? 'enabled'
  if (initialStatus !== 'enabled' && initialStatus !== 'disabled') throw new ApiError(400, 'invalid_initial_status',
    'initialStatus must be "enabled" or "disabled"')
  const pattern = b.deviceIdPattern ?? null
  if (pattern !== null) {
    if (typeof pattern !== 'string') throw new ApiError(400, 'invalid_device_id_pattern',
      'deviceIdPattern must be a string (a regular expression the whole CN must match)')
    const compiled = compileDeviceIdPattern(pattern)
    if (!compiled.ok) throw new ApiError(400, 'invalid_device_id_pattern',
      `deviceIdPattern: ${compiled.problem}; see docs/enrollment.md for the supported subset`)
  }
  return { enrollmentGroupId: id, primaryCa: refs.primary, secondaryCa: secondary, provisioningStatus, deviceIdPattern: pattern, initialStatus }
}

export function createEnrollmentRoutes (deps: EnrollmentRouteDeps): AdminRoute {
  const { registry } = deps
  const preconditions = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work()
    } catch (err) {
      if (err instanceof PreconditionFailed) throw new ApiError(412, 'precondition_failed', `${err.message}; GET the enrollment group for its current etag`)
      throw err
    }
  }
  const notFound = (id: string): ApiError => new ApiError(404, 'enrollment_group_not_found', `no enrollment group "${id}"`)

  const one = async (req: AdminRequest, id: string): Promise<AdminResponse> => {
    switch (req.method) {
      case 'GET': {
        const g = await registry.getEnrollmentGroup(id)
        if (g === undefined) throw notFound(id)
        return { status: 200, body: enrollmentGroupResource(g), headers: etagHeader(g.etag) }
      }
      case 'PUT': {
        const input = parseEnrollmentGroupBody(id, req.body)
        // A group may reference an unverified CA (it provisions nothing until verified), not a missing one.
        for (const name of [input.primaryCa, input.secondaryCa]) {
          if (name !== null && await registry.getCa(name) === undefined) {
            throw new ApiError(400, 'ca_not_found', `no CA certificate named "${name}" is registered; PUT /certificates/${name} first`)
          }
        }
        const { record, created } = await preconditions(async () => await registry.putEnrollmentGroup(input, ifMatch(req)))
        return { status: created ? 201 : 200, body: enrollmentGroupResource(record), headers: etagHeader(record.etag) }
      }
      case 'DELETE': {
        // Devices the group registered stay: they are governed by their own records.
        if (!await preconditions(async () => await registry.deleteEnrollmentGroup(id, ifMatch(req)))) throw notFound(id)
        return { status: 204 }
      }
      default:
        throw new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /enrollmentGroups/{id}; use GET, PUT or DELETE`)
    }
  }

  const act = async (req: AdminRequest, id: string, action: Action): Promise<AdminResponse> => {
    if (req.method !== 'POST') throw new ApiError(405, 'method_not_allowed', `use POST /enrollmentGroups/{id}:${action}`)
    if (await registry.getEnrollmentGroup(id) === undefined) throw notFound(id)
    const affected = action === 'disableDevices'
      ? await registry.setGroupDevicesStatus(id, 'disabled', `disabled with enrollment group ${id}`)
      : await registry.deleteGroupDevices(id)
    return { status: 200, body: { enrollmentGroupId: id, action, affected } }
  }

  return async (req) => {
    if (req.path === '/enrollmentGroups') {
      if (req.method !== 'GET') throw new ApiError(405, 'method_not_allowed',
        `${req.method} is not allowed on /enrollmentGroups; use GET (PUT /enrollmentGroups/{id} creates)`)
      return { status: 200, body: (await registry.listEnrollmentGroups()).map(enrollmentGroupResource) }
    }
    const segment = pathParam(req.path, '/enrollmentGroups/')
    if (segment === undefined) return undefined
    const colon = segment.indexOf(':')
    if (colon < 0) return await one(req, segment)
    const action = segment.slice(colon + 1)
    if (!(ACTIONS as readonly string[]).includes(action)) throw new ApiError(404, 'unknown_action',
      `no action "${action}" on enrollment groups; use :${ACTIONS.join(' or :')}`)
    return await act(req, segment.slice(0, colon), action as Action)
  }
}
