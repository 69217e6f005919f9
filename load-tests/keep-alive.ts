// Keep-alive forwarding: persistent mTLS connections (one handshake each, then many requests),
// driven by autocannon with a device's client certificate and chain, through — in one run, rounds
// interleaved, every server started once —
//   - direct:        the HTTP upstream itself, plain HTTP (the floor: no proxy at all);
//   - nginx-http:    nginx's mTLS HTTP reverse proxy (ssl_verify_client, upstream keep-alive);
//   - certgate-http: certgate `http` mode (undici pool, identity headers added);
//   - nginx-stream:  nginx stream, mTLS then a byte pump to the same upstream;
//   - certgate-tcp:  certgate `tcp` mode, the byte pump `mqtt` mode also uses after CONNECT.
// Measures requests/s, p50/p99 latency, and proxy CPU per forwarded request (all threads of the
// proxy's processes, nginx master + workers, from /proc). Prints a table, writes JSON + SVG.
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { createFleet } from './support/fleet.js'
import { cpuMsOf, startCertgate, stopper, waitForLine, type ServerProcess } from './support/servers.js'
import { detectNginx, startNginx } from './support/nginx.js'
import { fmt, num, options, writeRun } from './support/report.js'
import { median } from './support/connect-loop.js'

const USAGE = `
npm run load:keepalive -- [options]

Keep-alive requests over persistent mTLS connections through nginx (http and stream) and
certgate (http and tcp modes), and straight to the upstream, rounds interleaved, medians
reported. nginx is optional: without it the script says what to install and measures the rest.
Bounded: rounds x targets x seconds.`

const opt = options(USAGE, {
  seconds: { default: '5', help: 'seconds per target per round' },
  rounds: { default: '3', help: 'rounds; targets are interleaved within each' },
  connections: { default: '32', help: 'persistent connections (autocannon)' },
  targets: { default: 'direct,nginx-http,certgate-http,nginx-stream,certgate-tcp', help: 'comma list of targets' },
  'nginx-workers': { default: '1', help: 'nginx worker processes (certgate runs one event loop)' }
})
const seconds = num(opt.seconds, 'seconds')
const rounds = num(opt.rounds, 'rounds')
const connections = num(opt.connections, 'connections')
const BIN_MS = 250

interface Target { readonly key: string, readonly name: string, readonly url: string, readonly server: ServerProcess | undefined }
interface Sample { target: string, round: number, reqPerSec: number, p50: number, p99: number, cpuUsPerReq: number | undefined, requests: number, errors: number, non2xx: number, latenciesMs: number[], perBin: number[] }

async function startUpstream (): Promise<{ port: number, stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./http-upstream-server.js', import.meta.url))], { stdio: ['ignore', 'pipe', 'pipe'] })
  const m = await waitForLine(child, /port=(\d+)/, 10_000)
  return { port: Number(m[1]), stop: stopper(child) }
}

async function measure (t: Target, round: number, tls: { cert: string, key: string }): Promise<Sample> {
  const latenciesMs: number[] = []
  const perBin: number[] = []
  const before = t.server === undefined ? undefined : cpuMsOf(t.server.pids())
  const started = performance.now()
  const r = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url: t.url,
      connections,
      duration: seconds,
      pipelining: 1,
      ...(t.url.startsWith('https') ? { tlsOptions: { ...tls, servername: 'localhost' } } : {})
    }, (err: unknown, result: autocannon.Result) => { if (err === null || err === undefined) resolve(result); else reject(err instanceof Error ? err : new Error(JSON.stringify(err))) })
    instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
      latenciesMs.push(responseTime)
      const bin = Math.floor((performance.now() - started) / BIN_MS)
      while (perBin.length <= bin) perBin.push(0)
      perBin[bin] = (perBin[bin] as number) + 1
    })
  })
  const cpu = t.server === undefined || before === undefined ? undefined : cpuMsOf(t.server.pids()) - before
  const requests = r.requests.total
  return {
    target: t.key,
    round,
    reqPerSec: requests / (r.duration || seconds),
    p50: r.latency.p50,
    p99: r.latency.p99,
    cpuUsPerReq: cpu === undefined || requests === 0 ? undefined : (cpu * 1000) / requests,
    requests,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    latenciesMs,
    perBin
  }
}

async function main (): Promise<void> {
  const wanted = new Set(opt.targets.split(',').map((t) => t.trim()))
  const nginx = detectNginx()
  if (!nginx.ok && (wanted.has('nginx-http') || wanted.has('nginx-stream'))) {
    console.log(`NOTICE: nginx targets skipped: ${nginx.missing}`)
    wanted.delete('nginx-http')
    wanted.delete('nginx-stream')
  }
  console.log(`node ${process.version} (OpenSSL ${process.versions.openssl}); ${rounds} rounds x ${seconds} s; ${connections} connections; targets ${[...wanted].join(',')}`)
  const fleet = await createFleet(1)
  const device = fleet.devices[0]
  if (device === undefined) throw new Error('no device in the fleet')
  const upstream = await startUpstream()
  const files = { certFile: join(fleet.dataDir, 'dev-server-cert.pem'), keyFile: join(fleet.dataDir, 'dev-server-key.pem'), caFile: join(fleet.dataDir, 'root.pem') }
  writeFileSync(files.caFile, fleet.rootPem)
  const certgate = async (protocol: 'http' | 'tcp'): Promise<ServerProcess> => await startCertgate({
    env: {
      CERTGATE_DATA_DIR: fleet.dataDir,
      CERTGATE_PROTOCOL: protocol,
      CERTGATE_UPSTREAM: protocol === 'http' ? `http://127.0.0.1:${upstream.port}` : `127.0.0.1:${upstream.port}`,
      CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '0'
    },
    enroll: fleet.enroll
  })
  const servers: ServerProcess[] = []
  const targets: Target[] = []
  try {
    const add = async (key: string, name: string, start: () => Promise<ServerProcess>, scheme = 'https'): Promise<void> => {
      if (!wanted.has(key)) return
      const server = await start()
      servers.push(server)
      targets.push({ key, name, url: `${scheme}://127.0.0.1:${server.port}/`, server })
    }
    if (wanted.has('direct')) targets.push({ key: 'direct', name: 'upstream directly (plain HTTP)', url: `http://127.0.0.1:${upstream.port}/`, server: undefined })
    // certgate first: it creates the development server certificate nginx uses too.
    await add('certgate-http', 'certgate http mode', async () => await certgate('http'))
    await add('certgate-tcp', 'certgate tcp mode (pump)', async () => await certgate('tcp'))
    if (nginx.ok) {
      const workers = num(opt['nginx-workers'], 'nginx-workers')
      await add('nginx-http', 'nginx mTLS HTTP proxy', async () => await startNginx(nginx, { ...files, upstreamPort: upstream.port, mode: 'http', workers }))
      await add('nginx-stream', 'nginx stream (mTLS, pump)', async () => await startNginx(nginx, { ...files, upstreamPort: upstream.port, mode: 'stream', workers }))
    }
    const order = ['direct', 'nginx-http', 'certgate-http', 'nginx-stream', 'certgate-tcp']
    targets.sort((a, b) => order.indexOf(a.key) - order.indexOf(b.key))
    const tls = { cert: device.pem + fleet.chainPem, key: device.keyPem }
    const samples: Sample[] = []
    for (let round = 0; round < rounds; round++) {
      for (const t of targets) {
        const s = await measure(t, round, tls)
        samples.push(s)
        console.log(`round ${round + 1} ${t.key.padEnd(14)} ${fmt(s.reqPerSec, 0).padStart(7)} req/s  p50 ${s.p50} ms  p99 ${s.p99} ms  CPU ${s.cpuUsPerReq === undefined ? '-' : `${fmt(s.cpuUsPerReq, 1)} µs/req`}  errors ${s.errors}  non-2xx ${s.non2xx}`)
      }
    }
    const rows = targets.map((t) => {
      const mine = samples.filter((s) => s.target === t.key)
      const cpu = mine.map((s) => s.cpuUsPerReq).filter((c): c is number => c !== undefined)
      return {
        key: t.key,
        name: t.name,
        reqPerSec: median(mine.map((s) => s.reqPerSec)),
        p50: median(mine.map((s) => s.p50)),
        p99: median(mine.map((s) => s.p99)),
        cpuUsPerReq: cpu.length === 0 ? undefined : median(cpu),
        errors: mine.reduce((a, s) => a + s.errors, 0),
        non2xx: mine.reduce((a, s) => a + s.non2xx, 0)
      }
    })
    const row = (k: string): typeof rows[number] | undefined => rows.find((r) => r.key === k)
    const ratio = (a: number | undefined, b: number | undefined): number | undefined => a === undefined || b === undefined || b === 0 ? undefined : a / b
    const ratios = {
      httpReqPerSecVsNginx: ratio(row('certgate-http')?.reqPerSec, row('nginx-http')?.reqPerSec),
      httpCpuPerReqVsNginx: ratio(row('certgate-http')?.cpuUsPerReq, row('nginx-http')?.cpuUsPerReq),
      pumpCpuPerReqVsNginxStream: ratio(row('certgate-tcp')?.cpuUsPerReq, row('nginx-stream')?.cpuUsPerReq),
      pumpReqPerSecVsNginxStream: ratio(row('certgate-tcp')?.reqPerSec, row('nginx-stream')?.reqPerSec)
    }
    console.log('\n| target | req/s | p50 ms | p99 ms | proxy CPU µs/req | errors | non-2xx |\n|---|---|---|---|---|---|---|')
    for (const r of rows) console.log(`| ${r.name} | ${fmt(r.reqPerSec, 0)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${r.cpuUsPerReq === undefined ? '-' : fmt(r.cpuUsPerReq, 1)} | ${r.errors} | ${r.non2xx} |`)
    const show = (x: number | undefined): string => x === undefined ? 'n/a' : `${fmt(x, 2)}x`
    console.log(`\ncertgate http req/s vs nginx http: ${show(ratios.httpReqPerSecVsNginx)} (target >= 0.5x); CPU/req ${show(ratios.httpCpuPerReqVsNginx)}`)
    console.log(`certgate tcp pump CPU/req vs nginx stream: ${show(ratios.pumpCpuPerReqVsNginxStream)} (target <= 1.25x); req/s ${show(ratios.pumpReqPerSecVsNginxStream)}`)
    writeRun(opt.out, 'keep-alive', { seconds, rounds, connections, rows, ratios, samples: samples.map((s) => ({ ...s, latenciesMs: undefined, perBin: undefined })) },
      `keep-alive: ${connections} persistent mTLS connections, Node ${process.version}`,
      targets.map((t) => {
        const last = samples.filter((s) => s.target === t.key).at(-1)
        return { name: t.name, latenciesMs: last?.latenciesMs ?? [], perBin: last?.perBin ?? [], binMs: BIN_MS }
      }))
  } finally {
    for (const s of servers) await s.stop()
    await upstream.stop()
    fleet.dispose()
  }
}

main().catch((err: unknown) => { console.error(err); process.exit(1) })
