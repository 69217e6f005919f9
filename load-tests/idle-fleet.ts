// Idle fleet: N authenticated MQTT connections (20,000 by default, each device its own
// certificate) held open through certgate (mqtt mode) to Mosquitto, or to certgate's embedded
// broker. Measures certgate's resident memory (VmRSS from /proc) before, once all are connected,
// and at its peak while they sit idle: total, and per connection above the empty gateway; the
// V8 heap from certgate's /metrics beside it. The client side is several processes (their TLS
// state costs memory too, and one process's open-files limit may be too low). Prints a table,
// writes JSON + SVG.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createFleet } from './support/fleet.js'
import { openFilesLimit, rssBytes, startCertgate, type ServerProcess } from './support/servers.js'
import { startMosquitto, mosquittoBinary, MOSQUITTO_MISSING } from './support/mosquitto.js'
import { startFleetClients } from './support/fleet-clients.js'
import { BIN_MS, percentile } from './support/connect-loop.js'
import { fmt, num, options, scrape, writeRun } from './support/report.js'

const USAGE = `
npm run load:idle -- [options]

N authenticated idle connections held through certgate; reports certgate's resident memory in
total and per connection. --upstream mosquitto (default; needs apt-get install -y mosquitto) or
embedded (certgate's own broker, whose per-client state then counts in certgate's memory).
Raises the open-files limit of the processes it starts where the user may (root); otherwise
says what to raise. Bounded: connect (per-connection timeout) + --hold-s.`

const opt = options(USAGE, {
  devices: { default: '20000', help: 'connections held open' },
  processes: { default: '4', help: 'client processes' },
  concurrency: { default: '200', help: 'connection attempts in flight, all client processes together' },
  'hold-s': { default: '10', help: 'seconds to hold the fleet idle while sampling memory every second' },
  upstream: { default: 'mosquitto', help: 'mosquitto or embedded' },
  sources: { default: '0', help: 'spread clients over 127.0.0.1..127.0.0.N (0: kernel-chosen from 127.0.0.1)' },
  'timeout-s': { default: '120', help: 'per-connection timeout' },
  gc: { default: '1', help: '1: at the end, make certgate run a full GC (it is started with --expose-gc and a SIGUSR2 hook) and measure again' }
})

const MiB = 2 ** 20

function gauge (text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1))
}

async function main (): Promise<void> {
  const requested = num(opt.devices, 'devices')
  const processes = Math.max(1, num(opt.processes, 'processes'))
  const concurrency = Math.max(1, num(opt.concurrency, 'concurrency'))
  const embedded = opt.upstream === 'embedded'
  if (!embedded && opt.upstream !== 'mosquitto') throw new Error('--upstream must be mosquitto or embedded')
  if (!embedded && mosquittoBinary() === undefined) throw new Error(MOSQUITTO_MISSING)
  // certgate: device + upstream socket per connection (+ the broker's end when embedded).
  const perConnFiles = embedded ? 3 : 2
  const nofile = perConnFiles * requested + 512
  // What this machine allows: a child inherits our hard limit unless we may raise it (root with CAP_SYS_RESOURCE).
  const probe = spawnSync('/bin/sh', ['-c', `ulimit -Hn ${nofile} 2>/dev/null; ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ulimit -n`], { encoding: 'utf8' })
  const limit = Number(probe.stdout.trim()) || 1024
  const devices = limit >= nofile ? requested : Math.floor((limit - 512) / perConnFiles)
  if (devices < requested) console.log(`NOTICE: the hard open-files limit here is ${limit}: one certgate process can hold ${devices} forwarded connections, not ${requested} (${nofile} files needed). Measuring ${devices} and extrapolating per connection. To hold ${requested}: raise the hard limit (ulimit -Hn ${nofile} as root with CAP_SYS_RESOURCE, LimitNOFILE in systemd, --ulimit nofile in docker).`)
  console.log(`node ${process.version}; ${devices} idle connections through certgate to ${opt.upstream}, ${processes} client processes`)
  const fleet = await createFleet(devices)
  const cleanup: Array<() => Promise<void>> = []
  try {
    let mosquitto: ServerProcess | undefined
    if (!embedded) {
      mosquitto = await startMosquitto({ nofile })
      cleanup.unshift(mosquitto.stop)
    }
    const gw = await startCertgate({
      env: {
        CERTGATE_DATA_DIR: fleet.dataDir, CERTGATE_PROTOCOL: 'mqtt',
        ...(mosquitto === undefined ? {} : { CERTGATE_UPSTREAM: `127.0.0.1:${mosquitto.port}` }),
        CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '0'
      },
      // A measuring hook, not a certgate feature: SIGUSR2 runs a full GC, so memory that is only
      // waiting for a collection (garbage V8 cannot see the native size of) can be told apart.
      ...(opt.gc === '1' ? { nodeArgs: ['--expose-gc', '--import', `data:text/javascript,process.on('SIGUSR2',()=>globalThis.gc())`] } : {}),
      nofile,
      enroll: fleet.enroll
    })
    cleanup.unshift(gw.stop)
    if (openFilesLimit(gw.pid) < perConnFiles * devices + 512) throw new Error(`certgate may open only ${openFilesLimit(gw.pid)} files, ${perConnFiles * devices + 512} are needed: raise the hard limit (ulimit -Hn)`)
    const clients = await startFleetClients({
      processes, port: gw.port, devices: fleet.devices, chainPem: fleet.chainPem,
      serverCaPem: readFileSync(join(fleet.dataDir, 'dev-server-cert.pem'), 'utf8'),
      concurrency: Math.ceil(concurrency / processes), sources: num(opt.sources, 'sources'), timeoutMs: num(opt['timeout-s'], 'timeout-s') * 1000, hold: true
    })
    cleanup.unshift(clients.close)
    const rssEmpty = rssBytes(gw.pid)
    const run = await clients.go()
    const rssConnected = rssBytes(gw.pid)
    const samples: number[] = []
    for (let s = 0; s < num(opt['hold-s'], 'hold-s'); s++) {
      await new Promise((r) => setTimeout(r, 1000))
      samples.push(rssBytes(gw.pid))
    }
    const metrics = (await scrape(gw.adminPort ?? 0)).text
    const rssPeak = Math.max(rssConnected, ...samples)
    let rssAfterGc: number | undefined
    if (opt.gc === '1') {
      process.kill(gw.pid, 'SIGUSR2')
      await new Promise((r) => setTimeout(r, 3000))
      rssAfterGc = rssBytes(gw.pid)
    }
    const failed = Object.values(run.failures).reduce((a, b) => a + b, 0)
    const result = {
      requested, devices, openFilesLimit: limit, upstream: opt.upstream, connected: run.connected, failed, failures: run.failures,
      connectS: run.elapsedMs / 1000, connectP50Ms: percentile(run.latenciesMs, 50), connectP99Ms: percentile(run.latenciesMs, 99),
      rssEmptyMiB: rssEmpty / MiB, rssConnectedMiB: rssConnected / MiB, rssPeakMiB: rssPeak / MiB, rssSamplesMiB: samples.map((b) => b / MiB),
      rssPerConnKiB: (rssPeak - rssEmpty) / Math.max(run.connected, 1) / 1024,
      // Linear in connections above the empty gateway: what `requested` would take here.
      rssExtrapolatedMiB: (rssEmpty + ((rssPeak - rssEmpty) / Math.max(run.connected, 1)) * requested) / MiB,
      rssAfterGcMiB: rssAfterGc === undefined ? undefined : rssAfterGc / MiB,
      rssPerConnAfterGcKiB: rssAfterGc === undefined ? undefined : (rssAfterGc - rssEmpty) / Math.max(run.connected, 1) / 1024,
      heapUsedMiB: gauge(metrics, 'certgate_process_nodejs_heap_size_used_bytes') / MiB, liveConnections: gauge(metrics, 'certgate_live_connections'),
      mosquittoRssMiB: mosquitto === undefined ? undefined : rssBytes(mosquitto.pid) / MiB
    }
    console.log(`\nidle fleet, node ${process.version}, ${devices} connections to ${opt.upstream}:`)
    console.log(`| connections held | failed | certgate RSS empty MiB | RSS all connected MiB | RSS peak (held) MiB | KiB per connection | V8 heap used MiB | RSS for ${requested} MiB |`)
    console.log('|---|---|---|---|---|---|---|---|')
    console.log(`| ${run.connected} | ${failed} | ${fmt(result.rssEmptyMiB, 0)} | ${fmt(result.rssConnectedMiB, 0)} | ${fmt(result.rssPeakMiB, 0)} | ${fmt(result.rssPerConnKiB, 1)} | ${fmt(result.heapUsedMiB, 0)} | ${fmt(result.rssExtrapolatedMiB, 0)}${devices < requested ? ' (extrapolated)' : ''} |`)
    if (result.rssAfterGcMiB !== undefined) console.log(`after a full GC in certgate: RSS ${fmt(result.rssAfterGcMiB, 0)} MiB, ${fmt(result.rssPerConnAfterGcKiB ?? NaN, 1)} KiB per connection`)
    if (failed > 0) console.log(`failures by reason: ${JSON.stringify(run.failures)}`)
    writeRun(opt.out, 'idle-fleet', { options: opt, result }, `idle fleet: ${devices} connections through certgate to ${opt.upstream}, node ${process.version}`, [
      { name: 'device connect -> CONNACK', latenciesMs: run.latenciesMs, perBin: run.perBin, binMs: BIN_MS }
    ])
  } finally {
    for (const c of cleanup) await c()
    fleet.dispose()
  }
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
