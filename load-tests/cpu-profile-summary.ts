// Where the CPU went, from a V8 .cpuprofile (node --cpu-prof; the storm's --cpu-prof writes one
// per thread: the main thread and the pool worker): self time by function and by file, and
// inclusive time by function, in ms and in µs per connection when --conns is given.
//
//   npm run load:profile -- <file.cpuprofile> [--conns N] [--top 25]
// Sampled time is wall time on that thread: a function that made the thread wait (a syscall that
// let another thread run) is charged for the wait. And Node counts as idle whatever runs natively
// in libuv's callbacks outside JS, the TLS handshake included. Read it beside the per-thread CPU
// from /proc; for CPU time by function, record with perf and use `npm run load:perf`.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

const { values, positionals } = parseArgs({ allowPositionals: true, options: { conns: { type: 'string', default: '0' }, top: { type: 'string', default: '25' }, help: { type: 'boolean', default: false } } })
const file = positionals[0]
if (values.help || file === undefined) {
  console.log('usage: npm run load:profile -- <file.cpuprofile> [--conns N] [--top 25]')
  process.exit(file === undefined && !values.help ? 2 : 0)
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
const conns = Number(values.conns)
const top = Number(values.top)

const sampled = new Map<number, number>()
profile.samples.forEach((id, i) => sampled.set(id, (sampled.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
const parent = new Map<number, number>()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const byId = new Map(profile.nodes.map((n) => [n.id, n]))

const shortUrl = (url: string): string => url.replace(/^file:\/\/.*\/(dist|node_modules)\//, '$1/')
const fnKey = (n: ProfileNode): string => `${n.callFrame.functionName === '' ? '(anonymous)' : n.callFrame.functionName} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`

const self = new Map<string, number>()
const byFile = new Map<string, number>()
const inclusive = new Map<string, number>()
let total = 0
for (const n of profile.nodes) {
  const t = sampled.get(n.id) ?? 0
  if (t === 0) continue
  total += t
  self.set(fnKey(n), (self.get(fnKey(n)) ?? 0) + t)
  const f = n.callFrame.url === '' ? `(${n.callFrame.functionName})` : shortUrl(n.callFrame.url)
  byFile.set(f, (byFile.get(f) ?? 0) + t)
  // Charge every distinct function on the stack once (recursion counted once).
  const seen = new Set<string>()
  for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) {
    const m = byId.get(id)
    if (m === undefined) break
    const k = fnKey(m)
    if (!seen.has(k)) { seen.add(k); inclusive.set(k, (inclusive.get(k) ?? 0) + t) }
  }
}

function show (title: string, m: Map<string, number>): void {
  console.log(`\n${title}`)
  console.log(`${'ms'.padStart(9)} ${conns > 0 ? 'µs/conn'.padStart(8) : ''}`)
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ${conns > 0 ? (us / conns).toFixed(1).padStart(8) : ''} ${k}`)
  }
}
console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled${conns > 0 ? `, ${conns} connections` : ''}`)
show('self time by function', self)
show('self time by file', byFile)
show('inclusive time by function', inclusive)
