// V8 compiles a function with its optimizing compiler (TurboFan) only after ~3,000 calls, and the
// V8 of Node 22 has no Maglev tier in between. certgate's per-connection functions run once per
// connection, so a gateway that just started spends its first few thousand connections in baseline
// code — exactly when a fleet reconnects to it after a restart or a deploy. On Node 22, `certgate
// start` asks for TurboFan after 300 calls: measured on fresh gateways, the first ~2,000
// connections cost ~10–13 % less CPU (11 of 12 interleaved pairs; docs/benchmarks-performance.md
// "Tier-up"). Node 24's V8 reaches Maglev after 400 calls by itself and measured no gain, and Node
// 20's V8 names these knobs differently: both are left as they are. A flag given on the node
// command line wins.
import { setFlagsFromString } from 'node:v8'

export const TIERING_FLAGS = ['--invocation-count-for-turbofan=300', '--minimum-invocations-after-ic-update=50'] as const

/** Applies TIERING_FLAGS on V8 12 (Node 22) unless the command line sets the same flag; returns what it applied. */
export function tierUpSooner (v8Version = process.versions.v8, execArgv: readonly string[] = process.execArgv, set: (flag: string) => void = setFlagsFromString): string[] {
  if (Number(v8Version.split('.')[0]) !== 12) return []
  const given = new Set(execArgv.map((a) => (a.split('=')[0] ?? a).replaceAll('_', '-')))
  const applied = TIERING_FLAGS.filter((f) => !given.has(f.split('=')[0] ?? f))
  for (const flag of applied) set(flag)
  return applied
}
