// Handshake storm: a new TLS connection per attempt (full TLS 1.3 handshake, P-256, the device
// sends leaf + 2 intermediates, tickets off everywhere) over thousands of distinct device
// certificates, through — in one run, rounds interleaved —
//   - a bare Node TLS server verifying natively (`ca` = root) that answers one byte itself;
//   - nginx `stream` with ssl_verify_client, proxying to the upstream (if nginx is installed);
//   - certgate in `tcp` mode to the same upstream, pool + registry check, cache warm and cache off.
// "Authenticated" = the first byte arrives from the upstream (which writes one byte per
// connection). Measures conn/s, time to authenticated, and server CPU per authenticated
// connection (all threads of the server process, nginx master + workers, from /proc). Then, at
// half of certgate's maximum rate (open loop), certgate's own "handshake done → decision"
// histogram (certgate_auth_duration_seconds) from /metrics. Prints a table, writes JSON + SVG.
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { createFleet } from './support/fleet.js'
import { cpuMsOf, startBareTls, startCertgate, threadCpuMs, type ServerProcess } from './support/servers.js'
import { BIN_MS, median, percentile, runConnectLoop, runPaced, type LoopResult } from './support/connect-loop.js'
import { detectNginx, startNginx } from './support/nginx.js'
import { fmt, histogramBuckets, histogramPercentile, num, options, scrape, sumCount, writeRun } from './support/report.js'

const USAGE = `
npm run load:storm -- [options]

Handshake storm through a bare Node TLS server, nginx (stream, ssl_verify_client) and certgate
(tcp mode, cache warm and off), rounds interleaved, medians reported. nginx is optional: without
it the script says what to install and measures the rest (unless --require-nginx 1).
Bounded: rounds x targets x (warmup + seconds), plus the paced phase.`

const opt = options(USAGE, {
  seconds: { default: '8', help: 'measured seconds per target per round' },
  warmup: { default: '2', help: 'warm-up seconds before each measurement (fills the cache)' },
  rounds: { default: '3', help: 'rounds; targets are interleaved within each' },
  devices: { default: '2000', help: 'distinct device certificates, used round-robin' },
  concurrency: { default: '8', help: 'closed loops (connections in flight)' },
  workers: { default: '1', help: 'CERTGATE_WORKERS (pool threads; 0 = validate inline)' },
  targets: { default: 'bare,nginx,warm,cold', help: 'comma list of bare, nginx, warm, cold, inline (base-warm, base-cold are added by --baseline)' },
  'paced-seconds': { default: '6', help: 'seconds of the open-loop phase at half the max rate (0 = skip)' },
  'paced-workers': { default: '1,0', help: 'CERTGATE_WORKERS values for the paced phase (1 = pool, 0 = inline)' },
  'cpu-prof': { default: '', help: 'directory: run certgate (warm) with --cpu-prof there' },
  'require-nginx': { default: '0', help: '1 = fail when nginx is missing instead of skipping it' },
  processes: { default: '', help: 'comma list of CERTGATE_PROCESSES values: adds a target procN (certgate tcp, cache warm, N gateway processes, CPU of the whole group) per value' },
  baseline: { default: '', help: 'another build\'s dist/gateway/cli.js: adds targets base-warm, base-cold (before/after in one run)' }
})
const seconds = num(opt.seconds, 'seconds')
const rounds = num(opt.rounds, 'rounds')
const concurrency = num(opt.concurrency, 'concurrency')
const pacedSeconds = num(opt['paced-seconds'], 'paced-seconds')

/** The upstream: writes one byte on every connection, so the device knows it was let through. */
async function startAckUpstream (): Promise<{ port: number, close: () => void }> {
  const sockets = new Set<Socket>()
  const server = createServer((s) => { sockets.add(s); s.on('error', () => undefined); s.on('close', () => sockets.delete(s)); s.write('A'); s.resume() })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const a = server.address()
  return { port: typeof a === 'object' && a !== null ? a.port : 0, close: () => { for (const s of sockets) s.destroy(); server.close() } }
}

interface Target { readonly key: string, readonly name: string, start: () => Promise<ServerProcess> }
interface Sample { target: string, round: number, connPerSec: number, cpuMsPerConn: number, p50: number, p99: number, completed: number, failed: number, threadsMsPerConn?: Record<string, number>, workerValidationUs?: number }

/**
 * Per-thread CPU ms per connection: the main thread, then the other threads by name and tid
 * (Node 20 names none of its threads; the busiest non-main thread is the pool worker).
 */
function threadDelta (pid: number, before: Map<string, number>, after: Map<string, number>, conns: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [key, ms] of after) {
    const delta = (ms - (before.get(key) ?? 0)) / conns
    if (delta <= 0) continue
    out[key.endsWith(`/${pid}`) ? 'main' : key] = delta
  }
  return Object.fromEntries(Object.entries(out).sort((a, b) => b[1] - a[1]))
}

async function main (): Promise<void> {
  const nginx = detectNginx()
  const wanted = new Set(opt.targets.split(',').map((t) => t.trim()))
  if (wanted.has('nginx') && !nginx.ok) {
    if (opt['require-nginx'] === '1') throw new Error(nginx.missing)
    console.log(`NOTICE: nginx skipped: ${nginx.missing}`)
    wanted.delete('nginx')
  }
  console.log(`node ${process.version} (OpenSSL ${process.versions.openssl}); ${rounds} rounds x ${seconds} s; ${opt.devices} devices; concurrency ${concurrency}; targets ${[...wanted].join(',')}`)
  const fleet = await createFleet(num(opt.devices, 'devices'))
  const upstream = await startAckUpstream()
  const files = { certFile: join(fleet.dataDir, 'dev-server-cert.pem'), keyFile: join(fleet.dataDir, 'dev-server-key.pem'), caFile: join(fleet.dataDir, 'root.pem') }
  writeFileSync(files.caFile, fleet.rootPem)

  const certgate = (cacheEntries: number, workers = opt.workers, nodeArgs: readonly string[] = [], cli?: string, processes = '1'): Promise<ServerProcess> => startCertgate({
    ...(cli === undefined ? {} : { cli }),
    env: {
      CERTGATE_DATA_DIR: fleet.dataDir, CERTGATE_PROTOCOL: 'tcp', CERTGATE_UPSTREAM: `127.0.0.1:${upstream.port}`,
      CERTGATE_WORKERS: workers, CERTGATE_INTERMEDIATE_CACHE_ENTRIES: String(cacheEntries), CERTGATE_PROCESSES: processes,
      // Every benchmark connection comes from 127.0.0.1: per-address limits would measure themselves.
      CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '0', CERTGATE_REFUSAL_MEMORY_S: '0'
    },
    nodeArgs,
    enroll: fleet.enroll
  })
  // Start certgate once first so its development server certificate (P-256) exists for the others too.
  await (await certgate(0)).stop()
  const contexts = fleet.contexts(readFileSync(files.certFile, 'utf8'))
  const prof = opt['cpu-prof'] === '' ? [] : ['--cpu-prof', '--cpu-prof-dir', opt['cpu-prof']]

  const processCounts = opt.processes.split(',').map((n) => n.trim()).filter((n) => n !== '')
  const all: Target[] = [
    { key: 'bare', name: 'bare Node TLS (native verify)', start: async () => await startBareTls(files) },
    ...(nginx.ok ? [{ key: 'nginx', name: 'nginx stream (ssl_verify_client)', start: async () => await startNginx(nginx, { ...files, upstreamPort: upstream.port }) }] : []),
    { key: 'warm', name: 'certgate tcp (cache warm)', start: async () => await certgate(10_000, opt.workers, prof) },
    { key: 'cold', name: 'certgate tcp (cache off)', start: async () => await certgate(0) },
    { key: 'inline', name: 'certgate tcp inline (cache warm)', start: async () => await certgate(10_000, '0') },
    { key: 'base-warm', name: 'baseline build (cache warm)', start: async () => await certgate(10_000, opt.workers, [], opt.baseline) },
    { key: 'base-cold', name: 'baseline build (cache off)', start: async () => await certgate(0, opt.workers, [], opt.baseline) },
    ...processCounts.map((n) => ({ key: `proc${n}`, name: `certgate tcp, ${n} process(es) (cache warm)`, start: async () => await certgate(10_000, opt.workers, [], undefined, n) }))
  ]
  for (const n of processCounts) wanted.add(`proc${n}`)
  if (opt.baseline !== '') { wanted.add('base-warm'); if (wanted.has('cold')) wanted.add('base-cold') }
  const targets = all.filter((t) => wanted.has(t.key))
  const samples: Sample[] = []
  const lastRun = new Map<string, LoopResult>()
  for (let r = 0; r < rounds; r++) {
    for (const t of targets) {
      const server = await t.start()
      try {
        const warm = await runConnectLoop({ port: server.port, contexts, concurrency, durationMs: num(opt.warmup, 'warmup') * 1000 })
        const v0 = server.adminPort === undefined ? undefined : sumCount((await scrape(server.adminPort)).text, 'certgate_validation_duration_seconds')
        const cpu0 = cpuMsOf(server.pids())
        const threads0 = threadCpuMs(server.pid)
        const res = await runConnectLoop({ port: server.port, contexts, concurrency, durationMs: seconds * 1000 })
        const cpu1 = cpuMsOf(server.pids())
        const threads1 = threadCpuMs(server.pid)
        const v1 = server.adminPort === undefined ? undefined : sumCount((await scrape(server.adminPort)).text, 'certgate_validation_duration_seconds')
        const n = Math.max(res.completed, 1)
        const s: Sample = { target: t.name, round: r + 1, connPerSec: res.completed / (res.elapsedMs / 1000), cpuMsPerConn: (cpu1 - cpu0) / n, p50: percentile(res.latenciesMs, 50), p99: percentile(res.latenciesMs, 99), completed: res.completed, failed: res.failed }
        if (t.key !== 'nginx') s.threadsMsPerConn = threadDelta(server.pid, threads0, threads1, n)
        // The worker's own time per validation (certgate's histogram), without the thread hop.
        if (v0 !== undefined && v1 !== undefined && v1.count > v0.count) s.workerValidationUs = ((v1.sum - v0.sum) / (v1.count - v0.count)) * 1e6
        samples.push(s)
        lastRun.set(t.name, res)
        if (t.key === 'warm' && prof.length > 0) console.log(`  (the cpu profile of this certgate covers ${warm.completed + res.completed} connections: npm run load:profile -- <file> --conns ${warm.completed + res.completed})`)
        console.log(`  round ${r + 1} ${t.name.padEnd(34)} ${s.connPerSec.toFixed(0).padStart(6)} conn/s  ${s.cpuMsPerConn.toFixed(3)} ms CPU/conn  p50 ${fmt(s.p50)} ms  p99 ${fmt(s.p99)} ms  failed ${s.failed}`)
      } finally {
        await server.stop()
      }
    }
  }

  const byName = (name: string): Sample[] => samples.filter((s) => s.target === name)
  const nginxCpu = median(byName(all[1]?.key === 'nginx' ? all[1].name : '').map((s) => s.cpuMsPerConn))
  const bareCpu = median(byName(all[0]?.name ?? '').map((s) => s.cpuMsPerConn))
  const rows = targets.map((t) => {
    const mine = byName(t.name)
    const cpu = median(mine.map((s) => s.cpuMsPerConn))
    return { key: t.key, target: t.name, connPerSec: median(mine.map((s) => s.connPerSec)), cpuMsPerConn: cpu, ratioToBare: cpu / bareCpu, ratioToNginx: cpu / nginxCpu, p50: median(mine.map((s) => s.p50)), p99: median(mine.map((s) => s.p99)), failed: mine.reduce((a, s) => a + s.failed, 0) }
  })

  // Open loop at half of certgate's maximum (warm): client-side time to authenticated, and
  // certgate's own handshake-done → decision histogram, the difference between two scrapes.
  const paced: object[] = []
  const warmRow = rows.find((r) => r.key === 'warm')
  const pacedWorkers = opt['paced-workers'].split(',').map((w) => w.trim()).filter((w) => w !== '')
  for (const workers of pacedSeconds > 0 && warmRow !== undefined && Number.isFinite(warmRow.connPerSec) ? pacedWorkers : []) {
    const rate = Math.max(1, Math.round((warmRow?.connPerSec ?? 2) / 2))
    const cg = await certgate(10_000, workers)
    try {
      await runConnectLoop({ port: cg.port, contexts, concurrency, durationMs: num(opt.warmup, 'warmup') * 1000 })
      const labels = { result: 'authenticated' }
      const before = histogramBuckets((await scrape(cg.adminPort ?? 0)).text, 'certgate_auth_duration_seconds', labels)
      const cpu0 = cpuMsOf(cg.pids())
      const res = await runPaced({ port: cg.port, contexts, ratePerSec: rate, durationMs: pacedSeconds * 1000 })
      const cpu1 = cpuMsOf(cg.pids())
      const after = histogramBuckets((await scrape(cg.adminPort ?? 0)).text, 'certgate_auth_duration_seconds', labels)
      const p50 = histogramPercentile(before, after, 50)
      const p99 = histogramPercentile(before, after, 99)
      paced.push({ workers: Number(workers), ratePerSec: rate, achievedPerSec: res.completed / (res.elapsedMs / 1000), completed: res.completed, failed: res.failed, cpuMsPerConn: (cpu1 - cpu0) / Math.max(res.completed, 1), clientP50Ms: percentile(res.latenciesMs, 50), clientP99Ms: percentile(res.latenciesMs, 99), authDecision: { observations: p99.count, p50Ms: p50.value * 1000, p99Ms: p99.value * 1000, p99BucketUpperMs: p99.bucketUpper * 1000 } })
      lastRun.set(`certgate (workers ${workers}) paced at ${rate}/s`, res)
      console.log(`
paced at ${rate} conn/s (half of certgate's max), CERTGATE_WORKERS=${workers}: client p50 ${fmt(percentile(res.latenciesMs, 50))} ms p99 ${fmt(percentile(res.latenciesMs, 99))} ms; certgate auth decision (handshake done -> decision) p50 ${fmt(p50.value * 1000, 3)} ms, p99 ${fmt(p99.value * 1000, 3)} ms (bucket <= ${p99.bucketUpper * 1000} ms), ${p99.count} observations, failed ${res.failed}`)
    } finally {
      await cg.stop()
    }
  }
  upstream.close()
  fleet.dispose()

  console.log(`\nmedians over ${rounds} rounds, node ${process.version} (OpenSSL ${process.versions.openssl}), ${opt.devices} devices, concurrency ${concurrency}:`)
  console.log('| server | conn/s | server CPU ms/conn | x bare | x nginx | p50 ms | p99 ms | failed |')
  console.log('|---|---|---|---|---|---|---|---|')
  for (const r of rows) console.log(`| ${r.target} | ${r.connPerSec.toFixed(0)} | ${r.cpuMsPerConn.toFixed(3)} | ${fmt(r.ratioToBare)} | ${fmt(r.ratioToNginx)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${r.failed} |`)
  const warmThreads = byName(all.find((t) => t.key === 'warm')?.name ?? '').map((s) => s.threadsMsPerConn).filter((x) => x !== undefined)
  for (const t of targets) {
    const us = byName(t.name).map((s) => s.workerValidationUs).filter((x) => x !== undefined)
    if (us.length > 0) console.log(`${t.name}: validation inside the worker ${us.map((u) => u.toFixed(0)).join(', ')} µs per connection (per round)`)
  }
  if (warmThreads.length > 0) console.log(`\ncertgate (warm) CPU ms/conn by thread, per round: ${warmThreads.map((t) => Object.entries(t).filter(([, v]) => v > 0.0005).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')).join(' | ')}`)

  writeRun(opt.out, 'handshake-storm', { options: opt, nginx: nginx.ok ? 'stream' : 'skipped', samples, rows, paced }, `handshake storm, node ${process.version}, ${opt.devices} devices, concurrency ${concurrency}`,
    [...lastRun].map(([name, res]) => ({ name, latenciesMs: res.latenciesMs, perBin: res.perBin, binMs: BIN_MS })))
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
