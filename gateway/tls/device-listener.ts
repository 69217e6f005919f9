// The device-facing TLS server (DESIGN.md §2): a client certificate is requested, no `ca` is
// configured (chain trust is certgate's decision, not OpenSSL's, and no CA names are advertised),
// session tickets are off so every connection is a full handshake, and handshakes time out.
// OpenSSL still proves possession of the leaf key (CertificateVerify) before 'secureConnection'.
import { constants } from 'node:crypto'
import { createServer, type TLSSocket } from 'node:tls'
import type { Socket } from 'node:net'
import type { HandshakeFailure } from '../metrics.js'
import { createAdmission } from './admission.js'

export interface DeviceListenerOptions {
  readonly host: string
  readonly port: number
  readonly certPem: string
  readonly keyPem: string
  readonly handshakeTimeoutMs: number
  readonly maxHandshakes: number
  readonly handshakeRatePerAddress: number
}

export interface DeviceListenerHooks {
  readonly onAccepted: () => void
  readonly onHandshakeFailed: (bucket: HandshakeFailure, err: Error & { code?: string }) => void
  readonly onSecure: (socket: TLSSocket) => void
}

export interface DeviceListener {
  readonly address: { host: string, port: number }
  /** Stops accepting; open connections stay. */
  stopAccepting: () => void
}

export function handshakeBucket (err: Error & { code?: string }): HandshakeFailure {
  const code = err.code ?? ''
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout'
  // A CertificateVerify that does not match the presented certificate: ECDSA reports a bad
  // signature (OpenSSL 3.0) or a provider signature failure (OpenSSL 3.5, Node 22+), RSA-PSS an
  // invalid first/last octet.
  if (/OCTET_INVALID|BAD_SIGNATURE|SIGNATURE_FAILURE|DIGEST_CHECK_FAILED/.test(code)) return 'bad_certificate_proof'
  if (code === 'ERR_SSL_NO_SHARED_CIPHER' || code === 'ERR_SSL_UNSUPPORTED_PROTOCOL' || code === 'ERR_SSL_NO_PROTOCOLS_AVAILABLE') return 'no_shared_cipher'
  if (code === 'ERR_SSL_HTTP_REQUEST' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'ERR_SSL_UNKNOWN_PROTOCOL') return 'not_tls'
  if (code.startsWith('ERR_SSL') || code === 'ECONNRESET') return 'protocol'
  return 'other'
}

export async function startDeviceListener (opts: DeviceListenerOptions, hooks: DeviceListenerHooks): Promise<DeviceListener> {
  const server = createServer({
    cert: opts.certPem,
    key: opts.keyPem,
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
    // No tickets: a resumed session carries only the leaf and a cached verdict (DESIGN.md §2).
    secureOptions: constants.SSL_OP_NO_TICKET,
    handshakeTimeout: opts.handshakeTimeoutMs,
    // MQTT and request/response traffic is small writes: Nagle plus delayed ACKs would add ~40 ms.
    noDelay: true
  })
  const admission = createAdmission({ maxHandshakes: opts.maxHandshakes, ratePerAddress: opts.handshakeRatePerAddress })
  server.on('connection', (raw: Socket) => {
    hooks.onAccepted()
    const refusal = admission.admit(raw.remoteAddress ?? '')
    if (refusal !== undefined) {
      hooks.onHandshakeFailed(refusal, Object.assign(new Error(`connection from ${raw.remoteAddress ?? '?'} refused before TLS: ${refusal}`), { code: refusal }))
      raw.destroy()
      return
    }
    // The handshake ends in 'secureConnection', 'tlsClientError' or the socket closing: count it once.
    let finished = false
    const finish = (): void => { if (!finished) { finished = true; admission.finished() } }
    handshakes.set(raw, finish)
    raw.once('close', finish)
  })
  const handshakes = new WeakMap<Socket, () => void>()
  // A server TLSSocket keeps the TCP socket it wraps as `_parent` (Node's _tls_wrap).
  const handshakeDone = (tls: TLSSocket): void => { handshakes.get((tls as TLSSocket & { _parent?: Socket | null })._parent ?? tls)?.() }
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    handshakeDone(socket)
    hooks.onHandshakeFailed(handshakeBucket(err), err)
    socket.destroy()
  })
  server.on('secureConnection', (socket: TLSSocket) => {
    handshakeDone(socket)
    hooks.onSecure(socket)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, opts.host, () => { server.off('error', reject); resolve() })
  })
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('device listener has no TCP address')
  return {
    address: { host: addr.address, port: addr.port },
    stopAccepting: () => { server.close() }
  }
}
