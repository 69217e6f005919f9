// The DER reader's edge cases (X.690 §8/§10/§11, RFC 5280 §4.1.2.5): every non-canonical or
// truncated encoding throws DerError, and the canonical ones decode to the expected values.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  ChildReader, DerError, TAG, bitStringBytes, bytesEqual, checkString, children, oidString, onlyChild, readBits, readBoolean,
  readSmallUint, readString, readTime, readTlv, sameEncoding, type Tlv
} from '../der.js'

const b = (...bytes: number[]): Uint8Array => Uint8Array.from(bytes)
const top = (bytes: Uint8Array): Tlv => readTlv(bytes, 0, bytes.length)
const ascii = (tag: number, s: string): Uint8Array => b(tag, s.length, ...Buffer.from(s, 'latin1'))

test('readTlv: short and long definite lengths', () => {
  assert.deepEqual(top(b(0x04, 0x02, 0xaa, 0xbb)), { tag: 0x04, start: 0, valueStart: 2, end: 4 })
  const long = new Uint8Array(3 + 0x80)
  long.set([0x04, 0x81, 0x80])
  assert.deepEqual(top(long), { tag: 0x04, start: 0, valueStart: 3, end: 3 + 0x80 })
  const longer = new Uint8Array(4 + 0x100)
  longer.set([0x04, 0x82, 0x01, 0x00])
  assert.equal(top(longer).end, 4 + 0x100)
  // Reads at an offset, bounded by the limit rather than the array.
  assert.deepEqual(readTlv(b(0xff, 0x05, 0x00, 0xff), 1, 3), { tag: 0x05, start: 1, valueStart: 3, end: 3 })
})

test('readTlv: non-canonical, oversized and truncated encodings throw DerError', () => {
  const cases: Array<[string, Uint8Array, number?]> = [
    ['empty input', b()],
    ['header only one byte', b(0x30)],
    ['indefinite length', b(0x30, 0x80, 0x00, 0x00)],
    ['long form for a short length', b(0x04, 0x81, 0x05, 1, 2, 3, 4, 5)],
    ['leading zero length octet', b(0x04, 0x82, 0x00, 0x81, ...new Uint8Array(0x81))],
    ['five length octets', b(0x04, 0x85, 0, 0, 0, 0, 1, 0)],
    ['length octets missing', b(0x04, 0x82, 0x01)],
    ['value longer than the input', b(0x04, 0x03, 1, 2)],
    ['huge length', b(0x04, 0x84, 0xff, 0xff, 0xff, 0xff, 0)],
    ['high tag number', b(0x1f, 0x81, 0x01, 0x00)],
    ['value past the container limit', b(0x04, 0x02, 1, 2), 3]
  ]
  for (const [what, bytes, limit] of cases) {
    assert.throws(() => readTlv(bytes, 0, limit ?? bytes.length), DerError, what)
  }
})

test('children: bounded by the parent and by a count', () => {
  const seq = b(0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02)
  assert.deepEqual(children(seq, top(seq)).map((t) => t.valueStart), [4, 7])
  assert.deepEqual(children(b(0x30, 0x00), top(b(0x30, 0x00))), [])
  assert.throws(() => children(seq, top(seq), 1), DerError)
  // The second child claims 2 bytes but only 1 is left inside the SEQUENCE (the byte after it is outside).
  const overrun = b(0x30, 0x05, 0x02, 0x01, 0x01, 0x02, 0x02, 0x02, 0x00)
  assert.throws(() => children(overrun, readTlv(overrun, 0, overrun.length)), DerError)
})

test('ChildReader: one child at a time, the same bounds as children; end() and onlyChild refuse one left over', () => {
  const seq = b(0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02)
  const reader = new ChildReader(seq, top(seq), 2)
  assert.equal(reader.next()?.valueStart, 4)
  assert.equal(reader.done(), false)
  assert.throws(() => { reader.end() }, DerError)
  assert.equal(reader.next()?.valueStart, 7)
  assert.equal(reader.done(), true)
  reader.end()
  assert.equal(reader.next(), undefined)
  const bounded = new ChildReader(seq, top(seq), 1)
  bounded.next()
  assert.throws(() => bounded.next(), DerError)
  assert.throws(() => onlyChild(seq, top(seq)), DerError)
  const one = b(0x30, 0x03, 0x02, 0x01, 0x07)
  assert.equal(onlyChild(one, top(one))?.valueStart, 4)
  assert.equal(onlyChild(b(0x30, 0x00), top(b(0x30, 0x00))), undefined)
})

test('oidString', () => {
  const oid = (...v: number[]): Tlv & { bytes: Uint8Array } => { const bytes = b(0x06, v.length, ...v); return { ...top(bytes), bytes } }
  const read = (...v: number[]): string => { const o = oid(...v); return oidString(o.bytes, o) }
  assert.equal(read(0x55, 0x1d, 0x13), '2.5.29.19')
  assert.equal(read(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b), '1.2.840.113549.1.1.11')
  assert.equal(read(0x00), '0.0')
  assert.equal(read(0x88, 0x37), '2.999') // first subidentifier 1079 = 2*40 + 999
  assert.throws(() => read(0x55, 0x80, 0x01), DerError, 'non-minimal arc')
  assert.throws(() => read(0x55, 0x1d, 0x93), DerError, 'truncated arc')
  assert.throws(() => read(), DerError, 'empty')
  assert.throws(() => read(0x55, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), DerError, 'arc too large')
  const notOid = b(0x04, 0x01, 0x55)
  assert.throws(() => oidString(notOid, top(notOid)), DerError, 'wrong tag')
})

test('readBoolean: only DER TRUE (0xff) and FALSE (0x00)', () => {
  const read = (...bytes: number[]): boolean => { const x = b(...bytes); return readBoolean(x, top(x)) }
  assert.equal(read(0x01, 0x01, 0xff), true)
  assert.equal(read(0x01, 0x01, 0x00), false)
  assert.throws(() => read(0x01, 0x01, 0x01), DerError)
  assert.throws(() => read(0x01, 0x02, 0x00, 0xff), DerError)
  assert.throws(() => read(0x02, 0x01, 0xff), DerError)
})

test('readSmallUint: minimal, non-negative, at most 4 octets', () => {
  const read = (...v: number[]): number => { const x = b(0x02, v.length, ...v); return readSmallUint(x, top(x)) }
  assert.equal(read(0x00), 0)
  assert.equal(read(0x7f), 127)
  assert.equal(read(0x00, 0x80), 128)
  assert.equal(read(0x7f, 0xff, 0xff, 0xff), 0x7fffffff)
  assert.throws(() => read(0x00, 0x7f), DerError, 'non-minimal')
  assert.throws(() => read(0x80), DerError, 'negative')
  assert.throws(() => read(0x00, 0x80, 0x00, 0x00, 0x00), DerError, 'five octets')
  assert.throws(() => read(), DerError, 'empty')
})

test('readBits and bitStringBytes', () => {
  const bits = (...v: number[]): boolean[] => { const x = b(0x03, v.length, ...v); return readBits(x, top(x)) }
  assert.deepEqual(bits(0x07, 0x80), [true])
  assert.deepEqual(bits(0x01, 0x06), [false, false, false, false, false, true, true]) // keyCertSign | cRLSign
  assert.deepEqual(bits(0x00), [])
  assert.throws(() => bits(), DerError, 'no padding octet')
  assert.throws(() => bits(0x08, 0x00), DerError, 'padding > 7')
  assert.throws(() => bits(0x01), DerError, 'padding without content')
  const sig = b(0x03, 0x03, 0x00, 0xab, 0xcd)
  assert.deepEqual(Array.from(bitStringBytes(sig, top(sig))), [0xab, 0xcd])
  const padded = b(0x03, 0x02, 0x04, 0xf0)
  assert.throws(() => bitStringBytes(padded, top(padded)), DerError)
  const notBits = b(0x04, 0x01, 0x00)
  assert.throws(() => bitStringBytes(notBits, top(notBits)), DerError)
})

test('readString: the X.520 string types', () => {
  const read = (x: Uint8Array): string => readString(x, top(x))
  assert.equal(read(b(TAG.UTF8_STRING, 0x02, 0xc3, 0xa9)), 'é')
  assert.throws(() => read(b(TAG.UTF8_STRING, 0x01, 0xc3)), DerError, 'invalid UTF-8')
  assert.equal(read(ascii(TAG.PRINTABLE_STRING, 'device-1')), 'device-1')
  assert.equal(read(b(TAG.BMP_STRING, 0x02, 0x00, 0xe9)), 'é')
  assert.throws(() => read(b(TAG.BMP_STRING, 0x01, 0x00)), DerError, 'odd BMPString')
  assert.equal(read(b(TAG.UNIVERSAL_STRING, 0x04, 0x00, 0x01, 0xf6, 0x00)), '😀')
  assert.throws(() => read(b(TAG.UNIVERSAL_STRING, 0x04, 0x00, 0x11, 0x00, 0x00)), DerError, 'code point > 0x10ffff')
  assert.throws(() => read(b(TAG.UNIVERSAL_STRING, 0x02, 0x00, 0x41)), DerError, 'UniversalString length')
  assert.throws(() => read(b(TAG.OCTET_STRING, 0x01, 0x41)), DerError, 'not a string type')
})

test('checkString refuses exactly what readString refuses, with the same error', () => {
  // A Name's attributes certgate does not read are only checked (certificate.ts readName); the
  // comparison keys decode them later, when asked, and must never find one that throws.
  const values = [
    b(TAG.UTF8_STRING, 0x02, 0xc3, 0xa9), b(TAG.UTF8_STRING, 0x01, 0xc3), b(TAG.UTF8_STRING, 0x03, 0xed, 0xa0, 0x80), // a lone surrogate
    b(TAG.UTF8_STRING, 0x02, 0xc0, 0x80), b(TAG.UTF8_STRING, 0x00), ascii(TAG.PRINTABLE_STRING, 'x'), ascii(TAG.IA5_STRING, 'a@b'),
    b(TAG.TELETEX_STRING, 0x01, 0xff), b(TAG.BMP_STRING, 0x02, 0xd8, 0x00), b(TAG.BMP_STRING, 0x03, 0x00, 0x41, 0x00),
    b(TAG.UNIVERSAL_STRING, 0x04, 0x00, 0x10, 0xff, 0xff), b(TAG.UNIVERSAL_STRING, 0x04, 0x00, 0x11, 0x00, 0x00),
    b(TAG.UNIVERSAL_STRING, 0x04, 0x01, 0x00, 0x00, 0x00), b(TAG.UNIVERSAL_STRING, 0x03, 0x00, 0x00, 0x41), b(TAG.OCTET_STRING, 0x01, 0x41)
  ]
  const outcome = (f: () => unknown): string => { try { f(); return 'ok' } catch (err) { return `${(err as Error).name}: ${(err as Error).message}` } }
  for (const x of values) {
    assert.equal(outcome(() => checkString(x, top(x))), outcome(() => readString(x, top(x))), Buffer.from(x).toString('hex'))
  }
})

test('readTime: UTCTime and GeneralizedTime as RFC 5280 profiles them', () => {
  const utc = (s: string): number => { const x = ascii(TAG.UTC_TIME, s); return readTime(x, top(x)) }
  const gen = (s: string): number => { const x = ascii(TAG.GENERALIZED_TIME, s); return readTime(x, top(x)) }
  assert.equal(utc('491231235959Z'), Date.UTC(2049, 11, 31, 23, 59, 59))
  assert.equal(utc('500101000000Z'), Date.UTC(1950, 0, 1))
  assert.equal(utc('240229120000Z'), Date.UTC(2024, 1, 29, 12))
  assert.equal(gen('20500101000000Z'), Date.UTC(2050, 0, 1))
  assert.equal(gen('99991231235959Z'), Date.UTC(9999, 11, 31, 23, 59, 59))
  // Four-digit years are years: 0049 is not 1949 (Date.UTC maps 0..99 to 1900..1999).
  assert.equal(new Date(gen('00490101000000Z')).getUTCFullYear(), 49)
  assert.equal(new Date(gen('00000229000000Z')).getUTCFullYear(), 0) // year 0 is a leap year
  for (const bad of ['230229000000Z', '241301000000Z', '240100000000Z', '240431000000Z', '240101240000Z', '240101006000Z', '240101000060Z', '2401010000Z', '240101000000', '240101000000+0100', '240101000000.5Z', '24010100000Z']) {
    assert.throws(() => utc(bad), DerError, `UTCTime ${bad}`)
  }
  for (const bad of ['240101000000Z', '20240101000000', '20240101000000.123Z', '20230229000000Z']) {
    assert.throws(() => gen(bad), DerError, `GeneralizedTime ${bad}`)
  }
  const notTime = ascii(TAG.PRINTABLE_STRING, '240101000000Z')
  assert.throws(() => readTime(notTime, top(notTime)), DerError, 'not a time type')
})

test('sameEncoding compares two TLVs of one buffer, headers included', () => {
  const two = b(0x04, 0x01, 0x07, 0x04, 0x01, 0x07, 0x04, 0x01, 0x08, 0x04, 0x02, 0x07, 0x00)
  const [x, y, z, w] = children(b(0x30, two.length, ...two), top(b(0x30, two.length, ...two)))
  const all = b(0x30, two.length, ...two)
  assert.equal(sameEncoding(all, x as Tlv, y as Tlv), true)
  assert.equal(sameEncoding(all, x as Tlv, z as Tlv), false)
  assert.equal(sameEncoding(all, x as Tlv, w as Tlv), false)
})

test('bytesEqual', () => {
  assert.equal(bytesEqual(b(1, 2, 3), b(1, 2, 3)), true)
  assert.equal(bytesEqual(b(1, 2, 3), b(1, 2, 4)), false)
  assert.equal(bytesEqual(b(1, 2), b(1, 2, 3)), false)
  assert.equal(bytesEqual(b(), b()), true)
})
