// A recording MQTT upstream for tests: a plain TCP server on loopback that parses what each
// connection sends with mqtt-packet, records every CONNECT (clientId, arrival time, whether a
// DISCONNECT followed, when that upstream connection closed), answers CONNECT with CONNACK "accepted" and PINGREQ with PINGRESP,
// and discards everything else. `kill()` makes it go away abruptly (listener closed, every socket
// destroyed, optionally with a TCP RST), the way a crashed broker does.
import { createServer, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'

export interface UpstreamConnect {
  readonly clientId: string
  /** Date.now() when the CONNECT was parsed (same clock as the gateway's log `time`). */
  readonly time: number
  /** Date.now() when a DISCONNECT arrived on this connection (the device left by itself). */
  disconnectAt: number | undefined
  /** Date.now() when this upstream connection closed, once it has. */
  closedAt: number | undefined
}

export interface RecordingUpstream {
  readonly host: string
  readonly port: number
  /** Every CONNECT seen, in arrival order. */
  readonly connects: UpstreamConnect[]
  /** Upstream connections open now. */
  openSockets: () => number
  /** Resolves once `count` upstream connections (with or without a CONNECT) have closed. */
  waitForClosed: (count: number, timeoutMs?: number) => Promise<void>
  /** Resolves with the first CONNECT from `clientId` (at once if one already arrived). */
  waitForConnect: (clientId: string, timeoutMs?: number) => Promise<UpstreamConnect>
  /**
   * Closes the listener and destroys every open connection at once: with a FIN, or with a TCP RST
   * for connections whose CONNECT came from a clientId `reset` picks.
   */
  kill: (opts?: { reset?: (clientId: string) => boolean }) => Promise<void>
  close: () => Promise<void>
}

const CONNACK_V4 = Buffer.from([0x20, 0x02, 0x00, 0x00])
const CONNACK_V5 = Buffer.from([0x20, 0x03, 0x00, 0x00, 0x00])
const PINGRESP = Buffer.from([0xd0, 0x00])

export async function startRecordingUpstream (host = '127.0.0.1'): Promise<RecordingUpstream> {
  const connects: UpstreamConnect[] = []
  const sockets = new Set<Socket>()
  const clientIds = new WeakMap<Socket, string>()
  const waiters = new Set<() => void>()
  let closedSockets = 0
  const server = createServer((socket) => {
    sockets.add(socket)
    let record: UpstreamConnect | undefined
    const parser = mqttPacket.parser()
    parser.on('packet', (p: mqttPacket.Packet) => {
      if (p.cmd === 'connect') {
        record = { clientId: p.clientId, time: Date.now(), disconnectAt: undefined, closedAt: undefined }
        connects.push(record)
        clientIds.set(socket, p.clientId)
        socket.write(p.protocolVersion === 5 ? CONNACK_V5 : CONNACK_V4)
        for (const w of waiters) w()
      } else if (p.cmd === 'pingreq') {
        socket.write(PINGRESP)
      } else if (p.cmd === 'disconnect' && record !== undefined) {
        record.disconnectAt ??= Date.now()
      }
    })
    parser.on('error', () => { socket.destroy() })
    socket.on('data', (chunk: Buffer) => { parser.parse(chunk) })
    socket.on('error', () => undefined)
    socket.on('close', () => {
      sockets.delete(socket)
      closedSockets++
      if (record !== undefined) record.closedAt = Date.now()
      for (const w of waiters) w()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => { server.off('error', reject); resolve() })
  })
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('recording upstream has no TCP address')
  const kill = async (opts: { reset?: (clientId: string) => boolean } = {}): Promise<void> => {
    const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    for (const s of sockets) {
      const id = clientIds.get(s)
      if (id !== undefined && opts.reset?.(id) === true) s.resetAndDestroy()
      else s.destroy()
    }
    await closed
  }
  return {
    host,
    port: addr.port,
    connects,
    openSockets: () => sockets.size,
    waitForClosed: async (count, timeoutMs = 5000) => { await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (closedSockets >= count) { waiters.delete(check); clearTimeout(timer); resolve() }
      }
      const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`${closedSockets} of ${count} upstream connections closed within ${timeoutMs} ms`)) }, timeoutMs)
      waiters.add(check)
      check()
    }) },
    waitForConnect: async (clientId, timeoutMs = 5000) => await new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = connects.find((c) => c.clientId === clientId)
        if (hit !== undefined) { waiters.delete(check); clearTimeout(timer); resolve(hit) }
      }
      const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no CONNECT from ${clientId} within ${timeoutMs} ms`)) }, timeoutMs)
      waiters.add(check)
      check()
    }),
    kill,
    close: async () => { if (server.listening) await kill() }
  }
}
