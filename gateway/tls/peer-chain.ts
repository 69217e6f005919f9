// Reads what the device sent, exactly once. getPeerX509Certificate() on its first call yields the
// certificates in wire order through .issuerCertificate links; the call is destructive (a second
// call, or getPeerCertificate(true) afterwards, sees only the leaf), so nothing else may call it.
// The links are positional, not verified: the result is an unordered, untrusted bag.
import type { TLSSocket } from 'node:tls'
import { MAX_SENT_CERTIFICATES } from '../../workers/types.js'

export interface SentChain {
  readonly leaf: Uint8Array
  /** Everything else the device sent, at most MAX_SENT_CERTIFICATES + 1 (so "too many" stays visible). */
  readonly intermediates: Uint8Array[]
}

export function readPeerChain (socket: TLSSocket): SentChain | undefined {
  const leaf = socket.getPeerX509Certificate()
  if (leaf === undefined) return undefined
  const intermediates: Uint8Array[] = []
  let next = leaf.issuerCertificate
  while (next !== undefined && intermediates.length <= MAX_SENT_CERTIFICATES) {
    // .raw owns an exact-size buffer, so cloning it to a worker copies only the certificate.
    intermediates.push(next.raw)
    next = next.issuerCertificate
  }
  return { leaf: leaf.raw, intermediates }
}
