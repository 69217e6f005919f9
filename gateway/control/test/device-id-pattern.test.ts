// What this proves: the deviceIdPattern engine matches the whole CN exactly as JavaScript's own
// RegExp would (anchored) on the supported subset — checked side by side on many inputs — and
// refuses what it does not support (backreferences, lookaround, boundaries, inner anchors) with
// a message naming it. Patterns famous for catastrophic backtracking in JS ((a+)+, (a|a)*, ...)
// answer on hostile inputs here (the test would hang otherwise), and counted repetition that
// would make the automaton huge is refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { compileDeviceIdPattern } from '../device-id-pattern.js'

const compiled = (p: string): ((s: string) => boolean) => {
  const c = compileDeviceIdPattern(p)
  assert.ok(c.ok, `${p}: ${c.ok ? '' : c.problem}`)
  return c.matches
}

test('matches the whole CN as an anchored JavaScript RegExp would', () => {
  const patterns = [
    'sensor-\\d{4}', 'sensor-[0-9]+', '(thermo|hygro)-[a-f0-9]{2,6}', 'a.c', '[^-]+-x?', 'x(?:ab)*y', '(?<kind>dev|gw)_\\w+',
    '[a-zA-Z][a-zA-Z0-9_.:-]{0,30}', 'a{2}', 'a{2,}', 'a{1,3}b?', '\\.\\*', '[\\d.]+', '[\\w-]+@site\\d', '^ab$', 'a|b|', '(a*)*b', 'a+?b'
  ]
  const inputs = ['', 'a', 'aa', 'aaa', 'aaaa', 'b', 'ab', 'aab', 'abc', 'a.c', 'sensor-1234', 'sensor-12345', 'sensor-', 'thermo-ab', 'hygro-abcdef0',
    'thermo-abcdef01', 'x', 'xy', 'xaby', 'xababy', 'xaby!', 'dev_a1', 'gw_', 'gw_x', 'Z9:-._', '9abc', '.*', '1.2.3', 'a-b@site7', 'ab-x', 'ab-', 'a-b-']
  for (const p of patterns) {
    const mine = compiled(p)
    const js = new RegExp(`^(?:${p.replace(/^\^/, '').replace(/\$$/, '')})$`)
    for (const s of inputs) assert.equal(mine(s), js.test(s), `${p} on ${JSON.stringify(s)}`)
  }
})

test('refuses what the subset does not hold, saying what', () => {
  const refused: Array<[string, RegExp]> = [
    ['(a)\\1', /backreference/], ['a(?=b)', /lookaround/], ['(?!x)a', /lookaround/], ['(?<=a)b', /lookaround/], ['\\bword', /word boundaries/],
    ['a^b', /anchor/], ['a$b', /anchor/], ['*a', /nothing to repeat/], ['(ab', /unclosed group/], ['ab)', /unmatched/], ['[ab', /unterminated/],
    ['a{3,1}', /max below min/], ['a{5000}', /above 1000/], ['\\p{L}', /unsupported escape/], ['é', /non-ASCII/], ['', /empty pattern/],
    ['a++', /possessive/], ['[z-a]', /out of order/], ['a{2', /malformed/]
  ]
  for (const [p, why] of refused) {
    const c = compileDeviceIdPattern(p)
    assert.equal(c.ok, false, `${p} must be refused`)
    assert.match(c.problem, why, p)
  }
  // Counted repetition multiplies states: a nested one that would explode is refused, not built.
  const huge = compileDeviceIdPattern('((a{1,100}){1,100}){1,100}')
  assert.equal(huge.ok, false)
  assert.match(huge.problem, /too large/)
})

test('patterns that backtrack catastrophically in JavaScript answer at once here', () => {
  const hostile = 'a'.repeat(120) + '!'
  for (const p of ['(a+)+', '(a|a)*', '(a|aa)+', '(a*)*', '(.*a){20}', '([a-z]+)*[0-9]']) {
    assert.equal(compiled(p)(hostile), false, p)
    assert.equal(compiled(p)('a'.repeat(128)), p !== '([a-z]+)*[0-9]', p)
  }
})
