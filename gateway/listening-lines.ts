// The "certgate listening ..." lines `certgate start` prints once the listeners are up (the
// contract's line): written by the single process or, in a process group, by the primary.
import { formatHostPort, type HostPort } from './config.js'

/** The contract's line per device listener; the listener's name and protocol follow when there are several. */
export function listeningLines (listeners: ReadonlyArray<{ name: string, protocol: string, address: HostPort }>, admin: HostPort): string {
  const one = listeners.length === 1
  return listeners.map((l) => `certgate listening device=${formatHostPort(l.address)} admin=${formatHostPort(admin)}${one ? '' : ` listener=${l.name} protocol=${l.protocol}`}\n`).join('')
}
