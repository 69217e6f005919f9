// The device-facing TLS server (DESIGN.md §2): a client certificate is requested, no `ca` is
// configured (chain trust is certgate's decision, not OpenSSL's, and no CA names are advertised),
// session tickets are off so every connection is a full handshake, and handshakes time out.
// OpenSSL still proves possession of the leaf key (CertificateVerify) before 'secureConnection'.
// Behind load balancers, connections from trusted balancer addresses must start with a PROXY
// header (v1 or v2) naming the device, whose address admission, logs and the upstream then see;
// a PROXY header from anyone else is refused.
import { constants } from 'node:crypto'
import { createServer, type TLSSocket } from 'node:tls'
import { createServer as createTcpServer, isIPv4, type BlockList, type Server, type Socket } from 'node:net'
import type { HandshakeFailure } from '../reasons.js'
import { createAdmission } from './admission.js'
import { readProxyHeader, sendsProxyHeader } from '../proxy-protocol/read-header.js'
import type { Endpoint } from '../proxy-protocol/v2-header.js'

/** Who the device is, network-wise: from a trusted balancer's PROXY header, or the socket itself. */
export interface Peer { readonly source: Endpoint, readonly destination: Endpoint }

export interface DeviceListenerOptions {
  readonly host: string
  readonly port: number
  readonly certPem: string
  readonly keyPem: string
  readonly handshakeTimeoutMs: number
  readonly maxHandshakes: number
  readonly handshakeRatePerAddress: number
  /** Balancer addresses whose connections carry a PROXY header; undefined: none. */
  readonly trustedProxies: BlockList | undefined
}

export interface DeviceListenerHooks {
  readonly onAccepted: () => void
  /** `address`: the device's (from a trusted balancer's header when there is one). */
  readonly onHandshakeFailed: (bucket: HandshakeFailure, err: Error & { code?: string, reason?: string }, address: string) => void
  readonly onSecure: (socket: TLSSocket, peer: Peer) => void
}

export interface DeviceListener {
  readonly address: { host: string, port: number }
  /** Stops accepting; open connections stay. */
  stopAccepting: () => void
  /** Serves this certificate and key to new handshakes; connections already open keep theirs. */
  setCertificate: (certPem: string, keyPem: string) => void
}

export function handshakeBucket (err: Error & { code?: string }): HandshakeFailure {
  const code = err.code ?? ''
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout'
  // A CertificateVerify that does not match the presented certificate: ECDSA reports a bad
  // signature (OpenSSL 3.0) or a provider signature failure (OpenSSL 3.5, Node 22+), RSA-PSS an
  // invalid first/last octet.
  if (/OCTET_INVALID|BAD_SIGNATURE|SIGNATURE_FAILURE|DIGEST_CHECK_FAILED/.test(code)) return 'bad_certificate_proof'
  // A certificate OpenSSL will not use in the handshake: a key on a curve TLS does not allow
  // (secp256k1: "wrong curve"), a key type or signature scheme it cannot use, a key too small for
  // its security level, a certificate it cannot decode. The device's fault, not the network's.
  if (new RegExp([
    'WRONG_CURVE', 'WRONG_SIGNATURE_TYPE', 'UNKNOWN_CERTIFICATE_TYPE', 'UNSUPPORTED_CERTIFICATE', 'BAD_ECPOINT', 'KEY_TOO_SMALL', 'MD_TOO_WEAK',
    'CERT_LENGTH_MISMATCH', 'BAD_CERTIFICATE', 'ILLEGAL_POINT_COMPRESSION', 'UNSUPPORTED_ELLIPTIC_CURVE', 'NO_SUITABLE_SIGNATURE_ALGORITHM'
  ].join('|')).test(code)) {
    return 'bad_certificate'
  }
  if (code === 'ERR_SSL_NO_SHARED_CIPHER' || code === 'ERR_SSL_UNSUPPORTED_PROTOCOL' || code === 'ERR_SSL_NO_PROTOCOLS_AVAILABLE') return 'no_shared_cipher'
  if (code === 'ERR_SSL_HTTP_REQUEST' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'ERR_SSL_UNKNOWN_PROTOCOL') {
    return 'not_tls'
  }
  if (code.startsWith('ERR_SSL') || code === 'ECONNRESET') return 'protocol'
  return 'other'
}

/** The socket's own addresses. `destination` is read only for an upstream PROXY header: getsockname is a system call (~15 µs here) most connections never need. */
class SocketPeer implements Peer {
  readonly source: Endpoint
  private local: Endpoint | undefined
  constructor (private readonly socket: Socket) {
    this.source = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 }
  }

  get destination (): Endpoint {
    return (this.local ??= { address: this.socket.localAddress ?? '', port: this.socket.localPort ?? 0 })
  }
}

const peerOf = (s: Socket): Peer => new SocketPeer(s)

export async function startDeviceListener (opts: DeviceListenerOptions, hooks: DeviceListenerHooks): Promise<DeviceListener> {
  const context = {
    minVersion: 'TLSv1.2',
    // No tickets: a resumed session carries only the leaf and a cached verdict (DESIGN.md §2).
    secureOptions: constants.SSL_OP_NO_TICKET
  } as const
  const server = createServer({
    cert: opts.certPem,
    key: opts.keyPem,
    requestCert: true,
    rejectUnauthorized: false,
    ...context,
    handshakeTimeout: opts.handshakeTimeoutMs,
    // MQTT and request/response traffic is small writes: Nagle plus delayed ACKs would add ~40 ms.
    noDelay: true
  })
  const admission = createAdmission({ maxHandshakes: opts.maxHandshakes, ratePerAddress: opts.handshakeRatePerAddress })
  /** Each admitted TCP connection's peer, and how its handshake ends (counted once). */
  const admitted = new WeakMap<Socket, { readonly peer: Peer, readonly finish: () => void }>()
  const closeBeforeTls = (raw: Socket, bucket: HandshakeFailure, detail: string): void => {
    hooks.onHandshakeFailed(bucket, Object.assign(new Error(detail), { code: bucket }), (admitted.get(raw)?.peer ?? peerOf(raw)).source.address)
    raw.destroy()
  }
  /** Admission by the device's address, then the TLS handshake (counted until it ends). */
  const admit = (raw: Socket, peer: Peer): boolean => {
    const refusal = admission.admit(peer.source.address)
    if (refusal !== undefined) { closeBeforeTls(raw, refusal, `connection from ${peer.source.address} refused before TLS: ${refusal}`); return false }
    // The handshake ends in 'secureConnection', 'tlsClientError' or the socket closing: count it once.
    let finished = false
    const finish = (): void => { if (!finished) { finished = true; admission.finished() } }
    admitted.set(raw, { peer, finish })
    raw.once('close', finish)
    return true
  }
  // The balancer's header is read before TLS starts, so then a plain TCP server accepts and hands
  // each connection to the TLS server; otherwise the TLS server accepts directly.
  const trusted = opts.trustedProxies
  let front: Server = server
  if (trusted === undefined) {
    server.on('connection', (raw: Socket) => {
      hooks.onAccepted()
      admit(raw, peerOf(raw))
    })
  } else {
    front = createTcpServer({ noDelay: true })
    front.on('connection', (raw: Socket) => {
      hooks.onAccepted()
      raw.on('error', () => undefined)
      void proxied(raw, trusted).then((peer) => {
        if (peer !== undefined && !raw.destroyed && admit(raw, peer)) server.emit('connection', raw)
      })
    })
  }
  const proxied = async (raw: Socket, list: BlockList): Promise<Peer | undefined> => {
    const direct = peerOf(raw)
    const address = direct.source.address
    const v4 = address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : undefined
    if (v4 !== undefined ? list.check(v4, 'ipv4') : list.check(address, isIPv4(address) ? 'ipv4' : 'ipv6')) {
      const header = await readProxyHeader(raw, opts.handshakeTimeoutMs)
      if (!header.ok) { closeBeforeTls(raw, 'proxy_header_invalid', `trusted balancer ${address}: ${header.detail}`); return undefined }
      // LOCAL / UNKNOWN: the balancer's own connection (a health check), as it is.
      return header.source === undefined || header.destination === undefined ? direct : { source: header.source, destination: header.destination }
    }
    if (await sendsProxyHeader(raw, opts.handshakeTimeoutMs)) {
      closeBeforeTls(raw, 'proxy_header_untrusted', `${address} sent a PROXY header but is not a trusted balancer (CERTGATE_TRUSTED_PROXIES)`)
      return undefined
    }
    return direct
  }
  // A server TLSSocket keeps the TCP socket it wraps as `_parent` (Node's _tls_wrap, not documented):
  // tls/test/device-listener.test.ts fails on any Node release that changes it.
  const parentOf = (tls: TLSSocket): Socket => (tls as TLSSocket & { _parent?: Socket | null })._parent ?? tls
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    const raw = parentOf(socket)
    const known = admitted.get(raw)
    known?.finish()
    hooks.onHandshakeFailed(handshakeBucket(err), err, (known?.peer ?? peerOf(raw)).source.address)
    socket.destroy()
  })
  server.on('secureConnection', (socket: TLSSocket) => {
    const known = admitted.get(parentOf(socket))
    known?.finish()
    hooks.onSecure(socket, known?.peer ?? peerOf(socket))
  })
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject)
    front.listen(opts.port, opts.host, () => { front.off('error', reject); resolve() })
  })
  const addr = front.address()
  if (addr === null || typeof addr === 'string') throw new Error('device listener has no TCP address')
  return {
    address: { host: addr.address, port: addr.port },
    stopAccepting: () => { front.close() },
    // The same options again: setSecureContext builds a new context from what it is given.
    setCertificate: (certPem, keyPem) => { server.setSecureContext({ cert: certPem, key: keyPem, ...context }) }
  }
}
