// One gateway process of a group (CERTGATE_PROCESSES > 1), on its side of the IPC channel to the
// group's primary: tells the primary it is listening, sends its registry changes for the other
// processes and receives theirs, and asks the primary for the whole group's metrics when its
// admin listener is scraped.
import type { HostPort } from '../config.js'
import type { GroupLink } from '../gateway.js'
import { shareWithGroup } from '../metrics.js'
import type { RegistryChange } from '../registry/types.js'
import { GROUP_BROKER_ENV, isPrimaryMessage, type ListeningOn, type MemberMessage } from './messages.js'
import { parseHostPort, type HostPort as Address } from '../config.js'

export interface GroupMember extends GroupLink {
  /** The group's embedded broker, when a listener has no upstream (the primary runs it). */
  readonly broker: HostPort | undefined
  ready: (listeners: readonly ListeningOn[], admin: HostPort) => void
}

/** `env`: the process environment (the CLI entry passes it), for the group's broker address. */
export function joinGroup (env: NodeJS.ProcessEnv): GroupMember {
  const send = (m: MemberMessage): void => {
    // The channel is gone only when the primary is (this process then exits): nothing to tell.
    if (process.connected) process.send?.(m)
  }
  const listeners = new Set<(c: RegistryChange) => void>()
  const pending = new Map<number, { resolve: (text: string) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }>()
  let nextId = 0

  process.on('message', (m: unknown) => {
    if (!isPrimaryMessage(m)) return
    if (m.certgate === 'change') {
      for (const l of listeners) l(m.change)
      return
    }
    const p = pending.get(m.id)
    if (p === undefined) return
    pending.delete(m.id)
    clearTimeout(p.timer)
    if (m.text !== undefined) p.resolve(m.text)
    else p.reject(new Error(`collecting the group's metrics failed: ${m.error ?? 'no answer'}`))
  })

  const broker = env[GROUP_BROKER_ENV]
  return {
    broker: broker === undefined ? undefined : parseHostPort(broker, GROUP_BROKER_ENV) satisfies Address,
    ready: (listeners, admin) => { send({ certgate: 'ready', listeners, admin }) },
    changes: {
      publish: (change) => { send({ certgate: 'change', change }) },
      subscribe: (listener) => { listeners.add(listener); return () => listeners.delete(listener) }
    },
    shareMetrics: shareWithGroup,
    metricsText: async () => await new Promise((resolve, reject) => {
      const id = nextId++
      const timer = setTimeout(() => { pending.delete(id); reject(new Error('the group\'s metrics did not arrive within 10 s')) }, 10_000)
      pending.set(id, { resolve, reject, timer })
      send({ certgate: 'metrics_request', id })
    })
  }
}
