// Holds the next DNS lookup of one host name in this process (node:net resolves names through
// dns.lookup at connect time), so a test can act at a known point while a connection to that
// name is being opened, instead of sleeping and hoping it is there: `opening` settles when the
// lookup starts, and it goes on only at `release()`.
import { createRequire } from 'node:module'

type Lookup = (host: string, options: unknown, callback: unknown) => void

export interface HeldLookup {
  /** Settles when a connection to the host has started resolving it. */
  readonly opening: Promise<void>
  /** Lets the held lookup go on (and any later ones through at once). */
  release: () => void
  /** Puts dns.lookup back; releases a held lookup. */
  restore: () => void
}

export function holdNextLookup (host: string): HeldLookup {
  // The module object itself (an ES namespace import is read-only): net reads dns.lookup per connect.
  const dns = createRequire(import.meta.url)('node:dns') as { lookup: Lookup }
  const original = dns.lookup
  let started = (): void => undefined
  const opening = new Promise<void>((resolve) => { started = resolve })
  let release = (): void => undefined
  const released = new Promise<void>((resolve) => { release = resolve })
  let armed = true
  dns.lookup = (name, options, callback) => {
    if (!armed || name !== host) { original.call(dns, name, options, callback); return }
    armed = false
    started()
    void released.then(() => { original.call(dns, name, options, callback) })
  }
  return {
    opening,
    release,
    restore: () => { dns.lookup = original; release() }
  }
}
