// What this proves: certgate's X.509 parser and chain validator hold their contract on inputs
// nobody wrote by hand. A corpus of real chains is issued at test time (P-256, P-384, RSA-2048 and
// Ed25519 hierarchies, leaves with SANs, a name-constrained CA, a self-issued rollover
// intermediate, and chains refused for a wrong anchor, expiry, EKU, a CA leaf, a name outside the
// constraints, a path length, an issuer without keyCertSign and a gap), then mutated for a bounded
// time by a seeded generator: bit flips, bytes set to 0x00/0xff/0x80, truncation at every kind of
// offset, byte insertion and deletion, DER length corruption (non-minimal, indefinite, huge,
// off by some, with and without re-encoding the enclosing lengths), TLV splices and tag changes
// between certificates, duplicated/removed/reordered/extra intermediates, swapped anchors, inputs
// as views into larger buffers. For every iteration: (a) parseCertificate returns or throws only
// DerError/CertificateError; (b) validateChain resolves to ok or to a refusal reason from the
// closed set (never internal_error, never a rejection), within 250 ms; (c) a chain refused for its
// anchors is refused after any mutation of what the device sends; (d) when a mutation of an
// accepted chain is accepted, the leaf is byte-identical and the acceptance stands without every
// mutated certificate: only unused extras or the order changed. FUZZ_SECONDS (default 30) bounds
// the wall time, FUZZ_SEED (default below) fixes the mutations; a failure writes the exact input
// to a JSON file in the temp directory (the corpus keys are random, so the file is the repro).
// Every call also goes through the gateway's event-loop warm path when it would decide the input
// (support/both-ways.ts): both verdicts must be identical.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { performance } from 'node:perf_hooks'
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
// issue.js first: it loads reflect-metadata and sets the crypto provider @peculiar/x509 needs.
import { issue, issueHierarchy, type Issued, type KeyAlgorithm } from '../../gateway/pki/issue.js'
import * as x509 from '@peculiar/x509'
import type { ValidateChainInput, ValidateChainResult } from '../../index.js'
import { CertificateError, parseCertificate } from '../certificate.js'
import { DerError } from '../der.js'
import { CHAIN_REASONS } from '../types.js'
import { LIMITS } from '../validate-chain.js'
import { bothWays } from './support/both-ways.js'

// ---- budget and seed ---------------------------------------------------------------------------

const STARTED = performance.now()
const DEFAULT_SEED = 0x5eed_c3a7

function envNumber (name: string, fallback: number, parse: (s: string) => number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = parse(raw)
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}="${raw}" is not a non-negative number`)
  return n
}
const SECONDS = envNumber('FUZZ_SECONDS', 30, Number)
const SEED = envNumber('FUZZ_SEED', DEFAULT_SEED, (s) => /^0x[0-9a-f]+$/i.test(s) ? parseInt(s.slice(2), 16) : /^\d+$/.test(s) ? Number(s) : NaN) >>> 0
const MAX_CALL_MS = 250
/** Share of the time left after the corpus is issued, per property. */
const SHARES = { parse: 0.15, robust: 0.3, refused: 0.25, accepted: 0.3 } as const
/** Even with a tiny budget every property runs this many iterations. */
const MIN_ITERATIONS = 25

// ---- a small deterministic PRNG (mulberry32) ---------------------------------------------------

class Rng {
  private s: number
  constructor (seed: number) { this.s = seed >>> 0 }
  next (): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0
    let t = this.s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }

  /** 0 .. n-1 (0 when n <= 0). */
  int (n: number): number { return n <= 0 ? 0 : Math.floor((this.next() / 2 ** 32) * n) }
  between (lo: number, hi: number): number { return lo + this.int(hi - lo + 1) }
  chance (p: number): boolean { return this.next() / 2 ** 32 < p }
  pick<T> (list: readonly T[]): T {
    assert.ok(list.length > 0, 'pick from an empty list')
    return list[this.int(list.length)] as T
  }

  bytes (n: number): Uint8Array { return Uint8Array.from({ length: n }, () => this.int(256)) }
  /** Picks by weight: [[weight, value], ...]. */
  weighted<T> (table: ReadonlyArray<readonly [number, T]>): T {
    let r = this.next() / 2 ** 32 * table.reduce((s, [w]) => s + w, 0)
    for (const [w, v] of table) { if ((r -= w) < 0) return v }
    return (table[table.length - 1] as readonly [number, T])[1]
  }
}

/** One 32-bit seed from several numbers (per property, per iteration: any iteration can be replayed). */
function mix (...xs: number[]): number {
  let h = 0x9e3779b9
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x85ebca6b)
    h ^= h >>> 13
    h = Math.imul(h, 0xc2b2ae35)
    h ^= h >>> 16
  }
  return h >>> 0
}

// ---- DER helpers (the test's own lenient reader: it must not share bugs with workers/der.ts) -----

const EMPTY = new Uint8Array(0)
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const concat = (parts: readonly Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts))
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

function lengthOctets (n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n)
  const out: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v % 256)
  return Uint8Array.of(0x80 | out.length, ...out)
}

function tlv (tag: number, ...parts: Uint8Array[]): Uint8Array {
  const body = concat(parts)
  return concat([Uint8Array.of(tag), lengthOctets(body.length), body])
}

interface Header { readonly tag: number, readonly start: number, readonly lenStart: number, readonly valueStart: number, readonly end: number }

function readHeader (b: Uint8Array, off: number, limit: number): Header | undefined {
  if (off + 2 > limit) return undefined
  const tag = b[off] as number
  if ((tag & 0x1f) === 0x1f) return undefined
  const first = b[off + 1] as number
  let len = first
  let valueStart = off + 2
  if (first & 0x80) {
    const n = first & 0x7f
    if (n === 0 || n > 4 || off + 2 + n > limit) return undefined
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + (b[off + 2 + i] as number)
    valueStart += n
  }
  const end = valueStart + len
  return end > limit ? undefined : { tag, start: off, lenStart: off + 1, valueStart, end }
}

/** The TLVs that exactly fill [start, end), or undefined. */
function level (b: Uint8Array, start: number, end: number): Header[] | undefined {
  const out: Header[] = []
  for (let p = start; p < end;) {
    const h = readHeader(b, p, end)
    if (h === undefined) return undefined
    out.push(h)
    p = h.end
  }
  return out
}

/** Where a TLV's value holds more TLVs: constructed, OCTET STRING (extnValue), BIT STRING with 0 unused bits (keys, signatures). */
function innerRange (b: Uint8Array, h: Header): [number, number] | undefined {
  if (h.tag & 0x20) return [h.valueStart, h.end]
  if (h.tag === 0x04 && h.end - h.valueStart >= 2) return [h.valueStart, h.end]
  if (h.tag === 0x03 && h.end - h.valueStart >= 3 && b[h.valueStart] === 0) return [h.valueStart + 1, h.end]
  return undefined
}

/** Every TLV in a certificate, nested ones included, with its depth. */
function flatten (b: Uint8Array): Array<Header & { depth: number }> {
  const out: Array<Header & { depth: number }> = []
  const visit = (start: number, end: number, depth: number): void => {
    const hs = level(b, start, end)
    if (hs === undefined || (depth > 0 && hs.length === 0)) return
    for (const h of hs) {
      out.push({ ...h, depth })
      const inner = innerRange(b, h)
      if (inner !== undefined && depth < 12) visit(inner[0], inner[1], depth + 1)
    }
  }
  visit(0, b.length, 0)
  return out
}

/** A mutable DER tree; serialize() re-encodes every length minimally unless `len` overrides it. */
interface TNode { tag: number, len?: Uint8Array, trailer?: Uint8Array, prefix?: Uint8Array, kids?: TNode[], raw?: Uint8Array }

function toTree (b: Uint8Array, h: Header, depth = 0): TNode {
  const inner = depth < 12 ? innerRange(b, h) : undefined
  const hs = inner === undefined ? undefined : level(b, inner[0], inner[1])
  if (inner !== undefined && hs !== undefined && (hs.length > 0 || (h.tag & 0x20) !== 0)) {
    return { tag: h.tag, ...(inner[0] > h.valueStart ? { prefix: b.slice(h.valueStart, inner[0]) } : {}), kids: hs.map((k) => toTree(b, k, depth + 1)) }
  }
  return { tag: h.tag, raw: b.slice(h.valueStart, h.end) }
}

function parseTree (b: Uint8Array): TNode | undefined {
  const h = readHeader(b, 0, b.length)
  return h === undefined || h.end !== b.length ? undefined : toTree(b, h)
}

function serialize (n: TNode): Uint8Array {
  const content = n.kids === undefined ? n.raw ?? EMPTY : concat([n.prefix ?? EMPTY, ...n.kids.map(serialize)])
  return concat([Uint8Array.of(n.tag), n.len ?? lengthOctets(content.length), content, n.trailer ?? EMPTY])
}

function clone (n: TNode): TNode {
  return { ...n, ...(n.kids === undefined ? {} : { kids: n.kids.map(clone) }) }
}

interface Place { readonly node: TNode, readonly parent: TNode | undefined, readonly index: number, readonly depth: number }
function places (root: TNode): Place[] {
  const out: Place[] = []
  const walk = (node: TNode, parent: TNode | undefined, index: number, depth: number): void => {
    out.push({ node, parent, index, depth })
    node.kids?.forEach((k, i) => { walk(k, node, i, depth + 1) })
  }
  walk(root, undefined, 0, 0)
  return out
}

// ---- byte-level mutations of one DER certificate ------------------------------------------------

type Kind = 'bitflip' | 'setbyte' | 'truncate' | 'insert' | 'delete' | 'length-fixed' | 'length-raw' | 'splice-fixed' | 'splice-raw' | 'tlv-structure' | 'retag'
const KINDS: ReadonlyArray<readonly [number, Kind]> = [
  [3, 'bitflip'], [3, 'setbyte'], [2, 'truncate'], [1.5, 'insert'], [1.5, 'delete'],
  [2.5, 'length-fixed'], [1, 'length-raw'], [2, 'splice-fixed'], [0.7, 'splice-raw'], [1.5, 'tlv-structure'], [1, 'retag']
]

/** Length octets that lie about a content of `n` bytes or encode it in a way DER forbids. */
function badLength (rng: Rng, n: number): { octets: Uint8Array, trailer?: Uint8Array, what: string } {
  const big = (v: number, size: number): Uint8Array => Uint8Array.from({ length: size }, (_, i) => Math.floor(v / 256 ** (size - 1 - i)) % 256)
  switch (rng.int(9)) {
    case 0: return { octets: n < 0x80 ? Uint8Array.of(0x81, n) : concat([Uint8Array.of(0x80 | (lengthOctets(n).length)), Uint8Array.of(0), lengthOctets(n).subarray(1)]), what: 'non-minimal' }
    case 1: return { octets: concat([Uint8Array.of(0x84), big(n, 4)]), what: 'non-minimal 4-octet' }
    case 2: return { octets: Uint8Array.of(0x80), trailer: Uint8Array.of(0, 0), what: 'indefinite with end-of-contents' }
    case 3: return { octets: Uint8Array.of(0x80), what: 'indefinite' }
    case 4: return { octets: rng.pick([Uint8Array.of(0x84, 0xff, 0xff, 0xff, 0xff), Uint8Array.of(0x84, 0x7f, 0xff, 0xff, 0xff), Uint8Array.of(0x88, 0, 0, 0, 1, 0, 0, 0, 0), Uint8Array.of(0xff), Uint8Array.of(0x85, 1, 0, 0, 0, 0)]), what: 'huge' }
    case 5: return { octets: lengthOctets(Math.max(0, n + rng.pick([-1, 1, 2, -2]))), what: 'off by a little' }
    case 6: return { octets: lengthOctets(Math.max(0, n + rng.pick([-128, 128, 256, 65536, -n]))), what: 'off by a lot' }
    case 7: return { octets: concat([Uint8Array.of(0x85), big(n, 5)]), what: '5-octet length' }
    default: return { octets: Uint8Array.of(0x82, 0, n & 0xff), what: 'non-minimal 2-octet (possibly wrong)' }
  }
}

function insertion (rng: Rng, donors: readonly Uint8Array[]): Uint8Array {
  switch (rng.int(5)) {
    case 0: return rng.bytes(rng.between(1, 8))
    case 1: return rng.pick([Uint8Array.of(0), Uint8Array.of(0, 0), Uint8Array.of(0xff), Uint8Array.of(0x80)])
    case 2: return rng.pick([Uint8Array.of(0x05, 0x00), Uint8Array.of(0x30, 0x00), Uint8Array.of(0x04, 0x00), Uint8Array.of(0x01, 0x01, 0xff), Uint8Array.of(0x02, 0x01, 0x00)])
    case 3: { const d = rng.pick(donors); const hs = flatten(d); if (hs.length === 0) return d.slice(); const h = rng.pick(hs); return d.slice(h.start, h.end) }
    default: return rng.bytes(rng.between(9, 64))
  }
}

/** One mutation of `der`. Donors supply spliced TLVs; `depth0` allows replacing the whole certificate. */
function mutateDer (rng: Rng, der: Uint8Array, donors: readonly Uint8Array[], stats: Map<string, number>): { der: Uint8Array, note: string } {
  const kind = rng.weighted(KINDS)
  const flat = flatten(der)
  const whole = { tag: 0, start: 0, lenStart: 0, valueStart: 0, end: der.length, depth: 0 }
  const pickTlv = (minDepth = 0): Header & { depth: number } => {
    const deep = flat.filter((h) => h.depth >= minDepth)
    return deep.length > 0 ? rng.pick(deep) : whole
  }
  const count = (what: string): void => { stats.set(what, (stats.get(what) ?? 0) + 1) }
  const at = (): number => rng.chance(0.5) && flat.length > 0 ? rng.pick([pickTlv().start, pickTlv().lenStart, pickTlv().valueStart]) : rng.int(der.length)
  switch (kind) {
    case 'bitflip': {
      const out = Uint8Array.from(der)
      const i = at()
      const bit = rng.int(8)
      if (i < out.length) out[i] = (out[i] as number) ^ (1 << bit)
      count(kind)
      return { der: out, note: `bit ${bit} of byte ${i} flipped` }
    }
    case 'setbyte': {
      const out = Uint8Array.from(der)
      const i = at()
      const v = rng.pick([0x00, 0xff, 0x80, 0x7f, 0x01])
      if (i < out.length) out[i] = v
      count(kind)
      return { der: out, note: `byte ${i} set to 0x${v.toString(16)}` }
    }
    case 'truncate': {
      const h = pickTlv()
      const cuts: Array<[string, number]> = [
        ['at a TLV start', h.start], ['after a tag', h.start + 1], ['inside length octets', Math.min(h.lenStart + 1, h.valueStart - 1)],
        ['at a value start', h.valueStart], ['inside a value', h.valueStart + rng.int(Math.max(1, h.end - h.valueStart))],
        ['one before a TLV end', h.end - 1], ['at a TLV end', h.end], ['to nothing', 0], ['to one byte', 1], ['to two bytes', 2],
        ['one byte short', der.length - 1], ['anywhere', rng.int(der.length)]
      ]
      const [what, n] = rng.pick(cuts)
      count(`truncate ${what}`)
      return { der: der.slice(0, Math.max(0, Math.min(n, der.length))), note: `truncated ${what} (${n} of ${der.length} bytes)` }
    }
    case 'insert': {
      const i = at()
      const ins = insertion(rng, donors)
      count(kind)
      return { der: concat([der.subarray(0, i), ins, der.subarray(i)]), note: `${ins.length} bytes inserted at ${i}` }
    }
    case 'delete': {
      const h = pickTlv(1)
      const [what, from, to] = rng.pick<[string, number, number]>([
        ['bytes', at(), 0], ['a whole TLV', h.start, h.end], ['a TLV header', h.start, h.valueStart], ['a TLV value', h.valueStart, h.end]
      ])
      const end = to === 0 ? from + rng.between(1, 8) : to
      count(`delete ${what}`)
      return { der: concat([der.subarray(0, from), der.subarray(Math.min(end, der.length))]), note: `deleted ${what} [${from}, ${end})` }
    }
    case 'length-raw': {
      const h = pickTlv()
      const bad = badLength(rng, h.end - h.valueStart)
      count(`length ${bad.what} (enclosing lengths unchanged)`)
      return { der: concat([der.subarray(0, h.lenStart), bad.octets, der.subarray(h.valueStart)]), note: `length of the TLV at ${h.start} made ${bad.what}, enclosing lengths unchanged` }
    }
    case 'length-fixed':
    case 'splice-fixed':
    case 'tlv-structure':
    case 'retag': {
      const tree = parseTree(der)
      if (tree === undefined) return mutateDer(rng, der, donors, stats) // already broken: fall back to another kind
      const ps = places(tree)
      const p = rng.pick(ps)
      let note: string
      if (kind === 'length-fixed') {
        const bad = badLength(rng, serialize({ ...p.node, len: EMPTY }).length - 1 - (p.node.trailer?.length ?? 0))
        p.node.len = bad.octets
        if (bad.trailer !== undefined) p.node.trailer = bad.trailer
        note = `length of a depth-${p.depth} TLV (tag 0x${p.node.tag.toString(16)}) made ${bad.what}, enclosing lengths re-encoded`
        count(`length ${bad.what} (enclosing lengths re-encoded)`)
      } else if (kind === 'splice-fixed') {
        const donor = rng.pick(donors)
        const dTree = parseTree(donor)
        if (dTree === undefined || p.parent === undefined) return mutateDer(rng, der, donors, stats)
        const dps = places(dTree).filter((d) => d.depth > 0)
        if (dps.length === 0) return mutateDer(rng, der, donors, stats)
        const sameTag = dps.filter((d) => d.node.tag === p.node.tag)
        const from = rng.pick(sameTag.length > 0 && rng.chance(0.7) ? sameTag : dps)
        p.parent.kids?.splice(p.index, 1, clone(from.node))
        note = `depth-${p.depth} TLV (tag 0x${p.node.tag.toString(16)}) replaced by a depth-${from.depth} TLV (tag 0x${from.node.tag.toString(16)}) of another certificate`
        count(kind)
      } else if (kind === 'tlv-structure') {
        const parent = p.parent
        if (parent?.kids === undefined) return mutateDer(rng, der, donors, stats)
        const op = rng.int(3)
        if (op === 0) parent.kids.splice(p.index, 1)
        else if (op === 1) parent.kids.splice(p.index, 0, clone(p.node))
        else { const j = rng.int(parent.kids.length); [parent.kids[p.index], parent.kids[j]] = [parent.kids[j] as TNode, parent.kids[p.index] as TNode] }
        note = `depth-${p.depth} TLV ${['removed', 'duplicated', 'swapped with a sibling'][op] ?? ''}`
        count(`TLV ${['removed', 'duplicated', 'swapped'][op] ?? ''}`)
      } else {
        const tag = rng.pick([0x30, 0x31, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0c, 0x13, 0x17, 0x18, 0x1e, 0x1c, 0x80, 0x81, 0x82, 0x87, 0xa0, 0xa3, 0xa4, 0x01, p.node.tag ^ 0x20, 0x00, 0x1f])
        note = `depth-${p.depth} tag 0x${p.node.tag.toString(16)} changed to 0x${tag.toString(16)}`
        p.node.tag = tag
        count(kind)
      }
      return { der: serialize(tree), note }
    }
    case 'splice-raw': {
      const h = pickTlv(1)
      const donor = rng.pick(donors)
      const dh = rng.pick(flatten(donor).concat([{ tag: 0, start: 0, lenStart: 0, valueStart: 0, end: donor.length, depth: 0 }]))
      count(kind)
      return { der: concat([der.subarray(0, h.start), donor.subarray(dh.start, dh.end), der.subarray(h.end)]), note: `TLV at ${h.start} replaced by raw bytes of another certificate's TLV, enclosing lengths unchanged` }
    }
  }
}

// ---- the corpus --------------------------------------------------------------------------------

const DAY = 86_400_000
const AT = Date.now()
const PAST = { notBefore: new Date(AT - 30 * DAY), notAfter: new Date(AT - 10 * DAY) }
const KU = x509.KeyUsageFlags
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'

interface Cert { readonly label: string, readonly der: Uint8Array, readonly family: string, readonly ca: boolean }
interface Entry {
  readonly name: string
  /** The family of the leaf and the certificates that can sign for it (shared keys stay in one family). */
  readonly family: string
  readonly leaf: Cert
  readonly intermediates: readonly Cert[]
  readonly anchors: readonly Cert[]
  readonly expect: 'ok' | typeof CHAIN_REASONS[number]
}

/** RFC 5280 §4.2.1.10 NameConstraints with DNS subtrees, critical. */
function dnsConstraints (permitted: readonly string[], excluded: readonly string[]): x509.Extension {
  const subtrees = (tag: number, list: readonly string[]): Uint8Array[] => list.length === 0 ? [] : [tlv(tag, ...list.map((d) => tlv(0x30, tlv(0x82, Buffer.from(d, 'ascii')))))]
  return new x509.Extension('2.5.29.30', true, tlv(0x30, ...subtrees(0xa0, permitted), ...subtrees(0xa1, excluded)))
}

async function buildCorpus (): Promise<{ entries: Entry[], pool: Cert[] }> {
  const pool: Cert[] = []
  const add = (label: string, issued: Issued, family: string, ca: boolean): Cert => {
    const c = { label, der: issued.der, family, ca }
    pool.push(c)
    return c
  }
  const hierarchy = async (family: string, keyAlgorithm: KeyAlgorithm): Promise<{ root: Cert, int1: Cert, int2: Cert, issued: { root: Issued, int1: Issued, int2: Issued } }> => {
    const h = await issueHierarchy({ keyAlgorithm, rootCn: `Fuzz ${family} Root` })
    return { root: add(`${family} root`, h.root, family, true), int1: add(`${family} int1`, h.int1, family, true), int2: add(`${family} int2`, h.int2, family, true), issued: h }
  }
  const [p256, p384, rsa, ed] = await Promise.all([hierarchy('P-256', 'P-256'), hierarchy('P-384', 'P-384'), hierarchy('RSA-2048', 'RSA-2048'), hierarchy('Ed25519', 'Ed25519')])
  const leafOf = async (family: string, label: string, issuer: Issued, keyAlgorithm: KeyAlgorithm, extra: Partial<Parameters<typeof issue>[0]> = {}, ca = false): Promise<Cert> =>
    add(label, await issue({ cn: `fuzz-${label.replace(/[^a-z0-9]+/gi, '-')}`, issuer, keyAlgorithm, sanDns: [`${label.replace(/[^a-z0-9]+/gi, '-')}.devices.example.com`], ...extra }), family, ca)

  const l256 = await leafOf('P-256', 'p256 leaf', p256.issued.int2, 'P-256')
  const l384 = await leafOf('P-384', 'p384 leaf', p384.issued.int2, 'P-384')
  const lRsa = await leafOf('RSA-2048', 'rsa leaf', rsa.issued.int2, 'RSA-2048')
  const lEd = await leafOf('Ed25519', 'ed25519 leaf', ed.issued.int2, 'Ed25519')
  const expired = await leafOf('P-256', 'expired leaf', p256.issued.int2, 'P-256', PAST)
  const serverOnly = await leafOf('P-256', 'serverAuth leaf', p256.issued.int2, 'P-256', { eku: [SERVER_AUTH] })
  const caLeaf = await leafOf('P-256', 'CA leaf', p256.issued.int2, 'P-256', { ca: true, keyUsage: KU.digitalSignature | KU.keyCertSign, eku: [CLIENT_AUTH] }, true)
  const staleInt1 = add('stale p256 int1', await issue({ cn: 'certgate Intermediate 1', ca: true, issuer: p256.issued.root, keys: p256.issued.int1.keys, ...PAST }), 'P-256', true)
  const noCertSignIssued = await issue({ cn: 'Fuzz No keyCertSign', ca: true, issuer: p256.issued.root, keyUsage: KU.cRLSign | KU.digitalSignature })
  const noCertSign = add('CA without keyCertSign', noCertSignIssued, 'P-256', true)
  const underNoCertSign = await leafOf('P-256', 'leaf under no-keyCertSign', noCertSignIssued, 'P-256')

  // Name constraints: example.com permitted, bad.example.com excluded.
  const ncRootIssued = await issue({ cn: 'Fuzz NC Root', ca: true })
  const ncCaIssued = await issue({ cn: 'Fuzz Constrained CA', ca: true, issuer: ncRootIssued, extraExtensions: [dnsConstraints(['example.com'], ['bad.example.com'])] })
  const ncRoot = add('nc root', ncRootIssued, 'NC', true)
  const ncCa = add('name-constrained CA', ncCaIssued, 'NC', true)
  const ncOk = add('nc leaf a.example.com', await issue({ cn: 'fuzz-nc-ok', issuer: ncCaIssued, sanDns: ['a.example.com', 'b.a.example.com'] }), 'NC', false)
  const ncOutside = add('nc leaf evil.com', await issue({ cn: 'fuzz-nc-out', issuer: ncCaIssued, sanDns: ['a.example.com', 'evil.com'] }), 'NC', false)
  const ncExcluded = add('nc leaf x.bad.example.com', await issue({ cn: 'fuzz-nc-excl', issuer: ncCaIssued, sanDns: ['x.bad.example.com'] }), 'NC', false)

  // Key rollover: "Fuzz Int A" re-certifies a new key with its old one (self-issued); the root allows 1 below it.
  const srRootIssued = await issue({ cn: 'Fuzz PathLen 1 Root', ca: true, pathLen: 1 })
  const aIssued = await issue({ cn: 'Fuzz Int A', ca: true, issuer: srRootIssued })
  const rolledIssued = await issue({ cn: 'Fuzz Int A', ca: true, issuer: aIssued })
  const bIssued = await issue({ cn: 'Fuzz Int B', ca: true, issuer: aIssued })
  const srRoot = add('pathLen 1 root', srRootIssued, 'SI', true)
  const intA = add('int A', aIssued, 'SI', true)
  const rolled = add('self-issued int A (rollover)', rolledIssued, 'SI', true)
  const intB = add('int B', bIssued, 'SI', true)
  const underRolled = add('leaf under the rollover', await issue({ cn: 'fuzz-rolled', issuer: rolledIssued, sanDns: ['rolled.devices.example.com'] }), 'SI', false)
  const underB = add('leaf under int B', await issue({ cn: 'fuzz-too-deep', issuer: bIssued }), 'SI', false)

  const entries: Entry[] = [
    { name: 'P-256 leaf with SAN, 2 intermediates, root', family: 'P-256', leaf: l256, intermediates: [p256.int2, p256.int1], anchors: [p256.root], expect: 'ok' },
    { name: 'P-256, int1 registered, root sent as an extra', family: 'P-256', leaf: l256, intermediates: [p256.root, p256.int2], anchors: [p256.int1], expect: 'ok' },
    { name: 'P-256 with stale and unrelated extras, right anchor second', family: 'P-256', leaf: l256, intermediates: [p256.int2, staleInt1, rsa.int1, p256.int1], anchors: [p384.root, p256.root], expect: 'ok' },
    { name: 'P-384 chain', family: 'P-384', leaf: l384, intermediates: [p384.int2, p384.int1], anchors: [p384.root], expect: 'ok' },
    { name: 'RSA-2048 chain', family: 'RSA-2048', leaf: lRsa, intermediates: [rsa.int1, rsa.int2], anchors: [rsa.root], expect: 'ok' },
    { name: 'Ed25519 chain', family: 'Ed25519', leaf: lEd, intermediates: [ed.int2, ed.int1], anchors: [ed.root], expect: 'ok' },
    { name: 'name-constrained CA, leaf inside', family: 'NC', leaf: ncOk, intermediates: [ncCa], anchors: [ncRoot], expect: 'ok' },
    { name: 'self-issued rollover intermediate under pathLen 1', family: 'SI', leaf: underRolled, intermediates: [intA, rolled], anchors: [srRoot], expect: 'ok' },

    { name: 'P-256 chain, anchors of other hierarchies', family: 'P-256', leaf: l256, intermediates: [p256.int2, p256.int1], anchors: [p384.root, rsa.root], expect: 'chain_untrusted' },
    { name: 'RSA chain, Ed25519 anchor', family: 'RSA-2048', leaf: lRsa, intermediates: [rsa.int2, rsa.int1], anchors: [ed.root], expect: 'chain_untrusted' },
    { name: 'gap: int1 not sent', family: 'P-256', leaf: l256, intermediates: [p256.int2], anchors: [p256.root], expect: 'chain_untrusted' },
    { name: 'expired leaf', family: 'P-256', leaf: expired, intermediates: [p256.int2, p256.int1], anchors: [p256.root], expect: 'cert_expired' },
    { name: 'only an expired int1 sent', family: 'P-256', leaf: l256, intermediates: [p256.int2, staleInt1], anchors: [p256.root], expect: 'cert_expired' },
    { name: 'leaf EKU serverAuth only', family: 'P-256', leaf: serverOnly, intermediates: [p256.int2, p256.int1], anchors: [p256.root], expect: 'eku_not_allowed' },
    { name: 'leaf is a CA', family: 'P-256', leaf: caLeaf, intermediates: [p256.int2, p256.int1], anchors: [p256.root], expect: 'leaf_is_ca' },
    { name: 'issuer without keyCertSign', family: 'P-256', leaf: underNoCertSign, intermediates: [noCertSign], anchors: [p256.root], expect: 'issuer_not_ca' },
    { name: 'SAN outside the permitted subtree', family: 'NC', leaf: ncOutside, intermediates: [ncCa], anchors: [ncRoot], expect: 'name_constraints_violated' },
    { name: 'SAN in the excluded subtree', family: 'NC', leaf: ncExcluded, intermediates: [ncCa], anchors: [ncRoot], expect: 'name_constraints_violated' },
    { name: 'two non-self-issued intermediates under pathLen 1', family: 'SI', leaf: underB, intermediates: [intB, intA], anchors: [srRoot], expect: 'path_length_exceeded' }
  ]
  return { entries, pool }
}

const corpus = await buildCorpus()
const POOL_HASHES = new Set(corpus.pool.map((c) => sha(c.der)))
const isPristine = (der: Uint8Array): boolean => POOL_HASHES.has(sha(der))
const KNOWN_REASONS = new Set<string>([...CHAIN_REASONS, 'invalid_input'])
const CORPUS_DONE = performance.now()
const TIME_LEFT = Math.max(0, SECONDS * 1000 - (CORPUS_DONE - STARTED))

// ---- cases: an entry after chain and anchor mutations -------------------------------------------

interface Item { readonly der: Uint8Array, /** The pristine certificate this one was derived from. */ readonly origin: Uint8Array }
interface Case { leaf: Item, intermediates: Item[], anchors: Item[], readonly notes: string[] }
/** 'refused' (property c): only what the device sends changes, donors exclude the entry's own hierarchy. 'accepted' (d): anchors may be swapped for pristine CAs. 'any' (b): everything. */
type Mode = 'refused' | 'accepted' | 'any'

const pristine = (c: Cert): Item => ({ der: c.der, origin: c.der })

function donorsFor (entry: Entry, c: Case, mode: Mode): Uint8Array[] {
  const own = [c.leaf, ...c.intermediates, ...c.anchors].map((i) => i.der)
  // Whole CA certificates other than the entry's own hierarchy cannot complete a refused path;
  // leaves are never donors outside 'any' (a different valid leaf is not a mutation of this one).
  const cas = corpus.pool.filter((p) => p.ca && (mode !== 'refused' || p.family !== entry.family)).map((p) => p.der)
  return mode === 'any' ? [...own, ...corpus.pool.map((p) => p.der)] : [...own, ...cas]
}

function mutateCase (rng: Rng, entry: Entry, mode: Mode, stats: Map<string, number>): Case {
  const c: Case = { leaf: pristine(entry.leaf), intermediates: entry.intermediates.map(pristine), anchors: entry.anchors.map(pristine), notes: [] }
  const rounds = rng.weighted([[6, 1], [2.5, 2], [1.5, 3]] as const)
  for (let r = 0; r < rounds; r++) {
    const ops: Array<readonly [number, string]> = [
      [3, 'mutate leaf'], [3, 'mutate intermediate'], [1.5, 'add mutated copy'], [1, 'duplicate'], [1, 'remove'], [1, 'reorder'],
      [0.7, 'add CA'], [0.4, 'swap leaf'], [0.3, 'flood'], [0.3, 'leaf as intermediate']
    ]
    if (mode !== 'refused') ops.push([1.2, 'swap anchors'], [0.4, 'reorder anchors'])
    if (mode === 'any') ops.push([1, 'mutate anchor'], [0.2, 'no anchors'])
    const op = rng.weighted(ops)
    const donors = donorsFor(entry, c, mode)
    const mutate = (item: Item, who: string): Item => {
      const m = mutateDer(rng, item.der, donors, stats)
      c.notes.push(`${who}: ${m.note}`)
      return { der: m.der, origin: item.origin }
    }
    const anyIndex = (): number => rng.int(c.intermediates.length)
    switch (op) {
      case 'mutate leaf': c.leaf = mutate(c.leaf, 'leaf'); break
      case 'mutate intermediate':
        if (c.intermediates.length === 0) { c.leaf = mutate(c.leaf, 'leaf'); break }
        { const i = anyIndex(); c.intermediates[i] = mutate(c.intermediates[i] as Item, `intermediate ${i}`) }
        break
      case 'add mutated copy': {
        const source = rng.pick([c.leaf, ...c.intermediates, ...c.anchors])
        const i = rng.int(c.intermediates.length + 1)
        c.intermediates.splice(i, 0, mutate(source, `mutated copy inserted as intermediate ${i}`))
        break
      }
      case 'duplicate': {
        const source = rng.pick([...c.intermediates, ...c.anchors, c.leaf])
        c.intermediates.splice(rng.int(c.intermediates.length + 1), 0, source)
        c.notes.push('a certificate duplicated into the intermediates')
        break
      }
      case 'remove':
        if (c.intermediates.length > 0) { c.intermediates.splice(anyIndex(), 1); c.notes.push('an intermediate removed') }
        break
      case 'reorder':
        for (let i = c.intermediates.length - 1; i > 0; i--) { const j = rng.int(i + 1); [c.intermediates[i], c.intermediates[j]] = [c.intermediates[j] as Item, c.intermediates[i] as Item] }
        c.notes.push('intermediates shuffled')
        break
      case 'add CA': {
        const ca = rng.pick(corpus.pool.filter((p) => p.ca && (mode !== 'refused' || p.family !== entry.family)))
        c.intermediates.splice(rng.int(c.intermediates.length + 1), 0, pristine(ca))
        c.notes.push(`"${ca.label}" added to the intermediates`)
        break
      }
      case 'swap leaf':
        if (c.intermediates.length > 0) {
          const i = anyIndex()
          const was = c.leaf
          c.leaf = c.intermediates[i] as Item
          c.intermediates[i] = was
          c.notes.push(`leaf swapped with intermediate ${i}`)
        }
        break
      case 'flood': {
        const n = rng.between(LIMITS.MAX_SENT - 1, LIMITS.MAX_SENT + 3)
        while (c.intermediates.length < n) c.intermediates.push(rng.pick([...c.intermediates, c.leaf]))
        c.notes.push(`intermediates padded with duplicates to ${n}`)
        break
      }
      case 'leaf as intermediate':
        c.intermediates.splice(rng.int(c.intermediates.length + 1), 0, c.leaf)
        c.notes.push('the leaf also sent as an intermediate')
        break
      case 'swap anchors': {
        const cas = corpus.pool.filter((p) => p.ca)
        const n = rng.between(1, 3)
        c.anchors = Array.from({ length: n }, () => pristine(rng.pick(cas)))
        if (rng.chance(0.5)) c.anchors.splice(rng.int(n + 1), 0, ...entry.anchors.map(pristine))
        c.notes.push(`anchors swapped for ${c.anchors.length} others`)
        break
      }
      case 'reorder anchors':
        c.anchors.reverse()
        c.notes.push('anchors reversed')
        break
      case 'mutate anchor':
        if (c.anchors.length > 0) { const i = rng.int(c.anchors.length); c.anchors[i] = mutate(c.anchors[i] as Item, `anchor ${i}`) }
        break
      case 'no anchors':
        c.anchors = []
        c.notes.push('no anchors')
        break
    }
    stats.set(`op ${op}`, (stats.get(`op ${op}`) ?? 0) + 1)
  }
  return c
}

/** The bytes as validateChain gets them: sometimes a Buffer, sometimes a view at an odd offset into a larger, dirty buffer. */
function present (rng: Rng, der: Uint8Array): Uint8Array {
  const r = rng.int(10)
  if (r === 0) return Buffer.from(der)
  if (r === 1) {
    const pad = rng.between(1, 17)
    const big = rng.bytes(der.length + pad + rng.between(0, 17))
    big.set(der, pad)
    return big.subarray(pad, pad + der.length)
  }
  return der
}

function inputOf (rng: Rng, c: Case): ValidateChainInput {
  return { leaf: present(rng, c.leaf.der), intermediates: c.intermediates.map((i) => present(rng, i.der)), anchors: c.anchors.map((i) => present(rng, i.der)), at: new Date(AT) }
}

// ---- running and checking ------------------------------------------------------------------------

interface Timed { readonly result: ValidateChainResult, readonly ms: number }

// Every input is also decided by the gateway's event-loop warm path when it would take it, and must agree.
const both = bothWays()

async function timedValidate (input: ValidateChainInput): Promise<Timed> {
  const started = performance.now()
  let result: ValidateChainResult
  try {
    result = await both.validate(input)
  } catch (err) {
    throw new Error(`validateChain rejected instead of resolving: ${(err as Error).stack ?? String(err)}`)
  }
  return { result, ms: performance.now() - started }
}

/** Property (b)'s checks on any result: shape, closed reason set, never internal_error, time bound. */
function resultProblem (t: Timed): string | undefined {
  const r = t.result as unknown as Record<string, unknown>
  if (t.ms > MAX_CALL_MS) return `validateChain took ${t.ms.toFixed(1)} ms (limit ${MAX_CALL_MS} ms)`
  if (r.ok === true) {
    if (!(r.anchor instanceof Uint8Array)) return 'ok result without an anchor'
    if (r.deviceId !== undefined && typeof r.deviceId !== 'string') return 'ok result with a non-string deviceId'
    return undefined
  }
  if (r.ok !== false) return `result is neither ok nor refused: ${JSON.stringify(r)}`
  if (r.reason === 'internal_error') return `internal_error (a bug in the validator): ${String(r.detail)}`
  if (typeof r.reason !== 'string' || !KNOWN_REASONS.has(r.reason)) return `unknown reason ${JSON.stringify(r.reason)}`
  if (typeof r.detail !== 'string' || r.detail === '') return `refusal ${r.reason} without a detail`
  return undefined
}

interface Stats { iterations: number, maxMs: number, accepted: number, readonly reasons: Map<string, number>, readonly kinds: Map<string, number> }
const newStats = (): Stats => ({ iterations: 0, maxMs: 0, accepted: 0, reasons: new Map(), kinds: new Map() })

function record (s: Stats, t: Timed): void {
  s.maxMs = Math.max(s.maxMs, t.ms)
  if (t.result.ok) s.accepted++
  else s.reasons.set(t.result.reason, (s.reasons.get(t.result.reason) ?? 0) + 1)
}

/** A follow-up call in property (d): held to the same time bound, not counted as an iteration's verdict. */
function recordFollowUp (s: Stats, t: Timed, problem: (p: string) => never): void {
  s.maxMs = Math.max(s.maxMs, t.ms)
  const p = resultProblem(t)
  if (p !== undefined) problem(`follow-up call: ${p}`)
}

/** Writes the failing input where a person can replay it, and fails with everything needed to read it. */
function fail (property: string, iteration: number, entry: Entry | undefined, c: Case | undefined, problem: string, extra: Record<string, unknown> = {}): never {
  const file = join(tmpdir(), `certgate-fuzz-${property}-seed${SEED}-iter${iteration}.json`)
  writeFileSync(file, JSON.stringify({
    property, seed: SEED, iteration, problem, entry: entry?.name, at: new Date(AT).toISOString(), mutations: c?.notes,
    leaf: c === undefined ? undefined : hex(c.leaf.der), intermediates: c?.intermediates.map((i) => hex(i.der)), anchors: c?.anchors.map((i) => hex(i.der)), ...extra
  }, null, 2))
  assert.fail(`property ${property}, seed ${SEED}, iteration ${iteration}, entry "${entry?.name ?? '-'}": ${problem}\nmutations: ${c?.notes.join('; ') ?? '-'}\ninput written to ${file}`)
}

async function runFor (t: TestContext, property: keyof typeof SHARES, body: (rng: Rng, iteration: number, s: Stats) => Promise<void> | void): Promise<Stats> {
  const budget = TIME_LEFT * SHARES[property]
  const s = newStats()
  const started = performance.now()
  const index = Object.keys(SHARES).indexOf(property)
  while (s.iterations < MIN_ITERATIONS || performance.now() - started < budget) {
    await body(new Rng(mix(SEED, index, s.iterations)), s.iterations, s)
    s.iterations++
  }
  const top = (m: Map<string, number>): string => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')
  t.diagnostic(`seed ${SEED} (0x${SEED.toString(16)}), ${property}: ${s.iterations} iterations in ${((performance.now() - started) / 1000).toFixed(1)} s (budget ${(budget / 1000).toFixed(1)} s of FUZZ_SECONDS=${SECONDS})` +
    (property === 'parse' ? '' : `, max validateChain ${s.maxMs.toFixed(1)} ms, ${s.accepted} accepted`))
  if (s.reasons.size > 0) t.diagnostic(`${property}: refusals: ${top(s.reasons)}`)
  t.diagnostic(`${property}: mutations: ${top(s.kinds)}`)
  return s
}

test('fuzz corpus: every unmutated entry gets the verdict it was built for', async (t) => {
  t.diagnostic(`seed ${SEED} (FUZZ_SEED to change it), FUZZ_SECONDS=${SECONDS}; corpus of ${corpus.pool.length} certificates and ${corpus.entries.length} chains issued in ${((CORPUS_DONE - STARTED) / 1000).toFixed(1)} s`)
  for (const e of corpus.entries) {
    const { result } = await timedValidate({ leaf: e.leaf.der, intermediates: e.intermediates.map((c) => c.der), anchors: e.anchors.map((c) => c.der), at: new Date(AT) })
    assert.equal(result.ok ? 'ok' : result.reason, e.expect, `${e.name}: ${result.ok ? 'accepted' : result.detail}`)
  }
  assert.ok(corpus.entries.some((e) => e.expect === 'ok') && corpus.entries.some((e) => e.expect !== 'ok'))
})

test('fuzz (a): parseCertificate returns or throws DerError/CertificateError, nothing else', async (t) => {
  const certs = corpus.pool.map((c) => c.der)
  let parsed = 0
  await runFor(t, 'parse', (rng, i, s) => {
    let der = rng.pick(certs)
    const notes: string[] = []
    for (let k = rng.weighted([[6, 1], [3, 2], [1, 3]] as const); k > 0; k--) {
      const m = mutateDer(rng, der, certs, s.kinds)
      der = m.der
      notes.push(m.note)
    }
    const view = present(rng, der)
    try {
      const cert = parseCertificate(view)
      parsed++
      try { cert.publicKey() } catch (err) {
        if (!(err instanceof CertificateError)) fail('a', i, undefined, { leaf: { der, origin: der }, intermediates: [], anchors: [], notes }, `publicKey() threw ${(err as Error).name}: ${(err as Error).message}`)
      }
    } catch (err) {
      if (!(err instanceof DerError) && !(err instanceof CertificateError)) {
        fail('a', i, undefined, { leaf: { der, origin: der }, intermediates: [], anchors: [], notes }, `parseCertificate threw ${(err as Error).name}: ${(err as Error).message}\n${(err as Error).stack ?? ''}`)
      }
    }
  })
  t.diagnostic(`parse: ${parsed} mutated certificates still parsed`)
})

test('fuzz (b): validateChain always resolves with ok or a known reason, never internal_error, each call under 250 ms', async (t) => {
  await runFor(t, 'robust', async (rng, i, s) => {
    const entry = rng.pick(corpus.entries)
    const c = mutateCase(rng, entry, 'any', s.kinds)
    const timed = await timedValidate(inputOf(rng, c))
    record(s, timed)
    const problem = resultProblem(timed)
    if (problem !== undefined) fail('b', i, entry, c, problem, { result: timed.result })
  })
})

test('fuzz (c): a chain refused for its anchors is never accepted after a mutation of what the device sends', async (t) => {
  const refused = corpus.entries.filter((e) => e.expect !== 'ok')
  await runFor(t, 'refused', async (rng, i, s) => {
    const entry = rng.pick(refused)
    const c = mutateCase(rng, entry, 'refused', s.kinds)
    assert.ok(c.anchors.every((a, k) => a.der === entry.anchors[k]?.der) && c.anchors.length === entry.anchors.length, 'property (c) keeps the anchors')
    const timed = await timedValidate(inputOf(rng, c))
    record(s, timed)
    const problem = resultProblem(timed)
    if (problem !== undefined) fail('c', i, entry, c, problem, { result: timed.result })
    if (timed.result.ok) fail('c', i, entry, c, `a mutation of a chain refused as ${entry.expect} was ACCEPTED`, { result: { ...timed.result, anchor: hex(timed.result.anchor) } })
  })
})

test('fuzz (d): an accepted mutation of an accepted chain changed only unused extras or the order', async (t) => {
  const accepted = corpus.entries.filter((e) => e.expect === 'ok')
  let mutantsChecked = 0
  await runFor(t, 'accepted', async (rng, i, s) => {
    const entry = rng.pick(accepted)
    const c = mutateCase(rng, entry, 'accepted', s.kinds)
    const input = inputOf(rng, c)
    const timed = await timedValidate(input)
    record(s, timed)
    const problem = resultProblem(timed)
    if (problem !== undefined) fail('d', i, entry, c, problem, { result: timed.result })
    if (!timed.result.ok) return
    const anchor = timed.result.anchor
    const why: (p: string) => never = (p) => fail('d', i, entry, c, p, { result: { ...timed.result, anchor: hex(anchor) } })
    if (!same(c.leaf.der, entry.leaf.der)) why('ACCEPTED with a leaf whose DER differs from the original leaf')
    if (!isPristine(anchor) || !c.anchors.some((a) => same(a.der, anchor))) why('accepted with an anchor that is not one of the given, unmodified certificates')
    // Without every mutated certificate, the same acceptance must stand: none was load-bearing.
    const originals = c.intermediates.filter((x) => isPristine(x.der))
    const mutants = c.intermediates.filter((x) => !isPristine(x.der))
    if (mutants.length === 0) return
    const again = await timedValidate({ ...input, intermediates: originals.map((x) => x.der) })
    recordFollowUp(s, again, why)
    if (!again.result.ok) why(`accepted only with the mutated certificates: without them the chain is refused (${again.result.reason}: ${again.result.detail})`)
    if (!same(again.result.anchor, anchor)) why('without the mutated certificates a different anchor is found')
    // Nor does a mutant stand in for the certificate it was derived from.
    for (const m of mutants) {
      mutantsChecked++
      const withoutOrigin = c.intermediates.filter((x) => !same(x.der, m.origin))
      const a = await timedValidate({ ...input, intermediates: withoutOrigin.map((x) => x.der) })
      recordFollowUp(s, a, why)
      if (!a.result.ok) continue
      const b = await timedValidate({ ...input, intermediates: withoutOrigin.filter((x) => x !== m).map((x) => x.der) })
      recordFollowUp(s, b, why)
      if (!b.result.ok) why(`a mutated copy of a certificate replaced it in an accepted path (without the original: accepted; without the mutant too: ${b.result.reason})`)
    }
  })
  t.diagnostic(`accepted: ${mutantsChecked} mutated extras proven unused in accepted chains`)
  t.diagnostic(`both ways: ${both.warmDecided} inputs so far also decided by the event loop's warm path, every one agreeing with the pool's validator`)
  assert.ok(both.warmDecided > 0, 'the warm path never decided an input: the comparison proved nothing')
})
