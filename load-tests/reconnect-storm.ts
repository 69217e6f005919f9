// Reconnect storm: every device of a fleet (10,000 by default, each its own certificate)
// reconnects at once through certgate in `mqtt` mode to a real Mosquitto, with bounded
// concurrency in the client (a few hundred TLS handshakes in flight, over several client
// processes). Measures the time until every device has its CONNACK, refusals (must be zero),
// connect time p50/p99, and certgate's responsiveness: admin /healthz polled every 50 ms from
// this (otherwise idle) process throughout, max and p99 latency. Prints a table, writes JSON + SVG.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createFleet } from './support/fleet.js'
import { cpuMs, openFilesLimit, rssBytes, startCertgate } from './support/servers.js'
import { startMosquitto, mosquittoBinary, MOSQUITTO_MISSING } from './support/mosquitto.js'
import { startFleetClients } from './support/fleet-clients.js'
import { pollHealth } from './support/health-poll.js'
import { BIN_MS, percentile } from './support/connect-loop.js'
import { fmt, num, options, writeRun } from './support/report.js'

const USAGE = `
npm run load:reconnect -- [options]

N devices with distinct certificates reconnect at once through certgate (mqtt mode) to a
Mosquitto started for the run; certgate's /healthz is polled throughout. Needs mosquitto
(apt-get install -y mosquitto). Raises the open-files limit of the processes it starts where
the user may (root); otherwise says what to raise. Bounded by --timeout-s.`

const opt = options(USAGE, {
  devices: { default: '10000', help: 'devices reconnecting' },
  concurrency: { default: '300', help: 'connection attempts in flight, in all client processes together' },
  processes: { default: '2', help: 'client processes (the client does TLS handshakes too)' },
  workers: { default: '', help: 'CERTGATE_WORKERS (empty: the gateway default)' },
  'health-ms': { default: '50', help: 'poll /healthz every this many ms' },
  sources: { default: '0', help: 'spread clients over 127.0.0.1..127.0.0.N (0: kernel-chosen from 127.0.0.1)' },
  'timeout-s': { default: '120', help: 'per-connection timeout (the run stops by itself after it)' },
  cli: { default: '', help: 'another build\'s dist/gateway/cli.js to measure instead of this one (before/after)' },
  hold: { default: 'auto', help: '1: every device stays connected (certgate then needs 2 open files per device); 0: DISCONNECT after CONNACK; auto: 1 if the open-files limit allows' }
})

async function main (): Promise<void> {
  if (mosquittoBinary() === undefined) throw new Error(MOSQUITTO_MISSING)
  const devices = num(opt.devices, 'devices')
  const processes = Math.max(1, num(opt.processes, 'processes'))
  const concurrency = Math.max(1, num(opt.concurrency, 'concurrency'))
  // Two descriptors per forwarded connection in certgate, one in Mosquitto, plus headroom.
  const nofile = 2 * devices + 512
  console.log(`node ${process.version} (OpenSSL ${process.versions.openssl}); ${devices} devices, ${concurrency} in flight over ${processes} client processes`)
  const fleet = await createFleet(devices)
  const mosquitto = await startMosquitto({ nofile })
  const env: Record<string, string> = {
    CERTGATE_DATA_DIR: fleet.dataDir, CERTGATE_PROTOCOL: 'mqtt', CERTGATE_UPSTREAM: `127.0.0.1:${mosquitto.port}`,
    // Every client connects from loopback: the per-address limit would refuse the storm itself.
    CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '0',
    CERTGATE_MAX_HANDSHAKES: String(Math.max(4096, concurrency * 2)),
    ...(opt.workers === '' ? {} : { CERTGATE_WORKERS: opt.workers })
  }
  const gw = await startCertgate({ env, nofile, enroll: fleet.enroll, ...(opt.cli === '' ? {} : { cli: opt.cli }) })
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
    const cpu0 = { gw: cpuMs(gw.pid), mq: cpuMs(mosquitto.pid) }
    const health = pollHealth(gw.adminPort ?? 0, num(opt['health-ms'], 'health-ms'))
    const run = await clients.go()
    const hp = await health.stop()
    const cpu1 = { gw: cpuMs(gw.pid), mq: cpuMs(mosquitto.pid) }
    const refusals = Object.values(run.failures).reduce((a, b) => a + b, 0)
    const result = {
      devices, held: hold, openFilesLimit: limit, connected: run.connected, refusals, failures: run.failures,
      allConnectedS: run.elapsedMs / 1000, ratePerSec: run.connected / (run.elapsedMs / 1000),
      connectP50Ms: percentile(run.latenciesMs, 50), connectP99Ms: percentile(run.latenciesMs, 99), connectMaxMs: percentile(run.latenciesMs, 100),
      certgateCpuMsPerConn: (cpu1.gw - cpu0.gw) / Math.max(run.connected, 1), mosquittoCpuMsPerConn: (cpu1.mq - cpu0.mq) / Math.max(run.connected, 1),
      certgateRssMiB: rssBytes(gw.pid) / 2 ** 20,
      healthz: { everyMs: num(opt['health-ms'], 'health-ms'), probes: hp.probes, failures: hp.failures, p50Ms: percentile(hp.latenciesMs, 50), p99Ms: hp.p99Ms, maxMs: hp.maxMs }
    }
    console.log(`\nreconnect storm, node ${process.version}, ${devices} devices, ${concurrency} in flight, ${hold ? 'all held connected' : 'each leaving after its CONNACK'}:`)
    console.log('| devices | connected | refusals | all connected after s | conn/s | connect p50 ms | p99 ms | certgate CPU ms/conn | /healthz probes | /healthz p99 ms | /healthz max ms |')
    console.log('|---|---|---|---|---|---|---|---|---|---|---|')
    console.log(`| ${devices} | ${result.connected} | ${refusals} | ${fmt(result.allConnectedS, 1)} | ${result.ratePerSec.toFixed(0)} | ${fmt(result.connectP50Ms)} | ${fmt(result.connectP99Ms)} | ${fmt(result.certgateCpuMsPerConn, 3)} | ${hp.probes} (${hp.failures} failed) | ${fmt(hp.p99Ms)} | ${fmt(hp.maxMs)} |`)
    if (refusals > 0) console.log(`refusals by reason: ${JSON.stringify(run.failures)}`)
    writeRun(opt.out, 'reconnect-storm', { options: opt, result }, `reconnect storm: ${devices} devices through certgate (mqtt) to Mosquitto, node ${process.version}`, [
      { name: 'device connect -> CONNACK', latenciesMs: run.latenciesMs, perBin: run.perBin, binMs: BIN_MS },
      { name: 'admin /healthz', latenciesMs: hp.latenciesMs, perBin: [], binMs: BIN_MS }
    ])
  } finally {
    for (const c of cleanup) await c()
    fleet.dispose()
  }
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
