// A bounded LRU whose entries carry their own absolute expiry: an entry is never served after
// the moment the caller says it stops being true (for a verified intermediate: the earliest
// notAfter of the certificates it vouches for). Pure; the only importer of lru-cache.
import { LRUCache } from 'lru-cache'

export interface ExpiringLru<V extends object> {
  /** The value, or undefined when absent or expired; counts a hit or a miss. */
  get: (key: string) => V | undefined
  /** Stores until `expiresAt` (ms since epoch); an already-expired value is not stored. */
  set: (key: string, value: V, expiresAt: number) => void
  /** Whether an unexpired value is held, without counting a hit or a miss or refreshing its recency. */
  has: (key: string) => boolean
  clear: () => void
  readonly size: number
  /** Hits and misses since the last call; resets the counters. */
  takeStats: () => { hits: number, misses: number }
}

export interface ExpiringLruOptions {
  readonly maxEntries: number
  /** Injected clock (ms since epoch), so expiry is testable without waiting. */
  readonly now?: () => number
}

export function createExpiringLru<V extends object> (options: ExpiringLruOptions): ExpiringLru<V> {
  const now = options.now ?? Date.now
  const lru = new LRUCache<string, { value: V, expiresAt: number }>({ max: options.maxEntries })
  let hits = 0
  let misses = 0
  return {
    get (key) {
      const entry = lru.get(key)
      if (entry === undefined) { misses++; return undefined }
      if (entry.expiresAt <= now()) { lru.delete(key); misses++; return undefined }
      hits++
      return entry.value
    },
    set (key, value, expiresAt) {
      if (expiresAt <= now()) { lru.delete(key); return }
      lru.set(key, { value, expiresAt })
    },
    has (key) {
      const entry = lru.peek(key)
      return entry !== undefined && entry.expiresAt > now()
    },
    clear () { lru.clear() },
    get size () { return lru.size },
    takeStats () {
      const s = { hits, misses }
      hits = 0
      misses = 0
      return s
    }
  }
}
