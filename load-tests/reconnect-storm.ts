// Reconnect storm: every device of a fleet (10,000 by default, each its own certificate)
// reconnects at once through certgate in `mqtt` mode to a real Mosquitto, with bounded
// concurrency in the client (a few hundred TLS handshakes in flight, over several client
// processes). Measures the time until every device has its CONNACK, refusals (must be zero),
// connect time p50/p99, and certgate's responsiveness: admin /healthz polled every 50 ms from
// this (otherwise idle) process throughout, max and p99 latency. Prints a table, writes JSON + SVG.
// --enroll compares it with the same devices unknown to the registry under an enrollment group.
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { createFleet, type AdminApi } from './support/fleet.js'
import { cpuMs, cpuMsOf, openFilesLimit, rssBytes, startCertgate } from './support/servers.js'
import { startMosquitto, mosquittoBinary, MOSQUITTO_MISSING } from './support/mosquitto.js'
import { startFleetClients } from './support/fleet-clients.js'
import { pollHealth } from './support/health-poll.js'
import { BIN_MS, median, percentile } from './support/connect-loop.js'
import { fmt, num, options, writeRun } from './support/report.js'
import { countRegistered } from './support/registered.js'

const USAGE = `
npm run load:reconnect -- [options]

N devices with distinct certificates reconnect at once through certgate (mqtt mode) to a
Mosquitto started for the run; certgate's /healthz is polled throughout. Needs mosquitto
(apt-get install -y mosquitto). Raises the open-files limit of the processes it starts where
the user may (root); otherwise says what to raise. Bounded by --timeout-s.

--enroll: the same storm twice in one run, each on a fresh gateway and Mosquitto: first with every
device pre-registered, then with the registry holding none of them, only an enrollment group on
their CA (each registers itself on its first connection). Prints both, the ratio of the times until
all are connected, and checks each device was registered once (records and audit lines).`

// --enroll is a bare flag; the shared option parser takes valued options only.
const enroll = process.argv.includes('--enroll')
if (enroll) process.argv.splice(process.argv.indexOf('--enroll'), 1)

const opt = options(USAGE, {
  devices: { default: '10000', help: 'devices reconnecting' },
  concurrency: { default: '300', help: 'connection attempts in flight, in all client processes together' },
  processes: { default: '2', help: 'client processes (the client does TLS handshakes too)' },
  workers: { default: '', help: 'CERTGATE_WORKERS (empty: the gateway default)' },
  'health-ms': { default: '50', help: 'poll /healthz every this many ms' },
  sources: { default: '0', help: 'spread clients over 127.0.0.1..127.0.0.N (0: kernel-chosen from 127.0.0.1)' },
  'timeout-s': { default: '120', help: 'per-connection timeout (the run stops by itself after it)' },
  cli: { default: '', help: 'another build\'s dist/gateway/cli.js to measure instead of this one (before/after)' },
  baseline: { default: '', help: 'another build\'s dist/gateway/cli.js: the same storm against it too, alternating with this build, --rounds times (before/after in one run)' },
  rounds: { default: '1', help: 'storms per build (with --baseline: alternating, the order swapped each round)' },
  hold: { default: 'auto', help: '1: every device stays connected (certgate then needs 2 open files per device); 0: DISCONNECT after CONNACK; auto: 1 if the open-files limit allows' }
})

/** What one storm measured; `registered` only for an --enroll storm. */
interface StormResult {
  readonly mode: 'pre-registered' | 'enrolled'
  /** Which gateway: this build (or --cli), or --baseline's. */
  readonly build: 'this' | 'baseline'
  readonly connected: number, readonly refusals: number, readonly failures: Record<string, number>, readonly allConnectedS: number, readonly ratePerSec: number
  readonly connectP50Ms: number, readonly connectP99Ms: number, readonly connectMaxMs: number, readonly certgateCpuMsPerConn: number, readonly mosquittoCpuMsPerConn: number
  /** The client processes' CPU per connection: they share the machine's cores with certgate. */
  readonly clientCpuMsPerConn: number
  readonly certgateRssMiB: number, readonly held: boolean, readonly openFilesLimit: number
  readonly healthz: { everyMs: number, probes: number, failures: number, p50Ms: number, p99Ms: number, maxMs: number }
  readonly registered?: { readonly records: number, readonly auditEntries: number }
  readonly latenciesMs: number[], readonly perBin: number[], readonly healthLatenciesMs: number[]
}

async function storm (mode: StormResult['mode'], build: StormResult['build'], devices: number, concurrency: number, processes: number): Promise<StormResult> {
  const cli = build === 'baseline' ? opt.baseline : opt.cli
  // Two descriptors per forwarded connection in certgate, one in Mosquitto, plus headroom.
  const nofile = 2 * devices + 512
  const fleet = await createFleet(devices, undefined, { enroll: mode === 'enrolled' })
  const mosquitto = await startMosquitto({ nofile })
  const env: Record<string, string> = {
    CERTGATE_DATA_DIR: fleet.dataDir, CERTGATE_PROTOCOL: 'mqtt', CERTGATE_UPSTREAM: `127.0.0.1:${mosquitto.port}`,
    // Every client connects from loopback: the per-address limit would refuse the storm itself.
    CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '0',
    CERTGATE_MAX_HANDSHAKES: String(Math.max(4096, concurrency * 2)),
    ...(opt.workers === '' ? {} : { CERTGATE_WORKERS: opt.workers })
  }
  const gw = await startCertgate({ env, nofile, enroll: fleet.enroll, ...(cli === '' ? {} : { cli }) })
  const cleanup: Array<() => Promise<void>> = [gw.stop, mosquitto.stop]
  try {
    const limit = Math.min(openFilesLimit(gw.pid), openFilesLimit(mosquitto.pid))
    const raise = `raise the hard open-files limit (ulimit -Hn ${nofile} as root, LimitNOFILE in systemd, --ulimit nofile in docker)`
    const hold = opt.hold === '1' || (opt.hold === 'auto' && limit >= nofile)
    if (hold && limit < nofile) throw new Error(`certgate/mosquitto may open only ${limit} files; holding ${devices} devices needs ${nofile}: ${raise}, or use --hold 0`)
    if (!hold && opt.hold === 'auto') console.log(`NOTICE: the open-files limit here is ${limit}, ${nofile} are needed to hold all ${devices} devices connected at once; each device sends DISCONNECT after its CONNACK instead (--hold 0). To hold them: ${raise}.`)
    if (!hold && 2 * concurrency + 512 > limit) throw new Error(`even ${concurrency} connections in flight need ${2 * concurrency + 512} open files (limit ${limit}): lower --concurrency`)
    const clients = await startFleetClients({
      processes, port: gw.port, devices: fleet.devices, chainPem: fleet.chainPem,
      serverCaPem: readFileSync(join(fleet.dataDir, 'dev-server-cert.pem'), 'utf8'),
      concurrency: Math.ceil(concurrency / processes), sources: num(opt.sources, 'sources'), timeoutMs: num(opt['timeout-s'], 'timeout-s') * 1000, hold
    })
    cleanup.unshift(clients.close)
    const cpu0 = { gw: cpuMs(gw.pid), mq: cpuMs(mosquitto.pid), clients: cpuMsOf(clients.pids) }
    const health = pollHealth(gw.adminPort ?? 0, num(opt['health-ms'], 'health-ms'))
    const run = await clients.go()
    const hp = await health.stop()
    const cpu1 = { gw: cpuMs(gw.pid), mq: cpuMs(mosquitto.pid), clients: cpuMsOf(clients.pids) }
    const rss = rssBytes(gw.pid) / 2 ** 20
    // Asked of certgate while it runs; its audit lines are read once it has stopped.
    const records = mode === 'enrolled' ? await countRegistered(adminOf(gw.adminPort ?? 0, fleet.dataDir)) : undefined
    for (const c of cleanup.splice(0)) await c()
    return {
      mode, build, held: hold, openFilesLimit: limit, connected: run.connected, refusals: Object.values(run.failures).reduce((a, b) => a + b, 0), failures: run.failures,
      allConnectedS: run.elapsedMs / 1000, ratePerSec: run.connected / (run.elapsedMs / 1000),
      connectP50Ms: percentile(run.latenciesMs, 50), connectP99Ms: percentile(run.latenciesMs, 99), connectMaxMs: percentile(run.latenciesMs, 100),
      certgateCpuMsPerConn: (cpu1.gw - cpu0.gw) / Math.max(run.connected, 1), mosquittoCpuMsPerConn: (cpu1.mq - cpu0.mq) / Math.max(run.connected, 1),
      clientCpuMsPerConn: (cpu1.clients - cpu0.clients) / Math.max(run.connected, 1),
      certgateRssMiB: rss,
      healthz: { everyMs: num(opt['health-ms'], 'health-ms'), probes: hp.probes, failures: hp.failures, p50Ms: percentile(hp.latenciesMs, 50), p99Ms: hp.p99Ms, maxMs: hp.maxMs },
      ...(records === undefined ? {} : { registered: { records, auditEntries: auditedRegistrations(fleet.dataDir) } }),
      latenciesMs: run.latenciesMs, perBin: run.perBin, healthLatenciesMs: hp.latenciesMs
    }
  } finally {
    for (const c of cleanup) await c()
    fleet.dispose()
  }
}

/** `device_registered` audit lines a stopped gateway wrote (each must be 1 per device). */
function auditedRegistrations (dataDir: string): number {
  return readFileSync(join(dataDir, 'audit.log'), 'utf8').split('\n').filter((l) => l.includes('"action":"device_registered"')).length
}

const adminOf = (port: number, dataDir: string): AdminApi =>
  ({ url: `http://127.0.0.1:${port}`, token: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim() })

async function main (): Promise<void> {
  if (mosquittoBinary() === undefined) throw new Error(MOSQUITTO_MISSING)
  const devices = num(opt.devices, 'devices')
  const processes = Math.max(1, num(opt.processes, 'processes'))
  const concurrency = Math.max(1, num(opt.concurrency, 'concurrency'))
  console.log(`node ${process.version} (OpenSSL ${process.versions.openssl}); ${devices} devices, ${concurrency} in flight over ${processes} client processes${enroll ? '; pre-registered, then never-seen under an enrollment group' : ''}`)
  const rounds = Math.max(1, num(opt.rounds, 'rounds'))
  if (enroll && (opt.baseline !== '' || rounds > 1)) throw new Error('--enroll runs one storm of each kind: use it without --baseline and --rounds')
  const results: StormResult[] = []
  if (enroll) for (const mode of ['pre-registered', 'enrolled'] as const) results.push(await storm(mode, 'this', devices, concurrency, processes))
  for (let r = 0; !enroll && r < rounds; r++) {
    // Interleaved, and each build goes first every other round: the machine's drift falls on both.
    const order: Array<StormResult['build']> = opt.baseline === '' ? ['this'] : r % 2 === 0 ? ['baseline', 'this'] : ['this', 'baseline']
    for (const build of order) results.push(await storm('pre-registered', build, devices, concurrency, processes))
  }

  const held = results[0]?.held === true
  console.log(`\nreconnect storm, node ${process.version}, ${devices} devices, ${concurrency} in flight, ${held ? 'all held connected' : 'each leaving after its CONNACK'}:`)
  console.log('| build | devices | connected | refusals | all connected after s | conn/s | connect p50 ms | p99 ms | certgate CPU ms/conn | clients CPU ms/conn | /healthz probes | /healthz p99 ms | /healthz max ms |')
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|')
  for (const r of results) {
    console.log(`| ${r.build === 'baseline' ? 'baseline' : 'this'} | ${devices}${enroll ? ` ${r.mode}` : ''} | ${r.connected} | ${r.refusals} | ${fmt(r.allConnectedS, 1)} | ${r.ratePerSec.toFixed(0)} | ${fmt(r.connectP50Ms)} | ${fmt(r.connectP99Ms)} | ${fmt(r.certgateCpuMsPerConn, 3)} | ${fmt(r.clientCpuMsPerConn, 3)} | ${r.healthz.probes} (${r.healthz.failures} failed) | ${fmt(r.healthz.p99Ms)} | ${fmt(r.healthz.maxMs)} |`)
    if (r.refusals > 0) console.log(`${r.mode} refusals by reason: ${JSON.stringify(r.failures)}`)
  }
  if (opt.baseline !== '') {
    const of = (b: StormResult['build']): number => median(results.filter((r) => r.build === b).map((r) => r.allConnectedS))
    const ratio = of('this') / of('baseline')
    console.log(`\nall connected after (median of ${rounds}): this build ${fmt(of('this'), 1)} s, baseline ${fmt(of('baseline'), 1)} s: ${ratio.toFixed(2)}x ` +
      `(${((1 - ratio) * 100).toFixed(0)} % shorter; target: at least 25 % shorter, zero refusals)`)
  }
  // On one machine the storm's clients do TLS handshakes too, on the same cores: when they are all
  // busy, the time is bounded by everyone's CPU, and certgate's share bounds what a cheaper
  // certgate can take off it.
  const mid = (f: (r: StormResult) => number): number => median(results.filter((r) => r.build === 'this').map(f))
  const gw = mid((r) => r.certgateCpuMsPerConn)
  const clientsCpu = mid((r) => r.clientCpuMsPerConn)
  const mosquittoCpu = mid((r) => r.mosquittoCpuMsPerConn)
  const all = gw + clientsCpu + mosquittoCpu
  console.log(`\nCPU per connection (medians): certgate ${fmt(gw, 3)} ms, clients ${fmt(clientsCpu, 3)} ms, mosquitto ${fmt(mosquittoCpu, 3)} ms: ` +
    `certgate is ${(gw / all * 100).toFixed(0)} % of the CPU the storm spends on ${availableParallelism()} cores. Where the cores are the limit, a storm 25 % shorter ` +
    `needs certgate at ${fmt(gw - 0.25 * all, 3)} ms per connection or less, everything else unchanged.`)
  const [pre, enrolled] = results
  if (pre !== undefined && enrolled?.registered !== undefined) {
    const ratio = enrolled.allConnectedS / pre.allConnectedS
    console.log(`\nenrolled: ${enrolled.registered.records} devices registered by the group, ${enrolled.registered.auditEntries} device_registered audit entries (each must be ${devices});` +
      ` all connected after ${fmt(enrolled.allConnectedS, 1)} s vs ${fmt(pre.allConnectedS, 1)} s pre-registered: ${ratio.toFixed(2)}x (target <= 1.5x)`)
  }
  // The JSON keeps the summary; the raw latencies go to the chart.
  const strip = (r: StormResult): Record<string, unknown> => Object.fromEntries(Object.entries(r).filter(([k]) => !['latenciesMs', 'perBin', 'healthLatenciesMs'].includes(k)))
  writeRun(opt.out, enroll ? 'reconnect-storm-enroll' : 'reconnect-storm', { options: { ...opt, enroll }, result: results.length === 1 ? strip(results[0] as StormResult) : results.map(strip) },
    `reconnect storm: ${devices} devices through certgate (mqtt) to Mosquitto, node ${process.version}`, results.flatMap((r, i) => [
      { name: `${enroll ? `${r.mode}: ` : ''}${opt.baseline === '' ? '' : `${r.build} #${Math.floor(i / 2) + 1}: `}device connect -> CONNACK`, latenciesMs: r.latenciesMs, perBin: r.perBin, binMs: BIN_MS },
      { name: `${enroll ? `${r.mode}: ` : ''}admin /healthz`, latenciesMs: r.healthLatenciesMs, perBin: [], binMs: BIN_MS }
    ]))
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
