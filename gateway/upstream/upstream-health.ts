// Fail fast while the upstream is down, without a retry storm against it. After a failed connect
// the upstream is "down": new devices are refused at once, and one connection attempt at a time is
// let through as a probe, after a backoff that doubles (with jitter) up to a ceiling. The first
// success makes it "up" again, so devices recover on their own once the broker is back.
export interface UpstreamHealth {
  /** Undefined: connect now (as the probe, if down). Otherwise the sentence to refuse with. */
  admit: () => string | undefined
  succeeded: () => void
  failed: (detail: string) => void
  isUp: () => boolean
}

export interface UpstreamHealthOptions {
  readonly target: string
  readonly firstBackoffMs?: number
  readonly maxBackoffMs?: number
  /**
   * How long a probe may take to report before another is let through (an attempt whose caller
   * never says how it went, say a request the device abandoned, must not leave the upstream
   * "down" for good). Default 5 s, the upstream connect timeout's default.
   */
  readonly probeWindowMs?: number
  readonly now?: () => number
  readonly random?: () => number
  /** Told when the upstream goes down or comes back (logs, the up/down gauge). */
  readonly onChange?: (up: boolean, detail: string) => void
  /** Told of every connection attempt that failed (not of devices refused without one). */
  readonly onAttemptFailed?: () => void
}

export function createUpstreamHealth (opts: UpstreamHealthOptions): UpstreamHealth {
  const now = opts.now ?? Date.now
  const random = opts.random ?? Math.random
  const first = opts.firstBackoffMs ?? 250
  const max = opts.maxBackoffMs ?? 5000
  const probeWindow = opts.probeWindowMs ?? 5000
  let down: { since: number, backoffMs: number, retryAt: number, detail: string } | undefined
  return {
    admit: () => {
      if (down === undefined) return undefined
      const t = now()
      // One probe at a time: the next is due only once this one has had its window.
      if (t >= down.retryAt) { down.retryAt = t + probeWindow; return undefined }
      const wait = Math.max(0, Math.ceil((down.retryAt - t) / 1000))
      return `upstream ${opts.target} is unreachable (${down.detail}) since ${new Date(down.since).toISOString()}; certgate probes it again within ${wait} s`
    },
    succeeded: () => {
      if (down === undefined) return
      down = undefined
      opts.onChange?.(true, `upstream ${opts.target} is reachable again`)
    },
    failed: (detail) => {
      opts.onAttemptFailed?.()
      const t = now()
      const backoffMs = down === undefined ? first : Math.min(max, down.backoffMs * 2)
      const wasUp = down === undefined
      // Jitter (50-100 %) so gateways restarted together do not probe in step.
      down = { since: down?.since ?? t, backoffMs, retryAt: t + backoffMs * (0.5 + random() / 2), detail }
      if (wasUp) opts.onChange?.(false, `upstream ${opts.target} is unreachable: ${detail}`)
    },
    isUp: () => down === undefined
  }
}
