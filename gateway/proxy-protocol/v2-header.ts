// PROXY protocol version 2 (haproxy.org/download/2.9/doc/proxy-protocol.txt), the header certgate
// writes first on an upstream connection so the broker learns who is really talking: the device's
// address, PP2_TYPE_SSL with "client certificate verified" and the deviceId as PP2_SUBTYPE_SSL_CN,
// and certgate's own TLVs (from the range the spec reserves for applications) for the CA name and
// the certificate's SHA-256 thumbprint.
import { isIPv4, isIPv6 } from 'node:net'

export const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
export const VERSION_2_PROXY = 0x21
export const VERSION_2_LOCAL = 0x20
export const FAMILY = { UNSPEC: 0x00, TCP4: 0x11, TCP6: 0x21 } as const

export const TLV = {
  SSL: 0x20,
  /** certgate: the name of the registered CA the device chained to (absent for selfSigned devices). */
  CERTGATE_CA_NAME: 0xe0,
  /** certgate: SHA-256 of the device certificate's DER, 64 lowercase hex characters. */
  CERTGATE_THUMBPRINT: 0xe1
} as const
export const SSL_SUBTYPE = { VERSION: 0x21, CN: 0x22, CIPHER: 0x23 } as const
/** PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS */
export const SSL_CLIENT_VERIFIED_CERT = 0x01 | 0x02 | 0x04

export interface Endpoint { readonly address: string, readonly port: number }

export interface ProxiedDevice {
  readonly source: Endpoint
  readonly destination: Endpoint
  readonly deviceId: string
  readonly caName: string | undefined
  readonly thumbprint: string
  /** e.g. TLSv1.3; omitted when unknown. */
  readonly tlsVersion: string | undefined
  readonly cipher: string | undefined
}

/** No control characters leave certgate in a header: each becomes U+FFFD, never a deviceId character. */
export function sanitize (value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\u0000-\u001f\u007f-\u009f]/g, '\uFFFD')
}

const unmapped = (address: string): string => address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address

function tlv (type: number, value: Buffer): Buffer {
  if (value.length > 0xffff) throw new RangeError(`TLV 0x${type.toString(16)} of ${value.length} bytes is too long`)
  const head = Buffer.alloc(3)
  head[0] = type
  head.writeUInt16BE(value.length, 1)
  return Buffer.concat([head, value])
}

function addressBlock (src: Endpoint, dst: Endpoint): { family: number, block: Buffer } {
  const s = unmapped(src.address)
  const d = unmapped(dst.address)
  const ports = (b: Buffer, at: number): Buffer => { b.writeUInt16BE(src.port, at); b.writeUInt16BE(dst.port, at + 2); return b }
  if (isIPv4(s) && isIPv4(d)) {
    const b = Buffer.alloc(12)
    Buffer.from(s.split('.').map(Number)).copy(b, 0)
    Buffer.from(d.split('.').map(Number)).copy(b, 4)
    return { family: FAMILY.TCP4, block: ports(b, 8) }
  }
  const v6 = (a: string): string | undefined => isIPv6(a) ? a : isIPv4(a) ? `::ffff:${a}` : undefined
  const s6 = v6(s)
  const d6 = v6(d)
  if (s6 === undefined || d6 === undefined) return { family: FAMILY.UNSPEC, block: Buffer.alloc(0) }
  const b = Buffer.alloc(36)
  ipv6Bytes(s6).copy(b, 0)
  ipv6Bytes(d6).copy(b, 16)
  return { family: FAMILY.TCP6, block: ports(b, 32) }
}

/** 16 bytes of an IPv6 address in any textual form (with :: and a trailing dotted quad). */
export function ipv6Bytes (address: string): Buffer {
  let text = address.replace(/%.*$/, '')
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (quad !== null) {
    const [a = 0, b = 0, c = 0, d = 0] = (quad[1] ?? '').split('.').map(Number)
    text = text.slice(0, quad.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', tail] = text.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => { out.writeUInt16BE(parseInt(g, 16), i * 2) })
  return out
}

export function encodeV2 (device: ProxiedDevice): Buffer {
  const { family, block } = addressBlock(device.source, device.destination)
  const sub = [tlv(SSL_SUBTYPE.CN, Buffer.from(sanitize(device.deviceId), 'utf8'))]
  if (device.tlsVersion !== undefined) sub.unshift(tlv(SSL_SUBTYPE.VERSION, Buffer.from(device.tlsVersion, 'ascii')))
  if (device.cipher !== undefined) sub.push(tlv(SSL_SUBTYPE.CIPHER, Buffer.from(device.cipher, 'ascii')))
  // client flags, then verify = 0: the client certificate was verified.
  const ssl = Buffer.concat([Buffer.from([SSL_CLIENT_VERIFIED_CERT, 0, 0, 0, 0]), ...sub])
  const tlvs = [tlv(TLV.SSL, ssl)]
  if (device.caName !== undefined) tlvs.push(tlv(TLV.CERTGATE_CA_NAME, Buffer.from(sanitize(device.caName), 'utf8')))
  tlvs.push(tlv(TLV.CERTGATE_THUMBPRINT, Buffer.from(device.thumbprint, 'ascii')))
  const body = Buffer.concat([block, ...tlvs])
  const head = Buffer.alloc(16)
  SIGNATURE.copy(head, 0)
  head[12] = VERSION_2_PROXY
  head[13] = family
  head.writeUInt16BE(body.length, 14)
  return Buffer.concat([head, body])
}
