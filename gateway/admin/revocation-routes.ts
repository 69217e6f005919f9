// Admin API for revocation: the deny-list (`/revocations/{thumbprint}`) and the CRLs held per CA
// (`/certificates/{name}/crl`: the CA's own, or with `?issuerThumbprint=` the one an intermediate
// under it signed; `/certificates/{name}/crls` lists them all). Every change goes through the
// registry, which announces it to every gateway sharing it; the admin server writes the audit record.
import { caNameProblem } from '../control/ca-service.js'
import { CrlRefused, crlNumberJson, type CrlService } from '../control/crl-service.js'
import type { CrlRecord, Registry, RevocationRecord } from '../registry/types.js'
import { ApiError, type AdminRequest, type AdminResponse, type AdminRoute } from './admin-server.js'
import { objectBody, pathParam } from './http-helpers.js'

export interface RevocationRouteDeps {
  readonly registry: Registry
  readonly crls: CrlService
}

const THUMBPRINT = /^[0-9a-fA-F]{64}$/
const MAX_REASON = 1024

export function revocationResource (r: RevocationRecord): Record<string, unknown> {
  return { thumbprint: r.thumbprint, reason: r.reason, created: r.createdAt, updated: r.updatedAt }
}

export function crlResource (c: CrlRecord): Record<string, unknown> {
  return { issuer: c.issuer, issuerThumbprint: c.issuerThumbprint, thisUpdate: c.thisUpdate, nextUpdate: c.nextUpdate,
    crlNumber: crlNumberJson(c.crlNumber), revokedCount: c.revokedCount, updated: c.updatedAt }
}

function reasonField (body: unknown): string | null {
  if (body === undefined) return null
  const b = objectBody(body, ['reason'])
  if (b.reason === undefined || b.reason === null) return null
  if (typeof b.reason !== 'string' || b.reason.length > MAX_REASON) throw new ApiError(400, 'invalid_body',
    `reason must be a string of at most ${MAX_REASON} characters`)
  return b.reason
}

export function createRevocationRoutes (deps: RevocationRouteDeps): AdminRoute {
  const denyEntry = async (req: AdminRequest, raw: string): Promise<AdminResponse> => {
    if (req.method !== 'GET' && req.method !== 'PUT' && req.method !== 'DELETE') throw new ApiError(405, 'method_not_allowed',
      `${req.method} is not allowed on /revocations/{thumbprint}; use GET, PUT or DELETE`)
    // Contract: thumbprints are SHA-256 hex, case-insensitive on input; stored lowercase.
    if (!THUMBPRINT.test(raw)) throw new ApiError(400, 'invalid_thumbprint', 'a thumbprint is the SHA-256 of the certificate DER as 64 hex digits')
    const thumbprint = raw.toLowerCase()
    switch (req.method) {
      case 'GET': {
        const hit = (await deps.registry.listRevocations()).find((r) => r.thumbprint === thumbprint)
        if (hit === undefined) throw new ApiError(404, 'revocation_not_found', `${thumbprint} is not on the deny-list`)
        return { status: 200, body: revocationResource(hit) }
      }
      case 'PUT': {
        const { record, created } = await deps.registry.putRevocation(thumbprint, reasonField(req.body))
        return { status: created ? 201 : 200, body: revocationResource(record) }
      }
      default:
        // DELETE: any other method was refused above.
        if (!await deps.registry.deleteRevocation(thumbprint)) throw new ApiError(404, 'revocation_not_found', `${thumbprint} is not on the deny-list`)
        return { status: 204 }
    }
  }

  /** `?issuerThumbprint=<hex>`: a delegated issuer's CRL; absent: the CA's own. */
  const issuerParam = (req: AdminRequest): string | null => {
    const raw = req.query.get('issuerThumbprint')
    if (raw === null || raw === '') return null
    if (!THUMBPRINT.test(raw)) throw new ApiError(400, 'invalid_thumbprint',
      'issuerThumbprint is the SHA-256 of the issuing intermediate\'s DER as 64 hex digits')
    return raw.toLowerCase()
  }
  const notHeld = (name: string, issuer: string | null): ApiError =>
    new ApiError(404, 'crl_not_found', issuer === null ? `no CRL of its own is held for CA "${name}"` : `no CRL signed by ${issuer} is held for CA "${name}"`)

  const crl = async (req: AdminRequest, name: string): Promise<AdminResponse> => {
    const problem = caNameProblem(name)
    if (problem !== undefined) throw new ApiError(400, 'invalid_ca_name', problem)
    switch (req.method) {
      case 'GET': {
        const issuer = issuerParam(req)
        const held = await deps.registry.getCrl(name, issuer)
        if (held === undefined) throw notHeld(name, issuer)
        return { status: 200, body: crlResource(held) }
      }
      case 'PUT': {
        const b = objectBody(req.body, ['crl', 'issuerCertificate'])
        if (typeof b.crl !== 'string' || b.crl === '') throw new ApiError(400, 'invalid_body',
          'send {"crl": "<PEM, or base64 of the DER>"}, with "issuerCertificate": "<PEM>" when an intermediate under the CA signed it')
        if (b.issuerCertificate !== undefined && (typeof b.issuerCertificate !== 'string' || b.issuerCertificate === '')) throw new ApiError(400,
          'invalid_body', 'issuerCertificate is the PEM of the intermediate that signed the CRL (then any intermediates between it and the CA)')
        const text = b.crl
        try {
          return { status: 200, body: crlResource(await deps.crls.upload(name, text, b.issuerCertificate)) }
        } catch (err) {
          if (err instanceof CrlRefused) throw new ApiError(err.status, err.code, err.message)
          throw err
        }
      }
      case 'DELETE': {
        const issuer = issuerParam(req)
        if (!await deps.registry.deleteCrl(name, issuer)) throw notHeld(name, issuer)
        return { status: 204 }
      }
      default:
        throw new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /certificates/{name}/crl; use GET, PUT or DELETE`)
    }
  }

  const crlList = async (req: AdminRequest, name: string): Promise<AdminResponse> => {
    const problem = caNameProblem(name)
    if (problem !== undefined) throw new ApiError(400, 'invalid_ca_name', problem)
    if (req.method !== 'GET') throw new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /certificates/{name}/crls; use GET`)
    if (await deps.registry.getCa(name) === undefined) throw new ApiError(404, 'ca_not_found', `no CA certificate named "${name}"`)
    const held = (await deps.registry.listCrls()).filter((c) => c.caName === name)
    return { status: 200, body: { value: held.map(crlResource) } }
  }

  return async (req) => {
    if (req.path === '/revocations') {
      if (req.method !== 'GET') throw new ApiError(405, 'method_not_allowed', 'use GET /revocations (PUT /revocations/{thumbprint} adds an entry)')
      return { status: 200, body: { value: (await deps.registry.listRevocations()).map(revocationResource) } }
    }
    const thumbprint = pathParam(req.path, '/revocations/')
    if (thumbprint !== undefined) return await denyEntry(req, thumbprint)
    const m = /^\/certificates\/([^/]+)\/(crls?)$/.exec(req.path)
    if (m === null) return undefined
    const name = pathParam(`/certificates/${m[1] ?? ''}`, '/certificates/') ?? ''
    return m[2] === 'crls' ? await crlList(req, name) : await crl(req, name)
  }
}
