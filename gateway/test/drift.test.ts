// What this proves: the README's table of refusal reasons and its list of close reasons say
// exactly what the code can produce — a reason added, renamed or removed in gateway/reasons.ts
// without the README following fails here (and the other way round).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { CLOSE_REASONS, REFUSAL_REASONS } from '../reasons.js'

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')

test('every refusal reason has a row in the README table, and every row is a reason', () => {
  const start = readme.indexOf('### Refusal reasons')
  const section = readme.slice(start, readme.indexOf('\n## ', start))
  const rows = [...section.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1])
  assert.deepEqual([...rows].sort(), [...REFUSAL_REASONS].sort())
})

test('every close reason is listed in the README', () => {
  const start = readme.indexOf('Live connections closed by certgate')
  const para = readme.slice(start, readme.indexOf('\n## ', start))
  const listed = [...para.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]).filter((r) => r !== 'closed')
  assert.deepEqual([...new Set(listed)].sort(), [...CLOSE_REASONS].sort())
})
