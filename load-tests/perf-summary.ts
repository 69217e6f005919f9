// Where the CPU went, from a `perf record -g` of one server: CPU time, not wall time, and with the
// native work V8's profiler counts as idle (the TLS handshake runs in libuv's callbacks, outside
// JS). The main thread only (the thread with the most samples), in µs per connection: inclusive
// and self time by function; with --against, a second recording (the bare proxy's) beside it and
// the difference; with --under, only what runs below the outermost frame matching a pattern, by
// the frame directly beneath it.
//
//   node --perf-prof --interpreted-frames-native-stack …   (the server; it writes jit-<pid>.dump in its directory)
//   perf record -k mono -e cpu-clock -F 1999 -g -p <pid> -o cg.data   (during a round; count its connections)
//   perf inject --jit -i cg.data -o cg.jit.data             (names each JIT frame as it was when sampled)
//   npm run load:perf -- cg.jit.data --conns N [--against bare.jit.data --against-conns M] [--under handleConnection] [--top 40]
//
// Not --perf-basic-prof: its /tmp/perf-<pid>.map has no times, V8 reuses the addresses of collected
// code, and perf then names a frame after whatever first had its address (on Node 24 the warm
// path's `validate` read as `Socket._writeGeneric`). OpenSSL's assembly keeps no frame pointer, so
// perf loses the callers of its routines: compare those routines' self time, not their callers'
// inclusive time.
import { execFileSync } from 'node:child_process'
import { parseArgs } from 'node:util'
import { frameTimes, parsePerfScript, type FrameTimes } from './support/perf-script.js'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    conns: { type: 'string' },
    against: { type: 'string' },
    'against-conns': { type: 'string' },
    under: { type: 'string' },
    top: { type: 'string', default: '40' },
    help: { type: 'boolean', default: false }
  }
})
const file = positionals[0]
if (values.help || file === undefined || values.conns === undefined) {
  console.log('usage: npm run load:perf -- <perf.jit.data> --conns N [--against <perf.jit.data> --against-conns M] [--under PATTERN] [--top 40]')
  process.exit(values.help ? 0 : 2)
}
const under = values.under === undefined ? undefined : new RegExp(values.under)

function mainThread (data: string, conns: number): FrameTimes {
  const text = execFileSync('perf', ['script', '-i', data, '-F', 'tid,period,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 2 ** 31 - 1 })
  const busiest = [...parsePerfScript(text).values()].sort((x, y) => y.length - x.length)[0] ?? []
  return frameTimes(busiest, conns, under)
}

const a = mainThread(file, Number(values.conns))
const b = values.against === undefined ? undefined : mainThread(values.against, Number(values['against-conns'] ?? values.conns))
const top = Number(values.top)
const cell = (n: number | undefined): string => (n ?? 0).toFixed(1).padStart(8)
function table (title: string, x: Map<string, number>, y: Map<string, number> | undefined): void {
  const size = (n: string): number => y === undefined ? (x.get(n) ?? 0) : Math.abs((x.get(n) ?? 0) - (y.get(n) ?? 0))
  const names = [...new Set([...x.keys(), ...(y?.keys() ?? [])])].sort((p, q) => size(q) - size(p)).slice(0, top)
  console.log(`\n${title}, µs/conn${y === undefined ? '' : ' (this, against, difference)'}`)
  for (const n of names) console.log(`${cell(x.get(n))}${y === undefined ? '' : cell(y.get(n)) + cell((x.get(n) ?? 0) - (y.get(n) ?? 0))}  ${n}`)
}
console.log(`main thread ${a.total.toFixed(1)} µs/conn${b === undefined ? '' : `, against ${b.total.toFixed(1)}`}${under === undefined ? '' : ` (samples under /${values.under}/)`}`)
table(under === undefined ? 'inclusive' : 'directly beneath the match', a.inclusive, b?.inclusive)
table('self', a.self, b?.self)
