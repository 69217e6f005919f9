// An enrollment group's deviceIdPattern: a small regular-expression subset, parsed here and
// matched by a Thompson NFA simulated over state sets (no backtracking), so matching costs at
// most input length × NFA states whatever the pattern — no pattern can blow up (ReDoS). The
// subset: literals, escapes (\d \w \s \D \W \S \t \n \r \f \v and escaped punctuation), classes
// `[...]` / `[^...]` with ranges, `.`, quantifiers `? * + {m} {m,} {m,n}` (a trailing lazy `?` is
// accepted: it means nothing for a full match), groups `(...)`, `(?:...)`, `(?<name>...)`, and `|`.
// Everything else (backreferences, lookaround, word boundaries, anchors inside the pattern,
// flags) is refused with a message naming it. The whole CN must match; a leading `^` and a
// trailing `$` are allowed and change nothing. deviceIds are ASCII (IoT Hub rules), so
// character sets are 128-entry tables.

export const MAX_PATTERN_LENGTH = 512
/** Bounds the NFA (and so the matching work): counted repetition multiplies states. */
export const MAX_NFA_STATES = 4096
const MAX_COUNT = 1000

export type PatternResult = { readonly ok: true, readonly matches: (deviceId: string) => boolean } | { readonly ok: false, readonly problem: string }

type CharSet = Uint8Array // 128 entries, 1 = member; code points >= 128 never match
type Node =
  | { readonly t: 'set', readonly set: CharSet }
  | { readonly t: 'cat', readonly items: readonly Node[] }
  | { readonly t: 'alt', readonly items: readonly Node[] }
  | { readonly t: 'rep', readonly body: Node, readonly min: number, readonly max: number }

class PatternError extends Error {}

const range = (from: number, to: number, set: CharSet = new Uint8Array(128)): CharSet => { for (let c = from; c <= to; c++) set[c] = 1; return set }
const union = (into: CharSet, from: CharSet): void => { for (let c = 0; c < 128; c++) if (from[c] === 1) into[c] = 1 }
const negate = (set: CharSet): CharSet => set.map((b) => 1 - b)
const code = (ch: string): number => ch.charCodeAt(0)
const DIGIT = range(48, 57)
const WORD = (() => { const s = range(48, 57); range(65, 90, s); range(97, 122, s); s[95] = 1; return s })()
const SPACE = (() => { const s = new Uint8Array(128); for (const c of [9, 10, 11, 12, 13, 32]) s[c] = 1; return s })()
const ANY = (() => { const s = range(0, 127); s[10] = 0; return s })() // `.`: anything but a newline, as in JS
const CONTROL_ESCAPES: Record<string, number> = { t: 9, n: 10, v: 11, f: 12, r: 13 }
const CLASS_ESCAPES: Record<string, CharSet> = { d: DIGIT, D: negate(DIGIT), w: WORD, W: negate(WORD), s: SPACE, S: negate(SPACE) }

function parse (src: string): Node {
  let i = 0
  const peek = (): string | undefined => src[i]
  const fail = (what: string): never => { throw new PatternError(`${what} at position ${i}`) }

  function escape (inClass: boolean): CharSet {
    i++ // the backslash
    const ch = src[i++]
    if (ch === undefined) return fail('a trailing backslash')
    const cls = CLASS_ESCAPES[ch]
    if (cls !== undefined) return cls
    const ctl = CONTROL_ESCAPES[ch]
    if (ctl !== undefined) return range(ctl, ctl)
    if (/[0-9]/.test(ch)) return fail(inClass ? `\\${ch} (octal escapes are not supported)` : `a backreference \\${ch} (not supported: it needs backtracking)`)
    if (ch === 'b' || ch === 'B') {
      return fail(inClass ? '\\b in a class (not supported)' : `\\${ch} (word boundaries are not supported: the whole CN is matched)`)
    }
    if (/[A-Za-z]/.test(ch)) return fail(`\\${ch} (unsupported escape; escape only punctuation, or use \\d \\w \\s \\D \\W \\S \\t \\n \\r \\f \\v)`)
    if (code(ch) > 127) return fail('a non-ASCII character (deviceIds are ASCII)')
    return range(code(ch), code(ch))
  }

  function literal (): CharSet {
    const ch = src[i++] as string
    if (code(ch) > 127) { i--; return fail('a non-ASCII character (deviceIds are ASCII)') }
    return range(code(ch), code(ch))
  }

  function charClass (): CharSet {
    i++ // [
    const negated = peek() === '^'
    if (negated) i++
    const set = new Uint8Array(128)
    let first = true
    for (;;) {
      const ch = peek()
      if (ch === undefined) return fail('an unterminated character class')
      if (ch === ']' && !first) { i++; break }
      first = false
      const from = ch === '\\' ? escape(true) : literal()
      const single = from.reduce((n, b) => n + b, 0) === 1 && !(ch === '\\' && CLASS_ESCAPES[src[i - 1] as string] !== undefined)
      if (single && peek() === '-' && src[i + 1] !== undefined && src[i + 1] !== ']') {
        i++ // -
        const toCh = peek() as string
        const to = toCh === '\\' ? escape(true) : literal()
        const a = from.indexOf(1)
        const b = to.indexOf(1)
        if (to.reduce((n, x) => n + x, 0) !== 1 || (toCh === '\\' && CLASS_ESCAPES[src[i - 1] as string] !== undefined)) {
          return fail('a range ending in a class escape')
        }
        if (b < a) return fail('a range out of order')
        range(a, b, set)
      } else {
        union(set, from)
      }
    }
    return negated ? negate(set) : set
  }

  function atom (): Node {
    const ch = peek() as string
    switch (ch) {
      case '(': {
        i++
        if (src.startsWith('?:', i)) i += 2
        else if (src.startsWith('?<', i) && !src.startsWith('?<=', i) && !src.startsWith('?<!', i)) {
          const end = src.indexOf('>', i)
          if (end < 0 || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(src.slice(i + 2, end))) return fail('a malformed group name')
          i = end + 1
        } else if (peek() === '?') return fail(`the group "(${src.slice(i, i + 3)}" (lookaround and inline flags are not supported)`)
        const inner = alternation()
        if (peek() !== ')') return fail('an unclosed group')
        i++
        return inner
      }
      case '[': return { t: 'set', set: charClass() }
      case '.': i++; return { t: 'set', set: ANY }
      case '\\': return { t: 'set', set: escape(false) }
      case '^': case '$': return fail(`the anchor "${ch}" inside the pattern (the whole CN is always matched; ^ and $ are allowed only at the ends)`)
      case '*': case '+': case '?': case '{': return fail(`a quantifier "${ch}" with nothing to repeat`)
      case ')': return fail('an unmatched ")"')
      case ']': case '}': return fail(`an unescaped "${ch}"`)
      default: return { t: 'set', set: literal() }
    }
  }

  function quantified (): Node {
    let node = atom()
    for (;;) {
      const ch = peek()
      let min: number
      let max: number
      if (ch === '?') { min = 0; max = 1; i++ } else if (ch === '*') { min = 0; max = Infinity; i++ } else if (ch === '+') { min = 1; max = Infinity; i++ } else if (ch === '{') {
        const m = /^\{(\d{1,4})(,(\d{0,4}))?\}/.exec(src.slice(i))
        if (m === null) return fail('a malformed {m,n} quantifier (escape a literal "{")')
        min = Number(m[1])
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3])
        if (max < min) return fail(`{${min},${max}} with max below min`)
        if (min > MAX_COUNT || (max !== Infinity && max > MAX_COUNT)) return fail(`a repetition count above ${MAX_COUNT}`)
        i += m[0].length
      } else {
        return node
      }
      if (peek() === '?') i++ // lazy: irrelevant for a full match
      if (peek() === '+') return fail('a possessive quantifier (not supported)')
      node = { t: 'rep', body: node, min, max }
    }
  }

  function concatenation (): Node {
    const items: Node[] = []
    while (i < src.length && peek() !== '|' && peek() !== ')') items.push(quantified())
    return { t: 'cat', items }
  }

  function alternation (): Node {
    const items = [concatenation()]
    while (peek() === '|') { i++; items.push(concatenation()) }
    return items.length === 1 ? items[0] as Node : { t: 'alt', items }
  }

  const node = alternation()
  if (i < src.length) fail('an unmatched ")"')
  return node
}

// NFA: states hold either a character set with one successor, a split (two epsilon successors), or match.
interface Nfa { readonly sets: Array<CharSet | null>, readonly out1: Int32Array, readonly out2: Int32Array, readonly start: number, readonly match: number }

function compile (root: Node): Nfa {
  const sets: Array<CharSet | null> = []
  const out1: number[] = []
  const out2: number[] = []
  const add = (set: CharSet | null, a: number, b: number): number => {
    if (sets.length >= MAX_NFA_STATES) {
      throw new PatternError(`a pattern too large once its repetitions are expanded (over ${MAX_NFA_STATES} states); use smaller counts`)
    }
    sets.push(set); out1.push(a); out2.push(b)
    return sets.length - 1
  }
  const match = add(null, -1, -1)
  // Builds `node` followed by the state `next`, back to front; returns the entry state.
  const build = (node: Node, next: number): number => {
    switch (node.t) {
      case 'set': return add(node.set, next, -1)
      case 'cat': return node.items.reduceRight((n, item) => build(item, n), next)
      case 'alt': {
        const entries = node.items.map((item) => build(item, next))
        return entries.slice(0, -1).reduceRight((rest, e) => add(null, e, rest), entries[entries.length - 1] as number)
      }
      case 'rep': {
        let cur = next
        if (node.max === Infinity) {
          const loop = add(null, -1, next)
          out1[loop] = build(node.body, loop)
          cur = loop
        } else {
          for (let k = 0; k < node.max - node.min; k++) cur = add(null, build(node.body, cur), next)
        }
        for (let k = 0; k < node.min; k++) cur = build(node.body, cur)
        return cur
      }
    }
  }
  const start = build(root, match)
  return { sets, out1: Int32Array.from(out1), out2: Int32Array.from(out2), start, match }
}

function matcher (nfa: Nfa): (s: string) => boolean {
  const n = nfa.sets.length
  return (s) => {
    const mark = new Int32Array(n).fill(-1)
    let current: number[] = []
    const stack: number[] = []
    // Adds `from` and everything reachable by epsilon moves to `list`, once per step.
    const close = (from: number, step: number, list: number[]): void => {
      stack.push(from)
      while (stack.length > 0) {
        const st = stack.pop() as number
        if (st < 0 || mark[st] === step) continue
        mark[st] = step
        if (nfa.sets[st] === null && st !== nfa.match) { stack.push(nfa.out2[st] as number, nfa.out1[st] as number) } else list.push(st)
      }
    }
    close(nfa.start, 0, current)
    for (let p = 0; p < s.length; p++) {
      const c = s.charCodeAt(p)
      const nextList: number[] = []
      for (const st of current) {
        const set = nfa.sets[st]
        if (set != null && c < 128 && set[c] === 1) close(nfa.out1[st] as number, p + 1, nextList)
      }
      if (nextList.length === 0) return false
      current = nextList
    }
    return current.includes(nfa.match)
  }
}

/** Parses and compiles a deviceIdPattern; a refusal says what is not supported and where. */
export function compileDeviceIdPattern (source: string): PatternResult {
  if (source.length === 0) return { ok: false, problem: 'an empty pattern matches no deviceId; omit deviceIdPattern to accept any CN' }
  if (source.length > MAX_PATTERN_LENGTH) return { ok: false, problem: `the pattern is longer than ${MAX_PATTERN_LENGTH} characters` }
  let body = source
  if (body.startsWith('^')) body = body.slice(1)
  if (body.endsWith('$') && !body.endsWith('\\$')) body = body.slice(0, -1)
  try {
    return { ok: true, matches: matcher(compile(parse(body))) }
  } catch (err) {
    if (err instanceof PatternError) return { ok: false, problem: `unsupported or malformed pattern: ${err.message}` }
    throw err
  }
}
