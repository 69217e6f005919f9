// The admin listener: /healthz and /metrics (no token), and the admin API (bearer token,
// compared in constant time). Errors are {"error":{"code","message"}} with a 4xx status.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createHash, timingSafeEqual } from 'node:crypto'
import type { HostPort } from '../config.js'
import type { AuditLog } from '../registry/audit-log.js'
import { errorMessage } from '../../workers/errors.js'

export interface AdminRequest {
  readonly method: string
  readonly path: string
  readonly query: URLSearchParams
  readonly headers: IncomingMessage['headers']
  readonly body: unknown
}
export interface AdminResponse { readonly status: number, readonly body?: unknown, readonly headers?: Record<string, string> }
export type AdminRoute = (req: AdminRequest) => Promise<AdminResponse | undefined>

export class ApiError extends Error {
  override name = 'ApiError'
  constructor (readonly status: number, readonly code: string, message: string) { super(message) }
}

export interface AdminServerOptions {
  readonly listen: HostPort
  readonly token: string
  readonly maxBodyBytes: number
  /** A larger limit for some paths (CRL uploads run to megabytes). */
  readonly bodyLimit?: (path: string) => number | undefined
}

export interface AdminServerDeps {
  /** Undefined when ready for devices; otherwise why not (`/healthz` answers 503 with it). */
  readonly notReady: () => string | undefined
  readonly metricsText: () => Promise<string>
  /** Authenticated API routes; the first that answers wins. */
  readonly routes: readonly AdminRoute[]
  /** Where every non-GET request with a valid token is recorded. */
  readonly audit?: AuditLog
}

export interface AdminServer { readonly address: HostPort, close: () => Promise<void> }

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

function send (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) { res.writeHead(status, headers).end(); return }
  const text = typeof body === 'string' ? body : JSON.stringify(body)
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json', ...headers }).end(text)
}

function sendError (res: ServerResponse, e: ApiError): void {
  send(res, e.status, { error: { code: e.code, message: e.message } }, e.status === 401 ? { 'www-authenticate': 'Bearer' } : {})
}

async function readJson (req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw new ApiError(413, 'body_too_large', `the request body exceeds ${limit} bytes`)
    chunks.push(chunk)
  }
  if (size === 0) return undefined
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
  } catch (err) {
    throw new ApiError(400, 'malformed_json', `the request body is not valid JSON: ${errorMessage(err)}`)
  }
}

export async function startAdminServer (opts: AdminServerOptions, deps: AdminServerDeps): Promise<AdminServer> {
  const expected = digest(opts.token)
  const authorized = (header: string | undefined): boolean => {
    const m = /^Bearer (.+)$/.exec(header ?? '')
    // Comparing digests keeps the comparison constant-time whatever the length sent.
    return m !== null && timingSafeEqual(digest(m[1] as string), expected)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin')
    const method = req.method ?? 'GET'
    if (method === 'GET' && url.pathname === '/healthz') {
      const why = deps.notReady()
      send(res, why === undefined ? 200 : 503, { status: why ?? 'ok' })
      return
    }
    if (method === 'GET' && url.pathname === '/metrics') { send(res, 200, await deps.metricsText(),
      { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }); return }
    if (!authorized(req.headers.authorization)) throw new ApiError(401, 'unauthorized',
      'missing or wrong bearer token: send Authorization: Bearer <token> (see <data>/admin-token)')
    const limit = opts.bodyLimit?.(url.pathname) ?? opts.maxBodyBytes
    const declared = Number(req.headers['content-length'] ?? 0)
    if (declared > limit) throw new ApiError(413, 'body_too_large', `the request body exceeds ${limit} bytes`)
    const body = await readJson(req, limit)
    const request: AdminRequest = { method, path: url.pathname, query: url.searchParams, headers: req.headers, body }
    for (const route of deps.routes) {
      const answer = await route(request)
      if (answer !== undefined) { send(res, answer.status, answer.body, answer.headers); return }
    }
    throw new ApiError(404, 'not_found', `no ${method} ${url.pathname} in the admin API`)
  }

  // Who called: the token's fingerprint (never the token) and the address.
  const caller = (req: IncomingMessage): string => `token:${expected.subarray(0, 4).toString('hex')}@${req.socket.remoteAddress ?? '?'}`
  const audit = (req: IncomingMessage, res: ServerResponse, error: string | undefined): void => {
    if (deps.audit === undefined || req.method === 'GET' || req.method === 'HEAD' || !authorized(req.headers.authorization)) return
    const path = new URL(req.url ?? '/', 'http://admin').pathname
    deps.audit.record({ caller: caller(req),
      action: `${req.method ?? ''} ${path.replace(/^\/(devices|certificates|revocations)\/[^/]+/, '/$1/{id}')}`, resource: path,
      status: res.statusCode, error })
  }

  const server = createServer((req, res) => {
    handle(req, res).then(() => { audit(req, res, undefined) }, (err: unknown) => {
      const e = err instanceof ApiError ? err : new ApiError(500, 'internal_error', errorMessage(err))
      sendError(res, e)
      audit(req, res, e.code)
      // Unread oversized bodies: close rather than drain them.
      if (!req.complete) res.once('finish', () => req.destroy())
    })
  })
  server.requestTimeout = 30_000
  server.headersTimeout = 10_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.listen.port, opts.listen.host, () => { server.off('error', reject); resolve() })
  })
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('admin listener has no TCP address')
  return {
    address: { host: addr.address, port: addr.port },
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
