// A test upstream that expects a PROXY protocol v2 header on every connection and parses it from
// the spec's byte layout (written here independently of certgate's encoder): addresses, TLVs, the
// PP2_TYPE_SSL sub-TLVs. It records the header and the bytes that follow it.
import { createServer, type Socket } from 'node:net'

export interface ParsedV2 {
  readonly command: 'PROXY' | 'LOCAL'
  readonly family: 'TCP4' | 'TCP6' | 'UNSPEC'
  readonly source: { address: string, port: number } | undefined
  readonly destination: { address: string, port: number } | undefined
  /** TLV type → value. */
  readonly tlvs: Map<number, Buffer>
  readonly ssl: { client: number, verify: number, sub: Map<number, Buffer> } | undefined
}

export interface ProxiedConnection { readonly header: ParsedV2 | string, readonly after: Buffer[] }

const SIG = '0d0a0d0a000d0a515549540a'

function tlvs (b: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>()
  for (let i = 0; i + 3 <= b.length;) {
    const type = b[i] as number
    const len = b.readUInt16BE(i + 1)
    out.set(type, b.subarray(i + 3, i + 3 + len))
    i += 3 + len
  }
  return out
}

const v6 = (b: Buffer): string => Array.from({ length: 8 }, (_, k) => b.readUInt16BE(k * 2).toString(16)).join(':')

export type V2Parse = { readonly header: ParsedV2, readonly length: number } | { readonly incomplete: true } | { readonly invalid: string }

/** Parses one header at the start of `buf`. */
export function parseV2 (buf: Buffer): V2Parse {
  if (buf.length < 16) return { incomplete: true }
  if (buf.subarray(0, 12).toString('hex') !== SIG) return { invalid: `no PROXY v2 signature: ${buf.subarray(0, 12).toString('hex')}` }
  const verCmd = buf[12] as number
  if (verCmd >> 4 !== 2) return { invalid: `version ${verCmd >> 4}` }
  const fam = buf[13] as number
  const len = buf.readUInt16BE(14)
  if (buf.length < 16 + len) return { incomplete: true }
  const body = buf.subarray(16, 16 + len)
  let family: ParsedV2['family'] = 'UNSPEC'
  let source: ParsedV2['source']
  let destination: ParsedV2['destination']
  let rest = body
  if (fam === 0x11) {
    family = 'TCP4'
    source = { address: Array.from(body.subarray(0, 4)).join('.'), port: body.readUInt16BE(8) }
    destination = { address: Array.from(body.subarray(4, 8)).join('.'), port: body.readUInt16BE(10) }
    rest = body.subarray(12)
  } else if (fam === 0x21) {
    family = 'TCP6'
    source = { address: v6(body.subarray(0, 16)), port: body.readUInt16BE(32) }
    destination = { address: v6(body.subarray(16, 32)), port: body.readUInt16BE(34) }
    rest = body.subarray(36)
  } else if (fam !== 0x00) return { invalid: `family/transport byte 0x${fam.toString(16)}` }
  const all = tlvs(rest)
  const sslValue = all.get(0x20)
  const ssl = sslValue === undefined ? undefined : { client: sslValue[0] as number, verify: sslValue.readUInt32BE(1), sub: tlvs(sslValue.subarray(5)) }
  return { header: { command: (verCmd & 0x0f) === 1 ? 'PROXY' : 'LOCAL', family, source, destination, tlvs: all, ssl }, length: 16 + len }
}

export async function startProxyV2Upstream (): Promise<{ port: number, connections: ProxiedConnection[], waitFor: (n: number, timeoutMs?: number) => Promise<void>, close: () => Promise<void> }> {
  const connections: ProxiedConnection[] = []
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => undefined)
    let buf = Buffer.alloc(0)
    let conn: ProxiedConnection | undefined
    socket.on('data', (d: Buffer) => {
      if (conn !== undefined) { conn.after.push(d); return }
      buf = Buffer.concat([buf, d])
      const r = parseV2(buf)
      if ('incomplete' in r) return
      if ('invalid' in r) { connections.push({ header: r.invalid, after: [] }); socket.destroy(); return }
      conn = { header: r.header, after: [buf.subarray(r.length)] }
      connections.push(conn)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no address')
  return {
    port: addr.port,
    connections,
    waitFor: async (n, timeoutMs = 5000) => {
      const until = Date.now() + timeoutMs
      while (connections.length < n) {
        if (Date.now() > until) throw new Error(`${connections.length} of ${n} proxied connections after ${timeoutMs} ms`)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}
