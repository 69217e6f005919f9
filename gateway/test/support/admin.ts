// The admin API as tests call it: JSON over HTTP with the gateway's bearer token.
import type { Harness } from './harness.js'

export interface AdminAnswer { readonly status: number, readonly body: Record<string, unknown>, readonly etag: string | null }

export async function adminCall (h: Harness, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<AdminAnswer> {
  const res = await fetch(`http://127.0.0.1:${h.gw.admin.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${h.gw.adminToken}`, 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? {} : JSON.parse(text) as Record<string, unknown>, etag: res.headers.get('etag') }
}
