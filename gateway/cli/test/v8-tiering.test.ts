// What this proves: `certgate start` asks V8 for earlier TurboFan tier-up on Node 22's V8 12 only
// (Node 24's V8 13 has Maglev and measured no gain; Node 20's V8 11 has other knobs), and never
// overrides a tiering flag the operator put on the node command line.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TIERING_FLAGS, tierUpSooner as apply } from '../v8-tiering.js'

/** What tierUpSooner hands V8, recorded instead of set (the test process's own V8 is left alone). */
function tierUpSooner (v8Version: string, execArgv: readonly string[]): string[] {
  const set: string[] = []
  const applied = apply(v8Version, execArgv, (flag) => { set.push(flag) })
  assert.deepEqual(set, applied)
  return applied
}

test('V8 12 (Node 22) gets the tiering flags; V8 11 (Node 20) and 13 (Node 24) get none', () => {
  assert.deepEqual(tierUpSooner('11.3.244.8-node.30', []), [])
  assert.deepEqual(tierUpSooner('12.4.254.21-node.33', []), [...TIERING_FLAGS])
  assert.deepEqual(tierUpSooner('13.6.233.10-node.28', []), [])
})

test('a tiering flag on the command line wins, in either spelling', () => {
  assert.deepEqual(tierUpSooner('12.4.254.21-node.33', ['--invocation-count-for-turbofan=3000']), ['--minimum-invocations-after-ic-update=50'])
  assert.deepEqual(tierUpSooner('12.4.254.21-node.33', ['--invocation_count_for_turbofan=3000', '--minimum-invocations-after-ic-update=500']), [])
})
