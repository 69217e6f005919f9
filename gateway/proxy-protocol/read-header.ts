// The PROXY protocol header a trusted load balancer puts before the device's TLS bytes (v1 text or
// v2 binary; haproxy.org/download/2.9/doc/proxy-protocol.txt), so logs and per-address limits see
// the device's real address. Parsed strictly: anything malformed is refused, never guessed at.
import { isIP } from 'node:net'
import type { Socket } from 'node:net'
import { readPrefix } from '../stream/read-prefix.js'
import { FAMILY, SIGNATURE, VERSION_2_LOCAL, VERSION_2_PROXY, type Endpoint } from './v2-header.js'

export type ParsedHeader =
  | { readonly kind: 'more' }
  | { readonly kind: 'invalid', readonly detail: string }
  /** `source`/`destination` undefined: a LOCAL or UNKNOWN header (the balancer's own connection). */
  | { readonly kind: 'ok', readonly length: number, readonly source: Endpoint | undefined, readonly destination: Endpoint | undefined }

const V1_PREFIX = Buffer.from('PROXY ')
const V1_MAX = 107
/** v2 allows 64 KiB of TLVs; a balancer in front of devices sends a few dozen bytes. */
export const V2_MAX = 16 + 2048

/** Does this look like the start of a PROXY header (either version)? Enough bytes to tell, or 'more'. */
export function startsWithProxyHeader (buf: Buffer): boolean | 'more' {
  const n = Math.min(buf.length, 12)
  const v2 = SIGNATURE.subarray(0, n).equals(buf.subarray(0, n))
  const v1 = V1_PREFIX.subarray(0, Math.min(n, 6)).equals(buf.subarray(0, Math.min(n, 6)))
  if (!v1 && !v2) return false
  if ((v2 && n < 12) || (v1 && n < 6)) return 'more'
  return true
}

const port = (text: string): number | undefined => /^(0|[1-9]\d{0,4})$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined

function parseV1 (buf: Buffer): ParsedHeader {
  const end = buf.indexOf('\r\n')
  if (end === -1) return buf.length >= V1_MAX ? { kind: 'invalid', detail: `PROXY v1 line longer than ${V1_MAX} bytes` } : { kind: 'more' }
  const line = buf.subarray(0, end).toString('latin1')
  const parts = line.split(' ')
  if (parts[1] === 'UNKNOWN') return { kind: 'ok', length: end + 2, source: undefined, destination: undefined }
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) return { kind: 'invalid', detail: `malformed PROXY v1 line "${line.slice(0, 80)}"` }
  const [, proto, src = '', dst = '', sport = '', dport = ''] = parts
  const family = proto === 'TCP4' ? 4 : 6
  const sp = port(sport)
  const dp = port(dport)
  if (isIP(src) !== family || isIP(dst) !== family || sp === undefined || dp === undefined) return { kind: 'invalid',
    detail: `malformed PROXY v1 addresses in "${line.slice(0, 80)}"` }
  return { kind: 'ok', length: end + 2, source: { address: src, port: sp }, destination: { address: dst, port: dp } }
}

const v6Text = (b: Buffer): string => Array.from({ length: 8 }, (_, k) => b.readUInt16BE(k * 2).toString(16)).join(':')

function parseV2 (buf: Buffer): ParsedHeader {
  if (buf.length < 16) return { kind: 'more' }
  const verCmd = buf[12] as number
  if (verCmd !== VERSION_2_PROXY && verCmd !== VERSION_2_LOCAL) return { kind: 'invalid', detail: `PROXY v2 version/command byte 0x${verCmd.toString(16)}` }
  const length = 16 + buf.readUInt16BE(14)
  if (length > V2_MAX) return { kind: 'invalid', detail: `PROXY v2 header of ${length} bytes exceeds ${V2_MAX}` }
  if (buf.length < length) return { kind: 'more' }
  if (verCmd === VERSION_2_LOCAL) return { kind: 'ok', length, source: undefined, destination: undefined }
  const family = buf[13] as number
  const body = buf.subarray(16, length)
  if (family === FAMILY.TCP4) {
    if (body.length < 12) return { kind: 'invalid', detail: 'PROXY v2 TCP4 address block is short' }
    return { kind: 'ok', length, source: { address: Array.from(body.subarray(0, 4)).join('.'), port: body.readUInt16BE(8) },
      destination: { address: Array.from(body.subarray(4, 8)).join('.'), port: body.readUInt16BE(10) } }
  }
  if (family === FAMILY.TCP6) {
    if (body.length < 36) return { kind: 'invalid', detail: 'PROXY v2 TCP6 address block is short' }
    return { kind: 'ok', length, source: { address: v6Text(body.subarray(0, 16)), port: body.readUInt16BE(32) },
      destination: { address: v6Text(body.subarray(16, 32)), port: body.readUInt16BE(34) } }
  }
  if (family === FAMILY.UNSPEC) return { kind: 'ok', length, source: undefined, destination: undefined }
  return { kind: 'invalid', detail: `PROXY v2 family/transport 0x${family.toString(16)} is not TCP over IPv4 or IPv6` }
}

export function parseProxyHeader (buf: Buffer): ParsedHeader {
  const starts = startsWithProxyHeader(buf)
  if (starts === 'more') return { kind: 'more' }
  if (!starts) return { kind: 'invalid', detail: 'the connection does not start with a PROXY protocol header' }
  return buf[0] === 0x50 ? parseV1(buf) : parseV2(buf)
}

export type ReadHeader =
  | { readonly ok: true, readonly source: Endpoint | undefined, readonly destination: Endpoint | undefined }
  | { readonly ok: false, readonly detail: string }

/** Reads the header from a raw socket, putting back what follows it (the TLS ClientHello) for the TLS server. */
export async function readProxyHeader (socket: Socket, timeoutMs: number): Promise<ReadHeader> {
  return await readPrefix<ReadHeader>(socket, {
    timeoutMs,
    examine: (buf) => {
      const p = parseProxyHeader(buf)
      if (p.kind === 'more') return undefined
      if (p.kind === 'invalid') return { result: { ok: false, detail: p.detail }, consumed: buf.length }
      return { result: { ok: true, source: p.source, destination: p.destination }, consumed: p.length }
    },
    closed: () => ({ ok: false, detail: 'the connection closed inside the PROXY header' }),
    timedOut: () => ({ ok: false, detail: `no complete PROXY header within ${timeoutMs} ms` })
  })
}

/** Peeks at the first bytes: does an (untrusted) peer start with a PROXY header? Puts them all back. */
export async function sendsProxyHeader (socket: Socket, timeoutMs: number): Promise<boolean> {
  return await readPrefix<boolean>(socket, {
    timeoutMs,
    examine: (buf) => {
      const starts = startsWithProxyHeader(buf)
      return starts === 'more' ? undefined : { result: starts, consumed: 0 }
    },
    closed: () => false,
    timedOut: () => false
  })
}
