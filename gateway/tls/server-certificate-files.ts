// The gateway's own server certificate and key as PEM files that an operator (ACME, cert-manager,
// an internal CA) renews in place: read and checked as a pair, then watched, files and their
// directories both (an atomic rename replaces the file a watch was on; a Kubernetes secret swaps
// a `..data` symlink in the directory), and re-read on demand (SIGHUP). A pair that cannot be
// served (unreadable, malformed, key not matching, expired or not yet valid) is reported once per
// change and never replaces the one in use. Knows nothing of sockets: the listener applies it.
import { readFileSync, watch, type FSWatcher } from 'node:fs'
import { createHash, X509Certificate } from 'node:crypto'
import { createSecureContext } from 'node:tls'
import { dirname, resolve } from 'node:path'
import { errorMessage } from '../../workers/errors.js'

export interface ServerPair {
  readonly certPem: string
  readonly keyPem: string
  /** notAfter of the leaf, ms since the epoch. */
  readonly notAfter: number
  /** SHA-256 of the leaf DER, hex. */
  readonly fingerprint: string
}

export type PairRead = { readonly ok: true, readonly pair: ServerPair } | { readonly ok: false, readonly detail: string }

/** Reads and checks a certificate/key pair; never throws. */
export function readServerPair (certFile: string, keyFile: string, now = Date.now()): PairRead {
  let certPem: string
  let keyPem: string
  try {
    certPem = readFileSync(certFile, 'utf8')
    keyPem = readFileSync(keyFile, 'utf8')
  } catch (err) {
    return { ok: false, detail: `cannot read the pair: ${errorMessage(err)}` }
  }
  let leaf: X509Certificate
  try {
    leaf = new X509Certificate(certPem)
  } catch (err) {
    return { ok: false, detail: `${certFile} is not a PEM certificate (${errorMessage(err)})` }
  }
  try {
    // Loads the whole chain and the key and checks that they match, as the listener would.
    createSecureContext({ cert: certPem, key: keyPem })
  } catch (err) {
    return { ok: false, detail: `${certFile} and ${keyFile} cannot be served together (${errorMessage(err)})` }
  }
  const notAfter = Date.parse(leaf.validTo)
  if (notAfter <= now) return { ok: false, detail: `${certFile} expired at ${new Date(notAfter).toISOString()}` }
  const notBefore = Date.parse(leaf.validFrom)
  if (notBefore > now) return { ok: false, detail: `${certFile} is not valid before ${new Date(notBefore).toISOString()}` }
  return { ok: true, pair: { certPem, keyPem, notAfter, fingerprint: createHash('sha256').update(leaf.raw).digest('hex') } }
}

export interface PairWatchHooks {
  /** A new, good pair (not called when the files changed but the pair is the same). */
  readonly onReloaded: (pair: ServerPair) => void
  /** The files changed into something that cannot be served; the last good pair stays. */
  readonly onFailed: (detail: string) => void
}

export interface PairWatch {
  /** Re-reads now (SIGHUP). */
  reload: () => void
  stop: () => void
}

/**
 * Watches the pair, starting from `current`. Changes are gathered for `settleMs` (a renewal
 * writes the certificate and the key one after the other) before the pair is re-read.
 */
export function watchServerPair (files: { readonly certFile: string, readonly keyFile: string }, current: ServerPair, hooks: PairWatchHooks,
  settleMs = 100): PairWatch {
  let served = current
  let lastFailure: string | undefined
  let timer: NodeJS.Timeout | undefined
  const reload = (): void => {
    if (timer !== undefined) { clearTimeout(timer); timer = undefined }
    const read = readServerPair(files.certFile, files.keyFile)
    if (!read.ok) {
      // One error per distinct problem, not one per file event.
      if (read.detail !== lastFailure) hooks.onFailed(read.detail)
      lastFailure = read.detail
      return
    }
    lastFailure = undefined
    if (read.pair.fingerprint === served.fingerprint && read.pair.keyPem === served.keyPem) return
    served = read.pair
    hooks.onReloaded(read.pair)
  }
  const changed = (): void => {
    if (timer !== undefined) clearTimeout(timer)
    timer = setTimeout(reload, settleMs)
    timer.unref()
  }
  const watchers: FSWatcher[] = []
  const paths = new Set([resolve(files.certFile), resolve(files.keyFile), dirname(resolve(files.certFile)), dirname(resolve(files.keyFile))])
  for (const p of paths) {
    try {
      const w = watch(p, { persistent: false }, changed)
      // A watched file replaced by rename stops reporting; its directory's watch still does.
      w.on('error', () => undefined)
      watchers.push(w)
    } catch {
      // A path that cannot be watched (gone for a moment): the others, and SIGHUP, still work.
    }
  }
  return {
    reload,
    stop: () => {
      if (timer !== undefined) clearTimeout(timer)
      for (const w of watchers) w.close()
    }
  }
}
