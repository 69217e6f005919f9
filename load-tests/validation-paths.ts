// Validation paths, CPU per validation by thread: the Piscina pool alone (every chain makes the
// thread hop, as before the warm path) against the gateway's validator (warm chains decided on the
// event loop, warm-path.ts), in one process, rounds interleaved. The device sends leaf + 2
// intermediates (P-256) under a registered root; `concurrency` validations are in flight at a
// time, as in the handshake storm. CPU is read per thread from /proc (main thread, pool worker,
// the rest: V8's GC helpers and libuv), so the thread hop's cost on both sides of it shows.
//
//   npm run load:validation -- [--seconds 3] [--rounds 3] [--concurrency 8]
import { issue, issueHierarchy } from '../gateway/pki/issue.js'
import { createValidator, createValidatorPool, type ValidatorPool } from '../gateway/validation/validator-pool.js'
import { threadCpuMs } from './support/servers.js'
import { median } from './support/connect-loop.js'
import { num, options } from './support/report.js'

const USAGE = `
node dist/load-tests/validation-paths.js [options]

CPU per validation, by thread: the pool alone (every validation hops to a worker) and the gateway's
validator (warm chains on the event loop), interleaved rounds, one process.`

const opt = options(USAGE, {
  seconds: { default: '3', help: 'measured seconds per path per round' },
  rounds: { default: '3', help: 'rounds; paths are interleaved within each' },
  concurrency: { default: '8', help: 'validations in flight' },
  devices: { default: '200', help: 'distinct device certificates, used round-robin' }
})

interface Sample { readonly perSecond: number, readonly mainUs: number, readonly workerUs: number, readonly otherUs: number }

async function measure (validator: ValidatorPool, leaves: readonly Uint8Array[], sent: readonly Uint8Array[], ms: number, concurrency: number): Promise<Sample> {
  const worker = (m: Map<string, number>): number => Math.max(0, ...[...m].filter(([k]) => !k.endsWith(`/${process.pid}`)).map(([, v]) => v))
  const before = threadCpuMs(process.pid)
  const started = performance.now()
  let done = 0
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() - started < ms) {
      const v = await validator.validate(leaves[next++ % leaves.length] as Uint8Array, sent)
      if (v.kind !== 'done' || !v.outcome.chain.ok) throw new Error(`validation failed: ${JSON.stringify(v)}`)
      done++
    }
  }))
  const elapsed = performance.now() - started
  const after = threadCpuMs(process.pid)
  const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0)
  const main = (m: Map<string, number>): number => m.get([...m.keys()].find((k) => k.endsWith(`/${process.pid}`)) ?? '') ?? 0
  const us = (x: number): number => x * 1000 / done
  const mainUs = us(main(after) - main(before))
  const workerUs = us(worker(after) - worker(before))
  return { perSecond: done / (elapsed / 1000), mainUs, workerUs, otherUs: us(total(after) - total(before)) - mainUs - workerUs }
}

async function main (): Promise<void> {
  const concurrency = num(opt.concurrency, 'concurrency')
  const pki = await issueHierarchy()
  const leaves = await Promise.all(Array.from({ length: num(opt.devices, 'devices') }, async (_, i) => (await issue({ cn: `device-${i}`, issuer: pki.int2 })).der))
  const sent = [pki.int2.der, pki.int1.der]
  const options = { threads: 1, maxQueue: 10_000, cacheEntries: 10_000 }
  const paths = [
    { name: 'pool only (every validation hops)', validator: createValidatorPool(options) },
    { name: 'gateway validator (warm path)', validator: createValidator(options) }
  ]
  for (const p of paths) {
    p.validator.setTrusted([{ name: 'root', der: pki.root.der }])
    await measure(p.validator, leaves, sent, 1000, concurrency) // warm both: caches, JIT, the thread
  }
  console.log(`node ${process.version} (OpenSSL ${process.versions.openssl}); ${opt.rounds} rounds x ${opt.seconds} s; concurrency ${concurrency}; CPU µs per validation by thread`)
  const samples = new Map<string, Sample[]>(paths.map((p) => [p.name, []]))
  for (let r = 1; r <= num(opt.rounds, 'rounds'); r++) {
    for (const p of paths) {
      const s = await measure(p.validator, leaves, sent, num(opt.seconds, 'seconds') * 1000, concurrency)
      samples.get(p.name)?.push(s)
      console.log(`  round ${r} ${p.name.padEnd(36)} ${s.perSecond.toFixed(0).padStart(6)}/s  main ${s.mainUs.toFixed(0)} µs  worker ${s.workerUs.toFixed(0)} µs  other threads ${s.otherUs.toFixed(0)} µs`)
    }
  }
  console.log('\n| path | validations/s | main thread µs | pool worker µs | other threads µs | total µs |\n|---|---|---|---|---|---|')
  for (const [name, list] of samples) {
    const m = (f: (s: Sample) => number): number => median(list.map(f))
    console.log(`| ${name} | ${m((s) => s.perSecond).toFixed(0)} | ${m((s) => s.mainUs).toFixed(0)} | ${m((s) => s.workerUs).toFixed(0)} | ${m((s) => s.otherUs).toFixed(0)} | ${m((s) => s.mainUs + s.workerUs + s.otherUs).toFixed(0)} |`)
  }
  await Promise.all(paths.map(async (p) => { await p.validator.close() }))
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
