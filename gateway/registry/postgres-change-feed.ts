// The PostgreSQL registry's change feed: one dedicated LISTEN session hearing what other gateways
// change. While it is down nothing is served (fail closed: a gateway that cannot hear revocations
// must not admit devices); it reconnects by itself with bounded, jittered backoff and then emits
// one `bulk` change so whatever it missed is caught up. A ping notices a session that died silently.
import { EventEmitter } from 'node:events'
import type pg from 'pg'
import type { RegistryChange } from './types.js'
import { CHANNEL } from './postgres-access.js'
import { errorMessage } from '../../workers/errors.js'

export type ConnectionState = { readonly state: 'lost', readonly error: Error, readonly retryInMs: number } | { readonly state: 'restored' }

export interface ChangeFeedOptions {
  /** Reconnect backoff: doubles from min to max, jittered. */
  readonly reconnectMinMs?: number
  readonly reconnectMaxMs?: number
  /** How often the LISTEN session is pinged, to notice a connection that died silently. */
  readonly pingIntervalMs?: number
  readonly onState?: (s: ConnectionState) => void
}

export interface ChangeFeed {
  /** Emits a change to this gateway's listeners (its own writes, at commit). */
  emit: (change: RegistryChange) => void
  /** Throws while the feed is closed or reconnecting. */
  available: () => void
  onChange: (listener: (change: RegistryChange) => void) => () => void
  close: () => Promise<void>
}

export interface ChangeFeedDeps {
  /** A new, unconnected client for the LISTEN session (the registry owns pg's configuration). */
  readonly newClient: () => pg.Client
  /** This gateway's id in NOTIFY payloads: its own changes are emitted at commit, not when heard. */
  readonly origin: string
  /** The database's URL without its password, for messages. */
  readonly where: string
}

/** Resolves once the first LISTEN session is up; rejects if it cannot be opened. */
export async function openChangeFeed (opts: ChangeFeedOptions, { newClient, origin, where }: ChangeFeedDeps): Promise<ChangeFeed> {
  const events = new EventEmitter()
  let listener: pg.Client | undefined
  let closing = false
  let attempt = 0
  let reconnectTimer: NodeJS.Timeout | undefined
  const minMs = opts.reconnectMinMs ?? 100
  const maxMs = opts.reconnectMaxMs ?? 5000

  function emit (c: RegistryChange): void {
    // A listener's failure must not turn a committed write into a reported failure.
    try { events.emit('change', c) } catch (err) { process.emitWarning(`registry change listener failed: ${errorMessage(err)}`) }
  }

  async function listen (): Promise<pg.Client> {
    const client = newClient()
    client.on('error', (err) => { lost(client, err) })
    client.on('end', () => { lost(client, new Error('the LISTEN session ended')) })
    client.on('notification', (n) => { if (n.channel === CHANNEL) heard(n.payload) })
    try {
      await client.connect()
      await client.query(`LISTEN ${CHANNEL}`)
    } catch (err) {
      client.removeAllListeners('end')
      await client.end().catch(() => undefined)
      throw err
    }
    return client
  }

  function heard (payload: string | undefined): void {
    let msg: { origin?: unknown, change?: RegistryChange }
    try { msg = JSON.parse(payload ?? '') as typeof msg } catch { msg = {} }
    if (msg.origin === origin) return // our own write: emitted at commit
    // An unreadable notification still means "something changed": recheck everything.
    emit(msg.change ?? { kind: 'bulk' })
  }

  function lost (client: pg.Client, error: Error): void {
    if (client !== listener || closing) return
    listener = undefined
    client.removeAllListeners('end')
    client.end().catch(() => undefined)
    reconnectLater(error)
  }

  function reconnectLater (error: Error): void {
    const retryInMs = Math.round(Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20)) * (0.5 + Math.random() / 2))
    attempt++
    opts.onState?.({ state: 'lost', error, retryInMs })
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined
      listen().then((client) => {
        if (closing) { void client.end(); return }
        listener = client
        attempt = 0
        opts.onState?.({ state: 'restored' })
        // Changes made while we were away were not heard: recheck everything.
        emit({ kind: 'bulk' })
      }, (err: unknown) => { if (!closing) reconnectLater(err as Error) })
    }, retryInMs)
  }

  listener = await listen()

  // A session can die without a FIN (a partition, a killed VM): a ping notices within seconds.
  const ping = setInterval(() => {
    const client = listener
    if (client === undefined) return
    const timeout = new Promise<never>((_resolve, reject) => {
      setTimeout(() => { reject(new Error('the LISTEN session did not answer a ping')) }, 3000).unref()
    })
    Promise.race([client.query('SELECT 1'), timeout]).catch((err: unknown) => { lost(client, err as Error) })
  }, opts.pingIntervalMs ?? 5000)
  ping.unref()

  return {
    emit,
    available () {
      if (closing) throw new Error('the registry is closed')
      if (listener === undefined) throw new Error(`the PostgreSQL registry at ${where} is unreachable (reconnecting); refusing until it is back`)
    },
    onChange: (l) => { events.on('change', l); return () => events.off('change', l) },
    async close () {
      closing = true
      clearInterval(ping)
      clearTimeout(reconnectTimer)
      const l = listener
      listener = undefined
      l?.removeAllListeners('end')
      await l?.end().catch(() => undefined)
    }
  }
}
