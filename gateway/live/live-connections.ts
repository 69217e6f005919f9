// Authenticated connections by deviceId, so a registry or trust change can close exactly the
// ones it affects. Also closes connections whose certificates pass notAfter (swept twice a
// second, so within a second of expiry) and, optionally, connections older than a maximum age.
import type { Identity } from '../auth/authenticate.js'
import type { CloseReason } from '../reasons.js'

export interface LiveEntry {
  readonly identity: Identity
  readonly listener: string
  readonly openedAt: number
  close: (reason: CloseReason, detail: string) => void
  /** Counts the bytes forwarded since the last call (long-lived connections report while open). */
  flushBytes: () => void
}

export interface LiveConnections {
  /** Tracks a connection until the returned function is called. */
  track: (entry: LiveEntry) => () => void
  byDevice: (deviceId: string) => readonly LiveEntry[]
  all: () => LiveEntry[]
  /** Closes every entry matching `predicate`; returns how many. */
  closeWhere: (predicate: (e: LiveEntry) => boolean, reason: CloseReason, detail: string) => number
  count: (listener?: string) => number
  stop: () => void
}

export interface LiveConnectionsOptions {
  readonly sweepIntervalMs?: number
  /** Close connections older than this (0 = never). */
  readonly maxConnectionAgeMs?: number
  readonly now?: () => number
}

export function createLiveConnections (options: LiveConnectionsOptions = {}): LiveConnections {
  const now = options.now ?? Date.now
  const devices = new Map<string, Set<LiveEntry>>()
  const perListener = new Map<string, number>()
  let size = 0
  const bump = (listener: string, by: number): void => { perListener.set(listener, (perListener.get(listener) ?? 0) + by) }

  const all = (): LiveEntry[] => { const out: LiveEntry[] = []; for (const set of devices.values()) out.push(...set); return out }
  const closeWhere = (predicate: (e: LiveEntry) => boolean, reason: CloseReason, detail: string): number => {
    let n = 0
    for (const e of all()) if (predicate(e)) { e.close(reason, detail); n++ }
    return n
  }

  const maxAge = options.maxConnectionAgeMs ?? 0
  const sweep = setInterval(() => {
    const t = now()
    closeWhere((e) => e.identity.notAfter < t, 'cert_expired', 'a certificate the connection was authenticated with has expired')
    if (maxAge > 0) closeWhere((e) => t - e.openedAt > maxAge, 'max_age', `the connection reached the maximum age of ${maxAge} ms`)
  }, options.sweepIntervalMs ?? 500)
  sweep.unref()

  return {
    track (entry) {
      let set = devices.get(entry.identity.deviceId)
      if (set === undefined) { set = new Set(); devices.set(entry.identity.deviceId, set) }
      set.add(entry)
      size++
      bump(entry.listener, 1)
      let tracked = true
      return () => {
        if (!tracked) return
        tracked = false
        size--
        bump(entry.listener, -1)
        // The usual case, a device's only connection: its set goes, unshrunk.
        if (set.size === 1) devices.delete(entry.identity.deviceId)
        else set.delete(entry)
      }
    },
    byDevice: (id) => [...(devices.get(id) ?? [])],
    all,
    closeWhere,
    count: (listener) => listener === undefined ? size : perListener.get(listener) ?? 0,
    stop: () => { clearInterval(sweep) }
  }
}
