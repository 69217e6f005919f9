// A strict, bounded DER reader: just enough ASN.1 for X.509 certificates.
// It owns byte-level decoding only; what the bytes mean for trust lives in certificate.ts.
// Every read is bounds-checked against its parent; anything that is not canonical DER
// (indefinite lengths, non-minimal lengths, high tag numbers) throws DerError.

import { isUtf8 } from 'node:buffer'

export class DerError extends Error {
  override name = 'DerError'
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31
} as const

/** One TLV: `start` is the first header byte, the value is bytes[valueStart, end). */
export interface Tlv {
  readonly tag: number
  readonly start: number
  readonly valueStart: number
  readonly end: number
}

/** Reads the TLV at `offset`, which must end at or before `limit`. */
export function readTlv (bytes: Uint8Array, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new DerError('truncated TLV header')
  const tag = bytes[offset] as number
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not used in X.509')
  const first = bytes[offset + 1] as number
  let length: number
  let valueStart: number
  if (first < 0x80) {
    length = first
    valueStart = offset + 2
  } else {
    const n = first & 0x7f
    if (n === 0) throw new DerError('indefinite length is not DER')
    if (n > 4) throw new DerError('length field too large')
    if (offset + 2 + n > limit) throw new DerError('truncated length')
    length = 0
    for (let i = 0; i < n; i++) length = length * 256 + (bytes[offset + 2 + i] as number)
    // X.690 §10.1: the definite form must use the fewest octets.
    if (length < 0x80 || (bytes[offset + 2] as number) === 0) throw new DerError('non-minimal length')
    valueStart = offset + 2 + n
  }
  const end = valueStart + length
  if (end > limit) throw new DerError('value runs past its container')
  return { tag, start: offset, valueStart, end }
}

/** Reads a TLV and requires its tag. */
export function expect (bytes: Uint8Array, offset: number, limit: number, tag: number, what: string): Tlv {
  const tlv = readTlv(bytes, offset, limit)
  if (tlv.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`)
  return tlv
}

/**
 * Reads the children of a constructed TLV in order, one at a time, each bounds-checked; at most
 * `max` of them. The certificate parser reads this way on every connection: no array per
 * SEQUENCE (a grown array is ~90 bytes, this reader ~30).
 */
export class ChildReader {
  private at: number
  private count = 0
  constructor (private readonly bytes: Uint8Array, private readonly parent: Tlv, private readonly max = 1024) {
    this.at = parent.valueStart
  }

  /** No child is left unread. */
  done (): boolean {
    return this.at >= this.parent.end
  }

  /** Throws DerError if a child is left unread. */
  end (): void {
    if (!this.done()) throw new DerError('too many elements')
  }

  /** The next child; undefined after the last. */
  next (): Tlv | undefined {
    if (this.at >= this.parent.end) return undefined
    if (this.count++ >= this.max) throw new DerError('too many elements')
    const tlv = readTlv(this.bytes, this.at, this.parent.end)
    this.at = tlv.end
    return tlv
  }
}

/** The one child of `parent` (undefined if it has none); throws DerError if it has more. */
export function onlyChild (bytes: Uint8Array, parent: Tlv): Tlv | undefined {
  const reader = new ChildReader(bytes, parent, 1)
  const child = reader.next()
  reader.end()
  return child
}

/** The children of a constructed TLV, in order, each bounds-checked; at most `max` of them. */
export function children (bytes: Uint8Array, parent: Tlv, max = 1024): Tlv[] {
  const out: Tlv[] = []
  const reader = new ChildReader(bytes, parent, max)
  for (let tlv = reader.next(); tlv !== undefined; tlv = reader.next()) out.push(tlv)
  return out
}

export function value (bytes: Uint8Array, tlv: Tlv): Uint8Array {
  return bytes.subarray(tlv.valueStart, tlv.end)
}

export function whole (bytes: Uint8Array, tlv: Tlv): Uint8Array {
  return bytes.subarray(tlv.start, tlv.end)
}

/**
 * Memo of small pure decodings keyed by the bytes they decode (OIDs, Names): certificates repeat
 * the same few dozen OIDs and issuer names connection after connection, and decoding them again
 * was a fifth of a leaf's parse. Bounded: emptied when full. A hit costs a hash over the bytes and
 * one comparison, and allocates nothing.
 */
export interface BytesMemo<T> {
  get: (bytes: Uint8Array, start: number, end: number) => T | undefined
  set: (bytes: Uint8Array, start: number, end: number, value: T) => void
}

export function bytesMemo<T> (maxEntries: number): BytesMemo<T> {
  let entries = new Map<number, Array<{ readonly bytes: Uint8Array, readonly value: T }>>()
  let size = 0
  return {
    get (bytes, start, end) {
      const bucket = entries.get(fnv(bytes, start, end))
      if (bucket === undefined) return undefined
      for (const e of bucket) if (e.bytes.length === end - start && rangeEquals(e.bytes, bytes, start)) return e.value
      return undefined
    },
    set (bytes, start, end, value) {
      if (size >= maxEntries) { entries = new Map(); size = 0 }
      const h = fnv(bytes, start, end)
      const entry = { bytes: bytes.slice(start, end), value }
      const list = entries.get(h)
      if (list === undefined) entries.set(h, [entry])
      else list.push(entry)
      size++
    }
  }
}

/** FNV-1a over the bytes, seeded with their length. */
function fnv (bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5 ^ (end - start)
  for (let i = start; i < end; i++) h = Math.imul(h ^ (bytes[i] as number), 0x01000193)
  return h
}

function rangeEquals (a: Uint8Array, b: Uint8Array, bStart: number): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[bStart + i]) return false
  return true
}

const oids = bytesMemo<string>(1024)

/** Dotted-decimal form of an OBJECT IDENTIFIER's value. */
export function oidString (bytes: Uint8Array, tlv: Tlv): string {
  if (tlv.tag !== TAG.OID) throw new DerError('expected an OID')
  const len = tlv.end - tlv.valueStart
  if (len === 0 || len > 64) throw new DerError('bad OID length')
  const known = oids.get(bytes, tlv.valueStart, tlv.end)
  if (known !== undefined) return known
  // Only well-formed OIDs are remembered: decodeOid throws before anything is stored.
  const oid = decodeOid(bytes, tlv)
  oids.set(bytes, tlv.valueStart, tlv.end, oid)
  return oid
}

function decodeOid (bytes: Uint8Array, tlv: Tlv): string {
  const parts: number[] = []
  let acc = 0
  let fresh = true
  for (let i = tlv.valueStart; i < tlv.end; i++) {
    const b = bytes[i] as number
    if (fresh && b === 0x80) throw new DerError('non-minimal OID arc')
    acc = acc * 128 + (b & 0x7f)
    if (acc > Number.MAX_SAFE_INTEGER / 256) throw new DerError('OID arc too large')
    fresh = (b & 0x80) === 0
    if (fresh) {
      if (parts.length === 0) {
        const top = acc < 40 ? 0 : acc < 80 ? 1 : 2
        parts.push(top, acc - top * 40)
      } else {
        parts.push(acc)
      }
      acc = 0
    }
  }
  if (!fresh) throw new DerError('truncated OID')
  return parts.join('.')
}

export function readBoolean (bytes: Uint8Array, tlv: Tlv): boolean {
  if (tlv.tag !== TAG.BOOLEAN || tlv.end - tlv.valueStart !== 1) throw new DerError('bad BOOLEAN')
  const v = bytes[tlv.valueStart] as number
  // X.690 §11.1: DER TRUE is 0xff.
  if (v !== 0 && v !== 0xff) throw new DerError('BOOLEAN is not DER')
  return v === 0xff
}

/** A small non-negative INTEGER (path lengths, versions). */
export function readSmallUint (bytes: Uint8Array, tlv: Tlv): number {
  if (tlv.tag !== TAG.INTEGER) throw new DerError('expected INTEGER')
  const len = tlv.end - tlv.valueStart
  if (len === 0 || len > 4) throw new DerError('INTEGER out of range')
  const first = bytes[tlv.valueStart] as number
  if (first & 0x80) throw new DerError('negative INTEGER')
  if (len > 1 && first === 0 && ((bytes[tlv.valueStart + 1] as number) & 0x80) === 0) throw new DerError('non-minimal INTEGER')
  let v = 0
  for (let i = tlv.valueStart; i < tlv.end; i++) v = v * 256 + (bytes[i] as number)
  return v
}

/** The bits of a BIT STRING as a bit array (index 0 = most significant bit of the first byte). */
export function readBits (bytes: Uint8Array, tlv: Tlv): boolean[] {
  if (tlv.tag !== TAG.BIT_STRING) throw new DerError('expected BIT STRING')
  const len = tlv.end - tlv.valueStart
  if (len === 0) throw new DerError('empty BIT STRING')
  const unused = bytes[tlv.valueStart] as number
  if (unused > 7 || (len === 1 && unused !== 0)) throw new DerError('bad BIT STRING padding')
  const bits: boolean[] = []
  const count = (len - 1) * 8 - unused
  const first = tlv.valueStart + 1
  for (let i = 0; i < count; i++) bits.push((((bytes[first + (i >> 3)] as number) >> (7 - (i & 7))) & 1) === 1)
  return bits
}

/** The content of a BIT STRING with no unused bits (signatures, keys). */
export function bitStringBytes (bytes: Uint8Array, tlv: Tlv): Uint8Array {
  if (tlv.tag !== TAG.BIT_STRING || tlv.end - tlv.valueStart < 1) throw new DerError('expected BIT STRING')
  if (bytes[tlv.valueStart] !== 0) throw new DerError('BIT STRING with unused bits')
  return bytes.subarray(tlv.valueStart + 1, tlv.end)
}

const latin1 = new TextDecoder('latin1')
// checkString has refused invalid UTF-8 before this decoder sees any.
const utf8 = new TextDecoder('utf-8')

/**
 * Throws DerError for a value that is not one of the X.520 string types a Name may use, or not
 * validly encoded as its type; does not decode it. What readString refuses, it refuses here: a
 * Name's attributes certgate does not read are checked as strictly as the ones it does.
 */
export function checkString (bytes: Uint8Array, tlv: Tlv): void {
  const len = tlv.end - tlv.valueStart
  switch (tlv.tag) {
    case TAG.UTF8_STRING:
      if (!isUtf8(value(bytes, tlv))) throw new DerError('invalid UTF-8 in string')
      return
    case TAG.PRINTABLE_STRING:
    case TAG.IA5_STRING:
    case TAG.TELETEX_STRING:
      return
    case TAG.BMP_STRING:
      if (len % 2 !== 0) throw new DerError('odd BMPString length')
      return
    case TAG.UNIVERSAL_STRING:
      if (len % 4 !== 0) throw new DerError('bad UniversalString length')
      // A code point above 0x10ffff: its first octet is not zero, or its second above 0x10.
      for (let i = tlv.valueStart; i < tlv.end; i += 4) {
        if ((bytes[i] as number) !== 0 || (bytes[i + 1] as number) > 0x10) throw new DerError('bad code point')
      }
      return
    default:
      throw new DerError(`unsupported string type 0x${tlv.tag.toString(16)}`)
  }
}

/** Decodes the X.520 string types a Name may use; throws what checkString throws. */
export function readString (bytes: Uint8Array, tlv: Tlv): string {
  checkString(bytes, tlv)
  const v = value(bytes, tlv)
  switch (tlv.tag) {
    case TAG.UTF8_STRING:
      return utf8.decode(v)
    case TAG.BMP_STRING: {
      let s = ''
      for (let i = 0; i < v.length; i += 2) s += String.fromCharCode(((v[i] as number) << 8) | (v[i + 1] as number))
      return s
    }
    case TAG.UNIVERSAL_STRING: {
      let s = ''
      for (let i = 0; i < v.length; i += 4) s += String.fromCodePoint(((v[i + 1] as number) << 16) | ((v[i + 2] as number) << 8) | (v[i + 3] as number))
      return s
    }
    default: // PrintableString, IA5String, TeletexString
      return latin1.decode(v)
  }
}

/** UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), RFC 5280 §4.1.2.5: milliseconds since epoch. */
const timeText = (bytes: Uint8Array, tlv: Tlv): string => latin1.decode(value(bytes, tlv))

const badTime = (bytes: Uint8Array, tlv: Tlv): DerError =>
  new DerError(`bad ${tlv.tag === TAG.UTC_TIME ? 'UTCTime' : 'GeneralizedTime'} "${timeText(bytes, tlv)}"`)

/** The two decimal digits at `at` of a time's text, as a number. */
function twoDigits (bytes: Uint8Array, tlv: Tlv, at: number): number {
  const hi = (bytes[at] as number) - 0x30
  const lo = (bytes[at + 1] as number) - 0x30
  if (hi < 0 || hi > 9 || lo < 0 || lo > 9) throw badTime(bytes, tlv)
  return hi * 10 + lo
}

export function readTime (bytes: Uint8Array, tlv: Tlv): number {
  // Read from the bytes, without a string, a regular expression, a closure or a Date: twice per
  // certificate on every connection. The text is decoded only to say what was wrong.
  const utc = tlv.tag === TAG.UTC_TIME
  if (!utc && tlv.tag !== TAG.GENERALIZED_TIME) throw new DerError('expected a time')
  const v = tlv.valueStart
  const yearDigits = utc ? 2 : 4
  if (tlv.end - v !== yearDigits + 11 || bytes[tlv.end - 1] !== 0x5a) throw badTime(bytes, tlv)
  const yy = twoDigits(bytes, tlv, v)
  const year = utc ? (yy < 50 ? 2000 + yy : 1900 + yy) : yy * 100 + twoDigits(bytes, tlv, v + 2) // RFC 5280 §4.1.2.5.1
  const p = v + yearDigits
  const mon = twoDigits(bytes, tlv, p)
  const day = twoDigits(bytes, tlv, p + 2)
  const hh = twoDigits(bytes, tlv, p + 4)
  const mm = twoDigits(bytes, tlv, p + 6)
  const ss = twoDigits(bytes, tlv, p + 8)
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 59) throw new DerError(`time out of range "${timeText(bytes, tlv)}"`)
  if (day > daysIn(year, mon)) throw new DerError(`no such day "${timeText(bytes, tlv)}"`)
  // Date.UTC reads years 0-99 as 1900-1999; GeneralizedTime's YYYY is literal.
  if (year >= 100) return Date.UTC(year, mon - 1, day, hh, mm, ss)
  const d = new Date(0)
  d.setUTCFullYear(year, mon - 1, day)
  d.setUTCHours(hh, mm, ss, 0)
  return d.getTime()
}

function daysIn (year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)) ? 29 : 28
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31
}

/** Two TLVs of the same bytes have the same encoding (compared in place, no views made). */
export function sameEncoding (bytes: Uint8Array, a: Tlv, b: Tlv): boolean {
  const length = a.end - a.start
  if (b.end - b.start !== length) return false
  for (let i = 0; i < length; i++) if (bytes[a.start + i] !== bytes[b.start + i]) return false
  return true
}

export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
