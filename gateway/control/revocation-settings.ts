// A CA's revocation settings as the operator sends them on `PUT /certificates/{name}`: the URLs
// certgate may call for that CA (CRLs, OCSP responders) and what to do without an OCSP answer.
// These are the only addresses revocation ever fetches from: never one taken from a certificate
// a device sent. Checked once here; what reaches the registry is well formed.
import { OCSP_POLICIES, type OcspPolicy, type RevocationSettings } from '../registry/types.js'

export const MAX_CRL_URLS = 8
export const MAX_OCSP_RESPONDERS = 4
export const MAX_URL_CHARS = 2048

export type SettingsProblem = { readonly code: 'invalid_crl_urls' | 'invalid_ocsp', readonly message: string }

/** Why `url` may not be called, if it may not: absolute http(s), no userinfo, bounded. */
export function urlProblem (url: unknown): string | undefined {
  if (typeof url !== 'string' || url === '') return 'each URL is a non-empty string'
  if (url.length > MAX_URL_CHARS) return `a URL is at most ${MAX_URL_CHARS} characters`
  let u: URL
  try { u = new URL(url) } catch { return `"${url}" is not an absolute URL` }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `"${url}" is not http: or https:`
  // Credentials in a URL end up in logs and metrics-adjacent messages; the PKI endpoints are public.
  if (u.username !== '' || u.password !== '') return `"${url}" carries a user name or password; name the URL without credentials`
  return undefined
}

function urls (v: unknown, max: number, min: number, what: string): string | readonly string[] {
  if (!Array.isArray(v)) return `${what} is an array of URLs`
  if (v.length < min || v.length > max) return `${what} holds ${min === 0 ? 'at most' : `${min} to`} ${max} URLs`
  for (const u of v) { const p = urlProblem(u); if (p !== undefined) return `${what}: ${p}` }
  if (new Set(v).size !== v.length) return `${what} names a URL twice`
  return v as string[]
}

/**
 * The settings in a certificate body (`crlUrls`, `ocsp`), or what is wrong with them. An omitted
 * field is none: the body is the whole desired state, so a re-PUT without `ocsp` turns OCSP off.
 */
export function parseRevocationSettings (body: Record<string, unknown>): RevocationSettings | SettingsProblem {
  let crlUrls: readonly string[] = []
  if (body.crlUrls !== undefined && body.crlUrls !== null) {
    const r = urls(body.crlUrls, MAX_CRL_URLS, 0, '"crlUrls"')
    if (typeof r === 'string') return { code: 'invalid_crl_urls', message: r }
    crlUrls = r
  }
  if (body.ocsp === undefined || body.ocsp === null) return { crlUrls, ocsp: null }
  const o = body.ocsp
  if (typeof o !== 'object' || Array.isArray(o)) return { code: 'invalid_ocsp', message: '"ocsp" is {"responders": ["http://..."], "policy": "open" | "closed"}' }
  const extra = Object.keys(o).filter((k) => k !== 'responders' && k !== 'policy')
  if (extra.length > 0) return { code: 'invalid_ocsp', message: `"ocsp" has unknown field(s): ${extra.join(', ')}; allowed: responders, policy` }
  const { responders, policy } = o as { responders?: unknown, policy?: unknown }
  const r = urls(responders, MAX_OCSP_RESPONDERS, 1, '"ocsp.responders"')
  if (typeof r === 'string') return { code: 'invalid_ocsp', message: r }
  // Closed by default: without an answer, a device under this CA is not let in.
  if (policy !== undefined && !(OCSP_POLICIES as readonly unknown[]).includes(policy)) return { code: 'invalid_ocsp', message: '"ocsp.policy" is "open" or "closed" (default "closed")' }
  return { crlUrls, ocsp: { responders: r, policy: (policy ?? 'closed') as OcspPolicy } }
}
