// Change events shared between the processes of one machine when the registry cannot announce
// them itself (SQLite: each process has its own connection and hears only its own writes). Every
// local change is published; changes published by the other processes reach this registry's
// listeners as if made here. PostgreSQL needs none of this: LISTEN/NOTIFY reaches every process.
import type { Registry, RegistryChange } from './types.js'

export interface ChangeRelay {
  /** Sends a change made in this process to the others. */
  publish: (change: RegistryChange) => void
  /** Changes made in the other processes. */
  subscribe: (listener: (change: RegistryChange) => void) => () => void
}

export function withRelayedChanges (inner: Registry, relay: ChangeRelay): Registry {
  const stopPublishing = inner.onChange((c) => { relay.publish(c) })
  return {
    ...inner,
    onChange: (listener) => {
      const offLocal = inner.onChange(listener)
      const offRemote = relay.subscribe(listener)
      return () => { offLocal(); offRemote() }
    },
    close: async () => {
      stopPublishing()
      await inner.close()
    }
  }
}
