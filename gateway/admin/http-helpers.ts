// Small request helpers shared by the admin routes: path parameters, If-Match, ETag headers and
// strict JSON object bodies (unknown fields are refused by name, so typos do not pass silently).
import { ApiError, type AdminRequest } from './admin-server.js'

/** The single path segment after `prefix`, percent-decoded; undefined when the path is not of that shape. */
export function pathParam (path: string, prefix: string): string | undefined {
  if (!path.startsWith(prefix)) return undefined
  const rest = path.slice(prefix.length)
  if (rest === '' || rest.includes('/')) return undefined
  try {
    return decodeURIComponent(rest)
  } catch {
    throw new ApiError(400, 'invalid_path', `"${rest}" is not valid percent-encoding`)
  }
}

/** The If-Match etag, without quotes or a weak prefix; '*' stays '*'. */
export function ifMatch (req: AdminRequest): string | undefined {
  const headers: Record<string, string | string[] | undefined> = req.headers
  const raw = headers['if-match']
  const v: string | undefined = Array.isArray(raw) ? raw[0] : raw
  if (v === undefined || v.trim() === '') return undefined
  return v.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1')
}

export function etagHeader (etag: string): Record<string, string> {
  return { etag: `"${etag}"` }
}

/** A JSON object with only the allowed keys. */
export function objectBody (body: unknown, allowed: readonly string[], what = 'the request body'): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, 'invalid_body', `${what} must be a JSON object`)
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k))
  if (unknown.length > 0) throw new ApiError(400, 'unknown_field', `${what} has unknown field(s): ${unknown.join(', ')}; allowed: ${allowed.join(', ')}`)
  return body as Record<string, unknown>
}
