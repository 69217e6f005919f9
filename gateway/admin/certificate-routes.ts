// Admin API: CA certificates and their proof of possession (IoT Hub certificate shapes):
// PUT uploads (unverified), generateVerificationCode, verify, GET, DELETE.
import { CaError, caNameProblem, type CaService } from '../control/ca-service.js'
import { PreconditionFailed, type CaRecord, type Registry, type RevocationSettings } from '../registry/types.js'
import { parseRevocationSettings } from '../control/revocation-settings.js'
import { toPem } from '../pki/pem.js'
import { ApiError, type AdminRequest, type AdminResponse, type AdminRoute } from './admin-server.js'
import { etagHeader, ifMatch, objectBody, pathParam } from './http-helpers.js'

export interface CertificateRouteDeps {
  readonly registry: Registry
  readonly cas: CaService
}

export function certificateResource (c: CaRecord): Record<string, unknown> {
  return {
    name: c.name,
    subject: c.subject,
    thumbprint: c.thumbprint,
    isVerified: c.isVerified,
    expiry: c.notAfter,
    crlUrls: c.settings.crlUrls,
    ocsp: c.settings.ocsp,
    etag: c.etag,
    created: c.createdAt,
    updated: c.updatedAt,
    certificate: toPem(c.certificateDer, 'CERTIFICATE')
  }
}

/** Service and registry refusals become API errors with the same code. */
async function api<T> (work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (err instanceof CaError) throw new ApiError(err.status, err.code, err.message)
    if (err instanceof PreconditionFailed) throw new ApiError(412, 'precondition_failed', `${err.message}; GET the certificate for its current etag`)
    throw err
  }
}

function certificateField (body: unknown, allowed: readonly string[] = ['certificate']): string {
  const b = objectBody(body, allowed)
  if (typeof b.certificate !== 'string' || b.certificate === '') throw new ApiError(400, 'invalid_body', 'send {"certificate": "<PEM>"}')
  return b.certificate
}

/** The certificate resource's body: the PEM and its revocation settings (omitted = none). */
function uploadBody (body: unknown): { pem: string, settings: RevocationSettings } {
  const pem = certificateField(body, ['certificate', 'crlUrls', 'ocsp'])
  const settings = parseRevocationSettings(body as Record<string, unknown>)
  if ('code' in settings) throw new ApiError(400, settings.code, settings.message)
  return { pem, settings }
}

export function createCertificateRoutes (deps: CertificateRouteDeps): AdminRoute {
  const found = async (name: string): Promise<CaRecord> => {
    const c = await deps.registry.getCa(name)
    if (c === undefined) throw new ApiError(404, 'ca_not_found', `no CA certificate named "${name}"`)
    return c
  }

  const one = async (req: AdminRequest, name: string): Promise<AdminResponse> => {
    const problem = caNameProblem(name)
    if (problem !== undefined) throw new ApiError(400, 'invalid_ca_name', problem)
    switch (req.method) {
      case 'GET': {
        const c = await found(name)
        return { status: 200, body: certificateResource(c), headers: etagHeader(c.etag) }
      }
      case 'PUT': {
        const { pem, settings } = uploadBody(req.body)
        const { record, created } = await api(async () => await deps.cas.upload(name, pem, ifMatch(req), settings))
        return { status: created ? 201 : 200, body: certificateResource(record), headers: etagHeader(record.etag) }
      }
      case 'DELETE': {
        const deleted = await api(async () => await deps.registry.deleteCa(name, ifMatch(req)))
        if (!deleted) throw new ApiError(404, 'ca_not_found', `no CA certificate named "${name}"`)
        return { status: 204 }
      }
      default:
        throw new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /certificates/{name}; use GET, PUT or DELETE`)
    }
  }

  const action = async (req: AdminRequest, name: string, verb: string): Promise<AdminResponse> => {
    if (req.method !== 'POST') throw new ApiError(405, 'method_not_allowed', `use POST /certificates/{name}/${verb}`)
    if (verb === 'generateVerificationCode') {
      const c = await api(async () => await deps.cas.generateVerificationCode(name))
      return { status: 200, body: { ...certificateResource(c), verificationCode: c.verificationCode, verificationCodeExpiry: c.verificationCodeExpiry }, headers: etagHeader(c.etag) }
    }
    const pem = certificateField(req.body)
    const c = await api(async () => await deps.cas.verify(name, pem))
    return { status: 200, body: certificateResource(c), headers: etagHeader(c.etag) }
  }

  return async (req) => {
    if (req.path === '/certificates') {
      if (req.method !== 'GET') throw new ApiError(405, 'method_not_allowed', 'use GET /certificates (PUT /certificates/{name} uploads)')
      return { status: 200, body: { value: (await deps.registry.listCas()).map(certificateResource) } }
    }
    const m = /^\/certificates\/([^/]+)\/(generateVerificationCode|verify)$/.exec(req.path)
    if (m !== null) {
      const name = pathParam(`/certificates/${m[1] ?? ''}`, '/certificates/') ?? ''
      return await action(req, name, m[2] ?? '')
    }
    const name = pathParam(req.path, '/certificates/')
    return name === undefined ? undefined : await one(req, name)
  }
}
