// Background CRL fetching: for each registered, verified CA, the http(s) CRL distribution points of
// the CA certificate the operator registered (never a URL from a certificate a device sent, which
// would let any device make certgate call any address). A fetched CRL goes through the same CRL
// service as `PUT /certificates/{name}/crl`, so every check, the registry storage, its change
// announcement and live teardown apply. Runs on timers, never on the handshake path.
import http from 'node:http'
import https from 'node:https'
import { crlDistributionPointUrls } from '../../workers/crl-distribution-points.js'
import { bytesEqual } from '../../workers/der.js'
import { CrlRefused, crlDer, MAX_CRL_BYTES, type CrlService } from './crl-service.js'
import type { CaRecord, Registry } from '../registry/types.js'

export const CRL_FETCH_OUTCOMES = ['updated', 'unchanged', 'failed'] as const
export type CrlFetchOutcome = typeof CRL_FETCH_OUTCOMES[number]

export interface CrlFetchTiming {
  /** How often the CA list is looked at for fetches that are due. */
  readonly tickMs: number
  /** Bounds of the wait between fetches of one CA (and of the retry backoff). */
  readonly minRefreshMs: number
  readonly maxRefreshMs: number
  /** Per request: connect, answer and body. */
  readonly timeoutMs: number
  readonly maxBytes: number
}

export const DEFAULT_CRL_FETCH_TIMING: CrlFetchTiming = { tickMs: 10_000, minRefreshMs: 30_000, maxRefreshMs: 3_600_000, timeoutMs: 10_000, maxBytes: MAX_CRL_BYTES }

export interface CrlFetcherDeps {
  readonly registry: Registry
  readonly crls: CrlService
  readonly onFetched: (ca: string, outcome: CrlFetchOutcome, url: string, err?: Error) => void
  readonly timing?: Partial<CrlFetchTiming>
  readonly now?: () => number
}

export interface CrlFetcher { stop: () => void }

interface Due { at: number, failures: number, thumbprint: string }

export function startCrlFetcher (deps: CrlFetcherDeps): CrlFetcher {
  const t: CrlFetchTiming = { ...DEFAULT_CRL_FETCH_TIMING, ...deps.timing }
  const now = deps.now ?? Date.now
  const due = new Map<string, Due>()
  let stopped = false
  // Aborts a request in flight on stop, so closing never waits for a slow distribution point.
  const aborter = new AbortController()
  let running = false

  const clamp = (ms: number): number => Math.min(t.maxRefreshMs, Math.max(t.minRefreshMs, ms))

  /** 80 % of the way to the held CRL's nextUpdate, so a fresh one is in before the old one lapses. */
  async function nextAfterSuccess (ca: string): Promise<number> {
    const held = await deps.registry.getCrl(ca)
    const next = held === undefined || held.nextUpdate === null ? undefined : Date.parse(held.nextUpdate)
    return now() + clamp(next === undefined ? t.maxRefreshMs : 0.8 * (next - now()))
  }

  /** The story of one CA's refresh: try its URLs in order until one gives a CRL the service takes or already holds. */
  async function refresh (ca: CaRecord, urls: readonly string[]): Promise<boolean> {
    for (const url of urls) {
      if (stopped) return false
      try {
        const der = crlDer(toText(await get(url, t, aborter.signal)))
        const held = await deps.registry.getCrl(ca.name)
        if (held !== undefined && held.caThumbprint === ca.thumbprint && bytesEqual(held.der, der)) {
          deps.onFetched(ca.name, 'unchanged', url)
          return true
        }
        await deps.crls.upload(ca.name, Buffer.from(der).toString('base64'))
        deps.onFetched(ca.name, 'updated', url)
        return true
      } catch (err) {
        // A CRL older than the one held (another gateway or an upload got a newer one) is no failure.
        if (err instanceof CrlRefused && err.code === 'crl_older_than_held') {
          deps.onFetched(ca.name, 'unchanged', url)
          return true
        }
        deps.onFetched(ca.name, 'failed', url, err as Error)
      }
    }
    return false
  }

  async function tick (): Promise<void> {
    const cas = await deps.registry.listCas()
    const seen = new Set<string>()
    for (const ca of cas) {
      if (stopped) return
      if (!ca.isVerified) continue
      let urls: string[]
      try { urls = crlDistributionPointUrls(ca.certificateDer) } catch { urls = [] }
      if (urls.length === 0) continue
      seen.add(ca.name)
      const d = due.get(ca.name)
      if (d !== undefined && d.thumbprint === ca.thumbprint && d.at > now()) continue
      const failures = d?.thumbprint === ca.thumbprint ? d.failures : 0
      if (await refresh(ca, urls)) due.set(ca.name, { at: await nextAfterSuccess(ca.name), failures: 0, thumbprint: ca.thumbprint })
      else due.set(ca.name, { at: now() + clamp(t.minRefreshMs * 2 ** Math.min(failures, 16)), failures: failures + 1, thumbprint: ca.thumbprint })
    }
    for (const name of [...due.keys()]) if (!seen.has(name)) due.delete(name)
  }

  const run = (): void => {
    if (stopped || running) return
    running = true
    void tick().catch(() => { /* the registry is unreachable: the next tick tries again */ }).finally(() => { running = false })
  }
  const timer = setInterval(run, t.tickMs)
  timer.unref()
  setImmediate(run)
  return { stop: () => { stopped = true; clearInterval(timer); aborter.abort() } }
}

/** A CRL is served as DER (RFC 5280 §4.2.1.13: "application/pkix-crl") or, by some, as PEM. */
function toText (body: Buffer): string {
  return body.includes('-----BEGIN') ? body.toString('latin1') : body.toString('base64')
}

/** GET over http or https only; no redirects followed (they could lead anywhere); a timeout and a size cap. */
async function get (url: string, t: CrlFetchTiming, signal: AbortSignal): Promise<Buffer> {
  const u = new URL(url)
  const lib = u.protocol === 'http:' ? http : u.protocol === 'https:' ? https : undefined
  if (lib === undefined) throw new Error(`only http and https CRL URLs are fetched, not ${u.protocol}`)
  return await new Promise<Buffer>((resolve, reject) => {
    const req = lib.get(u, { timeout: t.timeoutMs, signal, headers: { accept: 'application/pkix-crl' } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        reject(new Error(`${url} answered ${res.statusCode ?? '?'} (redirects are not followed)`))
        return
      }
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        if (size > t.maxBytes) req.destroy(new Error(`${url} sent more than ${t.maxBytes} bytes`))
        else chunks.push(c)
      })
      res.on('end', () => { resolve(Buffer.concat(chunks)) })
      res.on('error', reject)
    })
    const deadline = setTimeout(() => { req.destroy(new Error(`${url} did not answer within ${t.timeoutMs} ms`)) }, t.timeoutMs)
    req.on('timeout', () => { req.destroy(new Error(`${url} went silent for ${t.timeoutMs} ms`)) })
    req.on('error', reject)
    req.on('close', () => { clearTimeout(deadline) })
  })
}
