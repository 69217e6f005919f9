// The CLI's connection to a running gateway's admin API, with the global fetch. Where: --admin,
// else CERTGATE_ADMIN_URL, else http://127.0.0.1:8080 (the gateway's default admin listener).
// Token: --token, else CERTGATE_ADMIN_TOKEN, else the admin-token file the gateway wrote in its
// data directory (CERTGATE_DATA_DIR, else ./data), so on the gateway's machine nothing is needed.
// An API refusal becomes CommandFailed carrying the API's error code and message.
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { CliEnv } from './context.js'
import { CommandFailed, UsageError } from './errors.js'
import { errorMessage } from '../../workers/errors.js'

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8080'
const TIMEOUT_MS = 60_000

/** The flags every command that talks to the gateway takes. */
export const ADMIN_FLAGS = { admin: { type: 'string' }, token: { type: 'string' } } as const
export const ADMIN_HELP = `  --admin URL      the gateway's admin API (default: CERTGATE_ADMIN_URL, else ${DEFAULT_ADMIN_URL})
  --token TOKEN    admin bearer token (default: CERTGATE_ADMIN_TOKEN, else the file
                   <CERTGATE_DATA_DIR or ./data>/admin-token); prefer those two: a flag is
                   visible to other local users in the process list`

/** The API answered with an error: `{"error": {"code", "message"}}` and a 4xx/5xx status. */
export class ApiRefused extends CommandFailed {
  override name = 'ApiRefused'
  constructor (readonly status: number, readonly code: string, readonly apiMessage: string) {
    super(`${code} (HTTP ${status}): ${apiMessage}`)
  }
}

export interface AdminReply {
  readonly status: number
  readonly body: unknown
  readonly headers: Headers
}

export interface RequestOptions {
  /** Sent as JSON. */
  readonly body?: unknown
  /** Already-serialized JSON (bulk requests build theirs without a second copy). */
  readonly json?: string
  readonly headers?: Readonly<Record<string, string>>
}

export class AdminClient {
  constructor (readonly url: string, private readonly token: string) {}

  async request (method: string, path: string, opts: RequestOptions = {}): Promise<AdminReply> {
    const body = opts.json ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body))
    let res: Response
    try {
      res = await fetch(this.url + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...opts.headers },
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(TIMEOUT_MS)
      })
    } catch (err) {
      throw new CommandFailed(`cannot reach the admin API at ${this.url}: ${networkProblem(err)} (is certgate running? point --admin or CERTGATE_ADMIN_URL at its admin listener)`)
    }
    const text = await res.text()
    let parsed: unknown = text
    if (text !== '' && (res.headers.get('content-type') ?? '').includes('json')) {
      try { parsed = JSON.parse(text) } catch { /* reported below as not JSON where it matters */ }
    }
    if (res.status >= 400) {
      const e = apiError(parsed)
      throw new ApiRefused(res.status, e?.code ?? `http_${res.status}`, e?.message ?? (text === '' ? res.statusText : text.slice(0, 500)))
    }
    return { status: res.status, body: text === '' ? undefined : parsed, headers: res.headers }
  }
}

function apiError (body: unknown): { code: string, message: string } | undefined {
  if (typeof body !== 'object' || body === null) return undefined
  const e = (body as { error?: unknown }).error
  if (typeof e !== 'object' || e === null) return undefined
  const { code, message } = e as { code?: unknown, message?: unknown }
  return typeof code === 'string' && typeof message === 'string' ? { code, message } : undefined
}

function networkProblem (err: unknown): string {
  if (err instanceof Error && err.name === 'TimeoutError') return `no answer within ${TIMEOUT_MS / 1000} s`
  const cause = err instanceof Error ? err.cause : undefined
  if (cause instanceof Error) return (cause as NodeJS.ErrnoException).code ?? cause.message
  return err instanceof Error ? err.message : String(err)
}

/**
 * One path segment. "." and ".." are valid deviceIds, but URL parsers resolve them (even
 * percent-encoded) as dot segments, so such a device cannot be addressed by URL at all.
 */
export function segment (value: string): string {
  if (value === '.' || value === '..') {
    throw new CommandFailed(`"${value}" cannot be addressed in an admin API URL (HTTP clients resolve it as a relative path segment)`)
  }
  return encodeURIComponent(value)
}

/** The client for --admin/--token and the environment, as described above. */
export function adminClient (flags: { readonly admin?: string | undefined, readonly token?: string | undefined }, env: CliEnv, cwd: string,
  usage: string): AdminClient {
  const raw = flags.admin ?? env.adminUrl ?? DEFAULT_ADMIN_URL
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new UsageError(`the admin URL "${raw}" is not a URL; expected http://host:port`, usage)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`the admin URL "${raw}" must start with http:// or https://`, usage)
  const base = url.href.replace(/\/+$/, '')
  return new AdminClient(base, flags.token ?? env.adminToken ?? tokenFromDataDir(resolve(cwd, env.dataDir ?? './data')))
}

function tokenFromDataDir (dataDir: string): string {
  const file = join(dataDir, 'admin-token')
  let token: string
  try {
    token = readFileSync(file, 'utf8').trim()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new CommandFailed(`no admin token: pass --token, set CERTGATE_ADMIN_TOKEN, or set CERTGATE_DATA_DIR to the gateway's data directory (${file}: ${code === 'ENOENT' ? 'not found' : errorMessage(err)})`)
  }
  if (token === '') throw new CommandFailed(`${file} is empty; pass --token or set CERTGATE_ADMIN_TOKEN`)
  return token
}
