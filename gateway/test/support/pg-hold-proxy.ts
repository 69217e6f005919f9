// A TCP proxy in front of PostgreSQL that can hold the server's replies on the query sessions
// while the change-feed session (the one that sent LISTEN) flows freely: a way to keep a
// gateway's registry read in flight while a change commits and is announced. Tests wait for what
// it saw on the wire (a query naming a device, a notification) instead of sleeping.
import { connect, createServer, type Server, type Socket } from 'node:net'

interface Session {
  readonly client: Socket
  readonly server: Socket
  /** Everything the client sent, and what it sent since hold(). */
  sent: string
  sentWhileHeld: string
  heard: string
  listens: boolean
  held: Buffer[]
}

export interface PgHoldProxy {
  readonly port: number
  /** From now on, replies to query sessions are kept until release(). */
  hold: () => void
  /** Delivers what was kept, and stops holding. */
  release: () => void
  /** Keeps holding only the sessions that sent `text` since hold(); the others (new ones too) flow. */
  releaseSessionsWithout: (text: string) => void
  /** Resolves when a query session has sent, since hold(), bytes containing `text` (e.g. a parameter). */
  queried: (text: string, timeoutMs?: number) => Promise<void>
  /** Resolves when the LISTEN session has received bytes containing `text` (a NOTIFY payload). */
  notified: (text: string, timeoutMs?: number) => Promise<void>
  close: () => Promise<void>
}

export async function startPgHoldProxy (target: { host: string, port: number }): Promise<PgHoldProxy> {
  const sessions = new Set<Session>()
  const waiters = new Set<() => void>()
  const wake = (): void => { for (const w of [...waiters]) w() }
  // Which query sessions' replies are kept now (the LISTEN session's never are).
  let holds: ((s: Session) => boolean) | undefined

  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host)
    const s: Session = { client, server: upstream, sent: '', sentWhileHeld: '', heard: '', listens: false, held: [] }
    sessions.add(s)
    client.on('data', (d: Buffer) => {
      s.sent += d.toString('latin1')
      if (holds !== undefined) s.sentWhileHeld += d.toString('latin1')
      if (!s.listens && s.sent.includes('LISTEN ')) s.listens = true
      upstream.write(d)
      wake()
    })
    upstream.on('data', (d: Buffer) => {
      if (s.listens) s.heard += d.toString('latin1')
      if (!s.listens && holds?.(s) === true) s.held.push(d)
      else client.write(d)
      wake()
    })
    const end = (): void => { client.destroy(); upstream.destroy(); sessions.delete(s) }
    client.on('close', end)
    upstream.on('close', end)
    client.on('error', () => undefined)
    upstream.on('error', () => undefined)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0

  /** Keeps holding only what `still` selects; delivers what was kept on the others. */
  const holdOnly = (still: ((s: Session) => boolean) | undefined): void => {
    holds = still
    for (const s of sessions) if (still?.(s) !== true) for (const d of s.held.splice(0)) s.client.write(d)
  }

  const until = async (what: string, seen: () => boolean, timeoutMs: number): Promise<void> => await new Promise((resolve, reject) => {
    const check = (): void => { if (seen()) { waiters.delete(check); clearTimeout(timer); resolve() } }
    const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`the PostgreSQL proxy did not see ${what} within ${timeoutMs} ms`)) }, timeoutMs)
    waiters.add(check)
    check()
  })

  return {
    port,
    hold: () => {
      for (const s of sessions) s.sentWhileHeld = ''
      holds = () => true
    },
    release: () => { holdOnly(undefined) },
    releaseSessionsWithout: (text) => { holdOnly((s) => s.sentWhileHeld.includes(text)) },
    queried: async (text, timeoutMs = 5000) => {
      // Only bytes sent while holding count: the query whose reply is being kept.
      await until(`a query with ${text}`, () => [...sessions].some((s) => !s.listens && s.sentWhileHeld.includes(text)), timeoutMs)
    },
    notified: async (text, timeoutMs = 5000) => {
      await until(`a notification with ${text}`, () => [...sessions].some((s) => s.listens && s.heard.includes(text)), timeoutMs)
    },
    close: async () => {
      for (const s of sessions) { s.client.destroy(); s.server.destroy() }
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}
