// A child process of the reconnect and idle scenarios that plays part of the fleet: raw TLS
// with each device's own certificate chain, a hand-written MQTT 3.1.1 CONNECT (clientId =
// deviceId, clean session, keepalive 0) and a wait for CONNACK, with bounded concurrency. The
// connections stay open until the parent says "close". Raw bytes instead of mqtt.js keep the
// client's CPU for TLS; separate processes keep the parent's event loop free to time /healthz.
//
// IPC: parent → { kind: 'setup', ... } → child builds TLS contexts, answers { kind: 'ready' };
// parent → { kind: 'go' } → child connects everyone, answers { kind: 'done', ... };
// parent → { kind: 'close' } → child closes everything and exits.
import { connect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls'
import type { DeviceCert } from './support/fleet.js'

export interface SetupMessage {
  readonly kind: 'setup'
  readonly port: number
  readonly devices: readonly DeviceCert[]
  readonly chainPem: string
  readonly serverCaPem: string
  readonly concurrency: number
  /** Spread connections over 127.0.0.1 … 127.0.0.<sources> (0 = let the kernel choose, from 127.0.0.1). */
  readonly sources: number
  readonly timeoutMs: number
  /** Keep each connection open after its CONNACK (false: send DISCONNECT and close it). */
  readonly hold: boolean
}

export interface DoneMessage {
  readonly kind: 'done'
  readonly connected: number
  /** Refusal or failure reasons with counts ("connack rc=5", "closed before CONNACK", "ECONNRESET", "timeout"). */
  readonly failures: Record<string, number>
  /** connect() → CONNACK, ms, per connected device. */
  readonly latenciesMs: number[]
  /** CONNACKs per 250 ms bin since "go". */
  readonly perBin: number[]
  /** "go" → the last device settled, ms. */
  readonly elapsedMs: number
}

export type ParentMessage = SetupMessage | { readonly kind: 'go' } | { readonly kind: 'close' }
export type ChildMessage = { readonly kind: 'ready', readonly setupMs: number } | DoneMessage | { readonly kind: 'closed' }

const BIN_MS = 250

/** MQTT 3.1.1 CONNECT (§3.1): protocol "MQTT" level 4, clean session, keepalive 0, the clientId. */
export function connectPacket (clientId: string): Buffer {
  const id = Buffer.from(clientId, 'utf8')
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 0, id.length >> 8, id.length & 0xff]), id])
  const len: number[] = []
  let n = body.length
  do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 0x80; len.push(b) } while (n > 0)
  return Buffer.concat([Buffer.from([0x10, ...len]), body])
}

function send (m: ChildMessage): void {
  process.send?.(m)
}

let setup: SetupMessage | undefined
let contexts: SecureContext[] = []
const open = new Set<TLSSocket>()

function connectOne (i: number, started: number, done: DoneMessage & { perBin: number[], failures: Record<string, number> }): Promise<void> {
  const s = setup as SetupMessage
  const device = s.devices[i] as DeviceCert
  const fail = (why: string): void => { done.failures[why] = (done.failures[why] ?? 0) + 1 }
  const t0 = performance.now()
  return new Promise<void>((resolve) => {
    let settled = false
    const settle = (why: string | undefined, sock: TLSSocket): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (why === undefined) {
        const t = performance.now()
        done.latenciesMs.push(t - t0)
        const bin = Math.floor((t - started) / BIN_MS)
        done.perBin[bin] = (done.perBin[bin] ?? 0) + 1
        // DISCONNECT (§3.14) then close: a clean leave, so nothing counts it as a failure.
        if (s.hold) open.add(sock)
        else sock.end(Buffer.from([0xe0, 0x00]))
      } else {
        fail(why)
        sock.destroy()
      }
      resolve()
    }
    const localAddress = s.sources > 0 ? `127.0.0.${1 + (i % s.sources)}` : undefined
    const sock = connect({ host: '127.0.0.1', port: s.port, secureContext: contexts[i], servername: 'localhost', ...(localAddress === undefined ? {} : { localAddress }) })
    const timer = setTimeout(() => { settle('timeout', sock) }, s.timeoutMs)
    sock.setNoDelay(true)
    sock.once('secureConnect', () => sock.write(connectPacket(device.id)))
    let got = Buffer.alloc(0)
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d])
      if (got.length < 4) return
      sock.off('data', onData)
      // CONNACK (§3.2): 0x20 0x02 <session present> <return code>.
      settle(got[0] === 0x20 && got[3] === 0 ? undefined : `connack ${got[0] === 0x20 ? `rc=${got[3]}` : 'malformed'}`, sock)
    }
    sock.on('data', onData)
    sock.on('error', (err: NodeJS.ErrnoException) => { settle(err.code ?? err.message, sock) })
    sock.once('close', () => { open.delete(sock); settle('closed before CONNACK', sock) })
  })
}

async function go (): Promise<void> {
  const s = setup as SetupMessage
  const started = performance.now()
  const done = { kind: 'done' as const, connected: 0, failures: {} as Record<string, number>, latenciesMs: [] as number[], perBin: [] as number[], elapsedMs: 0 }
  let next = 0
  const loop = async (): Promise<void> => {
    while (next < s.devices.length) await connectOne(next++, started, done)
  }
  await Promise.all(Array.from({ length: Math.min(s.concurrency, s.devices.length) }, loop))
  send({ ...done, connected: done.latenciesMs.length, perBin: Array.from(done.perBin, (v: number | undefined) => v ?? 0), elapsedMs: performance.now() - started })
}

process.on('message', (m: ParentMessage) => {
  if (m.kind === 'setup') {
    const t0 = performance.now()
    setup = m
    contexts = m.devices.map((d) => createSecureContext({ key: d.keyPem, cert: d.pem + m.chainPem, ca: m.serverCaPem }))
    send({ kind: 'ready', setupMs: performance.now() - t0 })
  } else if (m.kind === 'go') {
    void go()
  } else {
    for (const sock of open) sock.destroy()
    send({ kind: 'closed' })
    process.disconnect()
  }
})
// The parent went away: do not linger holding thousands of sockets.
process.on('disconnect', () => { for (const sock of open) sock.destroy(); process.exit(0) })
