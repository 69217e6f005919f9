// Lets a log line about an address through at most once per interval, counting the ones held
// back, so a device (or a flood from one address) cannot fill the log. Bounded memory: the
// addresses seen longest ago are forgotten first.
export interface OncePerAddress {
  /** undefined: hold this one back; else let it through, with how many were held back since the last. */
  admit: (address: string) => { readonly suppressed: number } | undefined
}

export function createOncePerAddress (opts: { readonly intervalMs: number, readonly maxAddresses: number, readonly now?: () => number }): OncePerAddress {
  const now = opts.now ?? Date.now
  const seen = new Map<string, { at: number, suppressed: number }>()
  return {
    admit (address) {
      const t = now()
      const last = seen.get(address)
      if (last !== undefined && t - last.at < opts.intervalMs) { last.suppressed++; return undefined }
      const suppressed = last?.suppressed ?? 0
      seen.delete(address) // re-inserted last: Map order is then least recently let through first
      seen.set(address, { at: t, suppressed: 0 })
      if (seen.size > opts.maxAddresses) {
        const oldest = seen.keys().next()
        if (oldest.done !== true) seen.delete(oldest.value)
      }
      return { suppressed }
    }
  }
}
