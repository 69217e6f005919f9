// Handshake benchmark: full-handshake authenticated connections as fast as a closed loop can
// open them, through certgate (cache warm, and cache off = cold) and through a bare Node TLS
// server verifying natively, all in one run; also certgate validating inline (CERTGATE_WORKERS=0) on the same Node and certificates. Prints conn/s,
// server CPU ms per authenticated connection (all threads, /proc) and time to authenticated;
// medians over rounds; ratios to the bare server. Writes JSON under load-tests/results/.
//
//   npm run bench:handshake -- [--seconds 8] [--rounds 3] [--devices 2000] [--concurrency 8]
//   npm run bench:handshake -- --processes 1,2   (the bare server, then certgate with
//                                                   CERTGATE_PROCESSES=1 and =2, cache warm;
//                                                   CPU summed over every process of the group)
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createFleet } from './support/fleet.js'
import { cpuMs, startBareTls, startCertgate, type ServerProcess } from './support/servers.js'
import { median, percentile, runConnectLoop } from './support/connect-loop.js'

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    devices: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    workers: { type: 'string', default: '1' },
    processes: { type: 'string' }
  }
})
const seconds = Number(values.seconds)
const rounds = Number(values.rounds)
const concurrency = Number(values.concurrency)

/** The upstream: writes one byte on every connection, so the device knows it was let through. */
async function startAckUpstream (): Promise<{ port: number, close: () => void }> {
  const sockets = new Set<Socket>()
  const server = createServer((s) => { sockets.add(s); s.on('error', () => undefined); s.on('close', () => sockets.delete(s)); s.write('A'); s.resume() })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const a = server.address()
  return { port: typeof a === 'object' && a !== null ? a.port : 0, close: () => { for (const s of sockets) s.destroy(); server.close() } }
}

interface Sample { target: string, connPerSec: number, cpuMsPerConn: number, p50: number, p99: number, failed: number }

async function main (): Promise<void> {
  console.log(`node ${process.version} (OpenSSL ${process.versions.openssl}); ${rounds} rounds x ${seconds} s; ${values.devices} devices; concurrency ${concurrency}`)
  const fleet = await createFleet(Number(values.devices))
  const upstream = await startAckUpstream()
  const dirs = { certFile: join(fleet.dataDir, 'dev-server-cert.pem'), keyFile: join(fleet.dataDir, 'dev-server-key.pem'), caFile: join(fleet.dataDir, 'root.pem') }
  writeFileSync(dirs.caFile, fleet.root.pem)

  const certgateEnv = (cacheEntries: number, workers = values.workers, processes = '1'): Record<string, string> => ({
    CERTGATE_DATA_DIR: fleet.dataDir, CERTGATE_PROTOCOL: 'tcp', CERTGATE_UPSTREAM: `127.0.0.1:${upstream.port}`,
    CERTGATE_WORKERS: workers, CERTGATE_INTERMEDIATE_CACHE_ENTRIES: String(cacheEntries), CERTGATE_PROCESSES: processes,
    // Every benchmark connection comes from 127.0.0.1: per-address limits would measure themselves.
    CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '0', CERTGATE_REFUSAL_MEMORY_S: '0'
  })
  // Start certgate once first so the dev server certificate exists for the bare server too.
  await (await startCertgate(certgateEnv(0))).stop()
  const contexts = fleet.contexts(readFileSync(dirs.certFile, 'utf8'))

  const bare = { name: 'bare Node TLS (native verify)', start: async () => await startBareTls(dirs) }
  const targets: Array<{ name: string, start: () => Promise<ServerProcess> }> = values.processes !== undefined
    ? [bare, ...values.processes.split(',').map((n) => ({ name: `certgate ${n} process(es), ${values.workers} worker(s) each`, start: async () => await startCertgate(certgateEnv(10_000, values.workers, n)) }))]
    : [
        bare,
        { name: 'certgate (cache warm)', start: async () => await startCertgate(certgateEnv(10_000)) },
        { name: 'certgate (cache off)', start: async () => await startCertgate(certgateEnv(0)) },
        { name: 'certgate inline (cache warm)', start: async () => await startCertgate(certgateEnv(10_000, '0')) }
      ]
  const samples: Sample[] = []
  for (let r = 0; r < rounds; r++) {
    for (const t of targets) {
      const server = await t.start()
      await runConnectLoop({ port: server.port, contexts, concurrency, durationMs: Number(values.warmup) * 1000 })
      const cpu0 = cpuMs(server.pid)
      const res = await runConnectLoop({ port: server.port, contexts, concurrency, durationMs: seconds * 1000 })
      const cpu1 = cpuMs(server.pid)
      await server.stop()
      const s = { target: t.name, connPerSec: res.completed / (res.elapsedMs / 1000), cpuMsPerConn: (cpu1 - cpu0) / res.completed, p50: percentile(res.latenciesMs, 50), p99: percentile(res.latenciesMs, 99), failed: res.failed }
      samples.push(s)
      console.log(`  round ${r + 1} ${t.name.padEnd(32)} ${s.connPerSec.toFixed(0).padStart(6)} conn/s  ${s.cpuMsPerConn.toFixed(3)} ms CPU/conn  p50 ${s.p50.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms  failed ${s.failed}`)
    }
  }
  upstream.close()

  const base = median(samples.filter((s) => s.target === targets[0]?.name).map((s) => s.cpuMsPerConn))
  const rows = targets.map((t) => {
    const mine = samples.filter((s) => s.target === t.name)
    const cpu = median(mine.map((s) => s.cpuMsPerConn))
    return { target: t.name, connPerSec: median(mine.map((s) => s.connPerSec)), cpuMsPerConn: cpu, ratioToBare: cpu / base, p50: median(mine.map((s) => s.p50)), p99: median(mine.map((s) => s.p99)), failed: mine.reduce((a, s) => a + s.failed, 0) }
  })
  console.log(`\nmedians over ${rounds} rounds, node ${process.version}:`)
  console.log('| server | conn/s | server CPU ms/conn | x bare | p50 ms | p99 ms | failed |')
  console.log('|---|---|---|---|---|---|---|')
  for (const r of rows) console.log(`| ${r.target} | ${r.connPerSec.toFixed(0)} | ${r.cpuMsPerConn.toFixed(3)} | ${r.ratioToBare.toFixed(2)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.failed} |`)
  const outDir = new URL('../../load-tests/results/', import.meta.url)
  mkdirSync(outDir, { recursive: true })
  const file = new URL(`handshake-node${process.versions.node}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, outDir)
  writeFileSync(file, JSON.stringify({ node: process.version, openssl: process.versions.openssl, options: values, samples, rows }, null, 2))
  console.log(`\nwrote ${file.pathname}`)
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
