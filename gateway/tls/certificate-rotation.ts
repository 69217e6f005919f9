// Server certificate rotation for one device listener: the pair it serves is watched (when it
// comes from files the operator owns, not the generated development certificate) and re-read on
// SIGHUP; a good new pair goes to the listener for the next handshake (live connections keep
// theirs), a bad one is logged once and counted, and the last good pair stays.
import { createHash, X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'
import type { Metrics } from '../metrics.js'
import { watchServerPair, type ServerPair } from './server-certificate-files.js'

export interface CertificateRotation {
  /** Re-reads the files now (SIGHUP); a no-op for a generated certificate. */
  reload: () => void
  stop: () => void
}

export interface CertificateRotationOptions {
  readonly listener: string
  /** The files served; undefined for the generated development certificate (never rotated). */
  readonly files: { readonly certFile: string, readonly keyFile: string } | undefined
  readonly initial: { readonly certPem: string, readonly keyPem: string }
}

export function startCertificateRotation (opts: CertificateRotationOptions,
  deps: { apply: (pair: ServerPair) => void, metrics: Metrics, log: Logger }): CertificateRotation {
  const leaf = new X509Certificate(opts.initial.certPem)
  const initial: ServerPair = { ...opts.initial, notAfter: Date.parse(leaf.validTo), fingerprint: createHash('sha256').update(leaf.raw).digest('hex') }
  deps.metrics.serverCertificate(opts.listener, initial.notAfter)
  if (opts.files === undefined) return { reload: () => undefined, stop: () => undefined }
  const { certFile, keyFile } = opts.files
  const watch = watchServerPair(opts.files, initial, {
    onReloaded: (pair) => {
      deps.apply(pair)
      deps.metrics.serverCertificate(opts.listener, pair.notAfter)
      deps.metrics.serverCertificateReload(opts.listener, 'reloaded')
      deps.log.info({ event: 'server_certificate_reloaded', listener: opts.listener, certFile, fingerprint: pair.fingerprint,
        notAfter: new Date(pair.notAfter).toISOString() }, 'serving the new server certificate to new connections')
    },
    onFailed: (detail) => {
      deps.metrics.serverCertificateReload(opts.listener, 'failed')
      deps.log.error({ event: 'server_certificate_reload_failed', listener: opts.listener, certFile, keyFile, detail },
        'the changed server certificate cannot be served; keeping the last good one')
    }
  })
  return watch
}
