// A short memory of refused certificate chains, by SHA-256 of exactly what the device sent: a
// device that keeps retrying with a chain just refused is refused again without validating it
// again (sending different intermediates is a different chain). Refusals that
// depend on the moment rather than the certificate (overload, internal or registry errors, the
// upstream, the MQTT session) are not remembered, and any registry change forgets everything, so
// a fix (enabling the device, registering the CA) applies to the very next connection.
import { createHash } from 'node:crypto'
import { createExpiringLru } from '../../cache/expiring-lru.js'
import type { RefusalReason } from '../reasons.js'

export interface Remembered { readonly reason: RefusalReason, readonly detail: string, readonly deviceId?: string | undefined }

export interface SentCertificates { readonly leaf: Uint8Array, readonly intermediates: readonly Uint8Array[] }

export interface RefusalMemory {
  recall: (sent: SentCertificates) => Remembered | undefined
  remember: (sent: SentCertificates, refusal: Remembered) => void
  forget: () => void
}

const MOMENTARY: ReadonlySet<RefusalReason> = new Set<RefusalReason>([
  'overloaded', 'validator_failed', 'registry_unavailable', 'upstream_unavailable', 'mqtt_protocol_error', 'mqtt_client_id_mismatch', 'no_client_cert'
])

export function createRefusalMemory (opts: { ttlMs: number, maxEntries: number, now?: () => number }): RefusalMemory {
  const now = opts.now ?? Date.now
  const lru = createExpiringLru<Remembered>({ maxEntries: Math.max(1, opts.maxEntries), now })
  const key = (sent: SentCertificates): string => {
    const h = createHash('sha256').update(sent.leaf)
    // Length-prefixed, so certificate boundaries are part of what is hashed.
    for (const der of sent.intermediates) h.update(String(der.length)).update(der)
    return h.digest('base64')
  }
  return {
    recall: (sent) => {
      // Nothing remembered (the usual case): no hashing of what the device sent.
      if (opts.ttlMs <= 0 || lru.size === 0) return undefined
      const hit = lru.get(key(sent))
      return hit === undefined ? undefined : { ...hit, detail: `${hit.detail} (refused moments ago; not validated again)` }
    },
    remember: (sent, refusal) => {
      if (opts.ttlMs > 0 && !MOMENTARY.has(refusal.reason)) lru.set(key(sent), refusal, now() + opts.ttlMs)
    },
    forget: () => { lru.clear() }
  }
}
