// A minimal DER writer (X.690 §10): definite, minimal lengths, just what an OCSP request needs.
// The counterpart of workers/der.ts (the reader); nothing here reads untrusted input.

export function tlv (tag: number, content: Uint8Array): Uint8Array {
  const n = content.length
  let head: number[]
  if (n < 0x80) {
    head = [tag, n]
  } else {
    // X.690 §10.1: the long form with the fewest length octets.
    const len: number[] = []
    for (let v = n; v > 0; v = Math.floor(v / 256)) len.unshift(v % 256)
    head = [tag, 0x80 | len.length, ...len]
  }
  const out = new Uint8Array(head.length + n)
  out.set(head, 0)
  out.set(content, head.length)
  return out
}

export function concat (parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

export const sequence = (...parts: Uint8Array[]): Uint8Array => tlv(0x30, concat(parts))
export const octetString = (bytes: Uint8Array): Uint8Array => tlv(0x04, bytes)
export const nullValue = (): Uint8Array => Uint8Array.of(0x05, 0x00)

/** An INTEGER from its content octets as a certificate carries them (already minimal two's complement). */
export const integerFromContent = (content: Uint8Array): Uint8Array => tlv(0x02, content)

/** An OBJECT IDENTIFIER from its dotted form (X.690 §8.19). */
export function objectIdentifier (dotted: string): Uint8Array {
  const arcs = dotted.split('.').map(Number)
  const [a = 0, b = 0, ...rest] = arcs
  const bytes: number[] = []
  for (const arc of [a * 40 + b, ...rest]) {
    const chunk: number[] = [arc % 128]
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v % 128))
    bytes.push(...chunk)
  }
  return tlv(0x06, Uint8Array.from(bytes))
}
