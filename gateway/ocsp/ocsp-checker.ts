// OCSP (RFC 6960) for devices under CAs the operator named responders for. Never on the handshake
// path: a connection is queried about once it is authenticated and forwarding; a new connection
// is only judged against answers already held (a map look-up). Only the CA's configured
// responders are asked (never a URL from a device certificate: no AIA), about the leaf, with the
// certificate above it in the validated path as the issuer.
//
// Answers are held per (issuer, serial) until their nextUpdate (5 min without one, 1 h at most), so
// connections of the same certificate meanwhile are not queried again; live connections are
// queried again when their answer runs out. `revoked` closes (and refuses) the certificate's
// connections; `unknown` or no answer follows the CA's policy: `open` lets it be (counted),
// `closed` closes it and, while no responder of the CA answers, refuses new connections without a
// held answer. Each gateway queries for its own connections; answers are not shared.
import { createExpiringLru } from '../../cache/expiring-lru.js'
import { parseCertificate, type Certificate } from '../../workers/certificate.js'
import { sha256Hex } from '../../workers/validate-chain.js'
import type { Identity } from '../auth/authenticate.js'
import type { LiveConnections, LiveEntry } from '../live/live-connections.js'
import type { CloseReason } from '../reasons.js'
import type { OcspPolicy, Registry } from '../registry/types.js'
import { certIdFor, ocspRequest, type CertId } from './ocsp-request.js'
import { readOcspResponse, type OcspCertStatus, type OcspFailureReason, type OcspResult } from './ocsp-response.js'
import { postOcsp, PostFailed } from './ocsp-post.js'
import { createSlots } from './slots.js'

export const OCSP_STATUSES = ['good', 'revoked', 'unknown', 'failed'] as const
export type OcspStatus = typeof OCSP_STATUSES[number]

export interface OcspTiming {
  /** Per responder exchange: connect, answer and body. */
  readonly timeoutMs: number
  readonly maxBytes: number
  /** How long an answer without nextUpdate is held. */
  readonly defaultValidityMs: number
  /** The longest an answer is held, whatever its nextUpdate (live connections are then asked about again). */
  readonly maxValidityMs: number
  /** Clock skew tolerated on an answer's thisUpdate and nextUpdate. */
  readonly skewMs: number
  /**
   * After no responder of a CA answered, it is not asked again for this long (connections meanwhile
   * get "no answer" at once), and with policy `closed` new connections without a held answer are refused.
   */
  readonly unreachableMs: number
  /** Exchanges in flight at once, over all responders (a reconnect storm must not become a storm on the responder). */
  readonly maxInflight: number
  /** How often live connections are looked at for an answer that ran out. */
  readonly refreshTickMs: number
  readonly cacheEntries: number
}

export const DEFAULT_OCSP_TIMING: OcspTiming = {
  timeoutMs: 5000, maxBytes: 64 * 1024, defaultValidityMs: 300_000, maxValidityMs: 3_600_000, skewMs: 60_000, unreachableMs: 30_000, refreshTickMs: 30_000, cacheEntries: 100_000, maxInflight: 32
}

/** One exchange with one responder, as metrics and logs see it. */
export interface OcspExchange {
  readonly ca: string
  readonly responder: string
  readonly status: OcspStatus
  readonly seconds: number
  readonly deviceId: string
  readonly failure?: { readonly reason: OcspFailureReason, readonly detail: string }
}

export interface OcspCheckerDeps {
  readonly registry: Registry
  readonly live: LiveConnections
  readonly onExchange: (e: OcspExchange) => void
  /** A connection judged by an answer already held (no exchange). */
  readonly onHeld?: (ca: string, deviceId: string, status: OcspCertStatus) => void
  readonly onError: (err: Error) => void
  readonly timing?: Partial<OcspTiming>
  readonly now?: () => number
}

export interface OcspRefusal { readonly reason: 'cert_revoked' | 'ocsp_unavailable', readonly detail: string }

export interface OcspChecker {
  /** For a new connection: why the answers held now refuse it, if they do. No I/O. */
  refusal: (identity: Identity) => OcspRefusal | undefined
  /** For a connection authenticated and forwarding: queries (unless an answer is held) and acts on the answer. */
  watch: (entry: LiveEntry, sent: { readonly intermediates: readonly Uint8Array[] }) => void
  stop: () => void
}

interface CaOcsp { readonly name: string, readonly thumbprint: string, readonly cert: Certificate, readonly responders: readonly string[], readonly policy: OcspPolicy }
interface Held { readonly status: OcspCertStatus, readonly responder: string, readonly revokedAt?: number | undefined }
type Outcome = Held | { readonly status: 'failed', readonly detail: string }
interface Watched { readonly ca: string, readonly key: string, readonly issuer: Certificate, readonly serial: string }

export function createOcspChecker (deps: OcspCheckerDeps): OcspChecker {
  const t: OcspTiming = { ...DEFAULT_OCSP_TIMING, ...deps.timing }
  const now = deps.now ?? Date.now
  const held = createExpiringLru<Held>({ maxEntries: t.cacheEntries, now })
  const issuers = createExpiringLru<Certificate>({ maxEntries: 1024, now })
  const unreachable = new Map<string, { until: number, detail: string }>()
  const inflight = new Map<string, Promise<Outcome>>()
  const watched = new Map<string, Map<LiveEntry, Watched>>()
  const aborter = new AbortController()
  const slots = createSlots(t.maxInflight)
  let cas = new Map<string, CaOcsp>()
  let stopped = false
  /** A function, not a variable read, so the check is not narrowed away across awaits. */
  const halted = (): boolean => stopped

  async function reload (): Promise<void> {
    const next = new Map<string, CaOcsp>()
    for (const c of await deps.registry.listCas()) {
      const o = c.settings.ocsp
      if (o === null || !c.isVerified) continue
      try {
        next.set(c.name, { name: c.name, thumbprint: c.thumbprint, cert: parseCertificate(c.certificateDer), responders: o.responders, policy: o.policy })
      } catch (err) { deps.onError(err as Error) }
    }
    cas = next
  }
  let ready = reload().catch(deps.onError)
  const offChange = deps.registry.onChange((c) => {
    if (c.kind === 'ca' || c.kind === 'bulk') ready = ready.then(reload).catch(deps.onError)
  })

  /** The CA's OCSP settings and the (issuer, serial) key of a certificateAuthority identity, if OCSP applies to it. */
  function target (identity: Identity): { ca: CaOcsp, key: string } | undefined {
    if (identity.authType !== 'certificateAuthority' || identity.caName === undefined) return undefined
    const ca = cas.get(identity.caName)
    const [leaf, issuer] = identity.path
    if (ca === undefined || leaf === undefined || issuer === undefined) return undefined
    return { ca, key: `${issuer.thumbprint}/${leaf.serial}` }
  }

  function refusalFor (ca: CaOcsp, key: string, serial: string): OcspRefusal | undefined {
    const h = held.get(key)
    if (h?.status === 'revoked') return { reason: 'cert_revoked', detail: revokedDetail(h, serial) }
    if (h?.status === 'good' || ca.policy === 'open') return undefined
    if (h?.status === 'unknown') return { reason: 'ocsp_unavailable', detail: `OCSP responder ${h.responder} does not know the device certificate (serial ${serial}); CA "${ca.name}" has OCSP policy "closed"` }
    const down = unreachable.get(ca.name)
    if (down !== undefined && down.until > now()) {
      return { reason: 'ocsp_unavailable', detail: `no OCSP responder of CA "${ca.name}" answered (${down.detail}); policy "closed" refuses new connections until one does (next try in ${Math.ceil((down.until - now()) / 1000)} s)` }
    }
    return undefined
  }

  /** Asks the CA's responders in order until one gives a usable answer; each exchange is reported. */
  async function query (ca: CaOcsp, w: Watched, deviceId: string): Promise<Outcome> {
    await slots.take()
    try {
      return await queryNow(ca, w, deviceId)
    } finally {
      slots.give()
    }
  }

  async function queryNow (ca: CaOcsp, w: Watched, deviceId: string): Promise<Outcome> {
    const known = knownDown(ca.name)
    if (known !== undefined) return known
    const id: CertId = certIdFor(w.issuer, w.serial)
    const body = ocspRequest(id)
    let last = 'no responder'
    for (const responder of ca.responders) {
      if (halted()) break
      const started = performance.now()
      let result: OcspResult
      try {
        const der = await postOcsp(responder, body, { timeoutMs: t.timeoutMs, maxBytes: t.maxBytes }, aborter.signal)
        result = readOcspResponse(new Uint8Array(der), { issuer: w.issuer, id, now: now(), skewMs: t.skewMs })
      } catch (err) {
        result = { status: 'failed', reason: err instanceof PostFailed ? err.reason : 'unreachable', detail: (err as Error).message }
      }
      const seconds = (performance.now() - started) / 1000
      if (halted()) break // aborted by stop: nothing to report or act on
      if (result.status === 'failed') {
        deps.onExchange({ ca: ca.name, responder, status: 'failed', seconds, deviceId, failure: { reason: result.reason, detail: result.detail } })
        last = `${responder}: ${result.detail}`
        continue
      }
      deps.onExchange({ ca: ca.name, responder, status: result.status, seconds, deviceId })
      unreachable.delete(ca.name)
      const h: Held = { status: result.status, responder, revokedAt: result.revokedAt }
      const t0 = now()
      held.set(w.key, h, Math.min(result.nextUpdate ?? t0 + t.defaultValidityMs, t0 + t.maxValidityMs))
      return h
    }
    if (!halted()) unreachable.set(ca.name, { until: now() + t.unreachableMs, detail: last })
    return { status: 'failed', detail: last }
  }

  /** "No answer" without asking, while the CA's responders are known down. */
  function knownDown (name: string): Outcome | undefined {
    const down = unreachable.get(name)
    return down !== undefined && down.until > now() ? { status: 'failed', detail: `known down since a moment ago: ${down.detail}` } : undefined
  }

  /** One query per (issuer, serial) at a time, however many connections wait for it. */
  function answerFor (ca: CaOcsp, w: Watched, deviceId: string): Promise<Outcome> {
    const h = held.get(w.key)
    if (h !== undefined) {
      deps.onHeld?.(ca.name, deviceId, h.status)
      return Promise.resolve(h)
    }
    let p = inflight.get(w.key)
    if (p === undefined) {
      p = query(ca, w, deviceId).finally(() => { inflight.delete(w.key) })
      inflight.set(w.key, p)
    }
    return p
  }

  /** What an outcome does to the connections of that certificate. */
  function apply (ca: CaOcsp, key: string, serial: string, outcome: Outcome): void {
    const entries = watched.get(key)
    if (entries === undefined) return
    let close: { reason: CloseReason, detail: string } | undefined
    if (outcome.status === 'revoked') close = { reason: 'cert_revoked', detail: revokedDetail(outcome, serial) }
    else if (outcome.status === 'unknown' && ca.policy === 'closed') {
      close = { reason: 'ocsp_unavailable', detail: `OCSP responder ${outcome.responder} does not know the device certificate (serial ${serial}); CA "${ca.name}" has OCSP policy "closed"` }
    } else if (outcome.status === 'failed' && ca.policy === 'closed') {
      close = { reason: 'ocsp_unavailable', detail: `no OCSP responder of CA "${ca.name}" answered (${outcome.detail}); its policy is "closed"` }
    }
    if (close === undefined) return
    for (const e of [...entries.keys()]) {
      entries.delete(e)
      e.close(close.reason, close.detail)
    }
    if (entries.size === 0) watched.delete(key)
  }

  async function check (entry: LiveEntry, w: Watched): Promise<void> {
    await ready
    const ca = cas.get(w.ca)
    if (ca === undefined || halted()) return
    const outcome = await answerFor(ca, w, entry.identity.deviceId)
    if (!halted()) apply(cas.get(w.ca) ?? ca, w.key, w.serial, outcome)
  }

  /** The certificate above the leaf in the validated path: the registered CA, or an intermediate the device sent. */
  function issuerOf (identity: Identity, ca: CaOcsp, sent: readonly Uint8Array[]): Certificate | undefined {
    const thumbprint = identity.path[1]?.thumbprint
    if (thumbprint === undefined) return undefined
    if (thumbprint === ca.thumbprint) return ca.cert
    const known = issuers.get(thumbprint)
    if (known !== undefined) return known
    const der = sent.find((d) => sha256Hex(d) === thumbprint)
    if (der === undefined) return undefined
    const cert = parseCertificate(der)
    issuers.set(thumbprint, cert, cert.notAfter)
    return cert
  }

  function watch (entry: LiveEntry, w: Watched): void {
    let entries = watched.get(w.key)
    if (entries === undefined) { entries = new Map(); watched.set(w.key, entries) }
    entries.set(entry, w)
    check(entry, w).catch(deps.onError)
  }

  /** Live connections whose answer ran out are asked about again; closed ones are forgotten. */
  const refresh = setInterval(() => {
    for (const [key, entries] of watched) {
      for (const [e, w] of entries) {
        if (!deps.live.byDevice(e.identity.deviceId).includes(e) || !cas.has(w.ca)) entries.delete(e)
        else if (!held.has(key)) check(e, w).catch(deps.onError)
      }
      if (entries.size === 0) watched.delete(key)
    }
  }, t.refreshTickMs)
  refresh.unref()

  return {
    refusal (identity) {
      const found = target(identity)
      return found === undefined ? undefined : refusalFor(found.ca, found.key, identity.path[0]?.serial ?? '')
    },
    watch (entry, sent) {
      const found = target(entry.identity)
      if (found === undefined || stopped) return
      let issuer: Certificate | undefined
      try { issuer = issuerOf(entry.identity, found.ca, sent.intermediates) } catch (err) { deps.onError(err as Error) }
      // Not expected (the validator built the path from what was sent); without it nothing can be asked.
      if (issuer === undefined) {
        if (found.ca.policy === 'closed') entry.close('ocsp_unavailable', `the issuer of the device certificate could not be found to ask CA "${found.ca.name}"'s OCSP responders; its policy is "closed"`)
        return
      }
      watch(entry, { ca: found.ca.name, key: found.key, issuer, serial: entry.identity.path[0]?.serial ?? '' })
    },
    stop () {
      stopped = true
      offChange()
      clearInterval(refresh)
      aborter.abort()
      watched.clear()
    }
  }
}

function revokedDetail (h: Held, serial: string): string {
  const at = h.revokedAt === undefined ? '' : ` since ${new Date(h.revokedAt).toISOString()}`
  return `the device certificate (serial ${serial}) is revoked${at}, says OCSP responder ${h.responder}`
}

