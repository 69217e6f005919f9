// Admission control before any TLS work is spent: a cap on handshakes in progress, and a
// per-source-address token bucket on new handshakes. A refused TCP connection is closed at once.
// Pure bookkeeping (injected clock), no sockets.

export type AdmissionRefusal = 'over_capacity' | 'rate_limited'

export interface AdmissionOptions {
  /** Handshakes in progress at once; further connections are closed (0 = no cap). */
  readonly maxHandshakes: number
  /** New handshakes per second per source address (0 = no limit); bursts up to twice that. */
  readonly ratePerAddress: number
  /** Source addresses tracked at most; beyond it the least recently seen are forgotten. */
  readonly maxAddresses?: number
  readonly now?: () => number
}

export interface Admission {
  /** Admits a new connection from `address`, or says why not. Admitted ones must call `finished`. */
  admit: (address: string) => AdmissionRefusal | undefined
  /** The handshake of an admitted connection ended (either way). */
  finished: () => void
  readonly inProgress: number
}

interface Bucket { tokens: number, at: number }

export function createAdmission (opts: AdmissionOptions): Admission {
  const now = opts.now ?? Date.now
  const maxAddresses = opts.maxAddresses ?? 100_000
  const burst = opts.ratePerAddress * 2
  // A Map iterates in insertion order: re-inserting on use keeps the oldest first for eviction.
  const buckets = new Map<string, Bucket>()
  let inProgress = 0

  const takeToken = (address: string): boolean => {
    const t = now()
    const b = buckets.get(address) ?? { tokens: burst, at: t }
    b.tokens = Math.min(burst, b.tokens + ((t - b.at) / 1000) * opts.ratePerAddress)
    b.at = t
    buckets.delete(address)
    buckets.set(address, b)
    if (buckets.size > maxAddresses) buckets.delete(buckets.keys().next().value as string)
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  return {
    admit (address) {
      if (opts.maxHandshakes > 0 && inProgress >= opts.maxHandshakes) return 'over_capacity'
      if (opts.ratePerAddress > 0 && !takeToken(address)) return 'rate_limited'
      inProgress++
      return undefined
    },
    finished () { inProgress = Math.max(0, inProgress - 1) },
    get inProgress () { return inProgress }
  }
}
