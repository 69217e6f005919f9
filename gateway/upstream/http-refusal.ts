// How a refused device in `http` mode is told: its first request is read (bounded in time) and
// answered with the usual JSON error body, then the connection closes; nothing is forwarded.
// 403 for a refusal the device or its operator must fix, 503 with Retry-After for one that may
// pass by itself. The body never says why beyond that: the log and metrics carry the reason.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import type { DeviceRefusal } from './forwarder.js'
import type { RefusalReason } from '../reasons.js'

const TRANSIENT: ReadonlySet<RefusalReason> = new Set<RefusalReason>(['overloaded', 'validator_failed', 'registry_unavailable', 'upstream_unavailable', 'ocsp_unavailable'])

function body (refusal: DeviceRefusal): { status: number, code: string, message: string } {
  return TRANSIENT.has(refusal.reason)
    ? { status: 503, code: 'unavailable', message: 'certgate cannot admit this device right now; retry later' }
    : { status: 403, code: 'forbidden', message: 'this device is not allowed to connect; its operator can see why in certgate\'s log' }
}

export interface HttpRefusals {
  /** Answers the device's first request with the refusal; resolves when the connection is closed. */
  answer: (socket: TLSSocket, refusal: DeviceRefusal) => Promise<void>
}

/** `timeoutMs`: how long a refused device may take to send the request its refusal answers. */
export function createHttpRefusals (timeoutMs: number): HttpRefusals {
  const answers = new WeakMap<object, DeviceRefusal>()
  const reply = (socket: object): { status: number, headers: Record<string, string | number>, text: string } => {
    const b = body(answers.get(socket) ?? { reason: 'device_unknown', detail: '' })
    const text = JSON.stringify({ error: { code: b.code, message: b.message } })
    return { status: b.status, text, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text),
      ...(b.status === 503 ? { 'retry-after': '1' } : {}) } }
  }
  // One server for every refused connection of this listener: never listened on, only handed sockets.
  const server = createServer({ keepAliveTimeout: 0, requestTimeout: 0, headersTimeout: timeoutMs }, (req: IncomingMessage, res: ServerResponse) => {
    const r = reply(req.socket)
    res.shouldKeepAlive = false
    res.writeHead(r.status, r.headers).end(r.text)
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    const r = reply(req.socket)
    let head = `HTTP/1.1 ${r.status} ${r.status === 403 ? 'Forbidden' : 'Service Unavailable'}\r\nconnection: close\r\n`
    for (const [k, v] of Object.entries(r.headers)) head += `${k}: ${v}\r\n`
    socket.end(`${head}\r\n${r.text}`)
  })
  return {
    answer: async (socket, refusal) => {
      answers.set(socket, refusal)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => socket.destroy(), timeoutMs)
        timer.unref()
        socket.once('close', () => { clearTimeout(timer); resolve() })
        server.emit('connection', socket)
      })
    }
  }
}
