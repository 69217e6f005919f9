// What this proves: every query on the Grafana dashboard (grafana/dashboards/certgate.json)
// returns data when a real Prometheus (Debian's 2.42, as CI installs it) scrapes real certgate
// gateways — the queries parse, the metric and label names match, and the rate windows and
// histogram quantiles see samples. Two gateways run in this process: one forwards to its embedded
// broker, the other to a closed port so upstream failures exist. Prometheus scrapes both admin
// listeners every second while devices connect through certgate over real TLS with mqtt.js:
// three stay connected (one publishes, one receives), one is disabled while connected (a live
// close), and others are refused — an unknown device, a disabled one, one with no client
// certificate, one whose upstream is down — plus a plain-text client that fails the TLS
// handshake. The fleet CA names an OCSP responder (`openssl ocsp -index`), so connected devices are
// queried about. Then each panel target is evaluated through Prometheus's HTTP API with Grafana's
// variables substituted ($__rate_interval → 1m, $__interval → 15s, $__range → 5m,
// $listener → .*), and must succeed with a non-empty result holding a number; the panels the
// test fed on purpose must show what was fed (refusal reasons, live count, closes, bytes,
// upstream failures, CA expiry, devices).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, type AddressInfo } from 'node:net'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { issue, issueHierarchy } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { connectDevice, nextMessage, closed } from '../support/device.js'
import { freePort } from '../support/ports.js'
import { opensslCrl } from '../support/openssl-crl.js'
import { startOpensslOcsp } from '../support/openssl-ocsp.js'

interface Target { readonly refId: string, readonly expr: string }
interface Panel { readonly type: string, readonly title: string, readonly targets?: readonly Target[], readonly panels?: readonly Panel[] }
interface Sample { readonly metric: Record<string, string>, readonly value: readonly [number, string] }
interface QueryReply { readonly status: string, readonly error?: string, readonly data?: { readonly resultType: string, readonly result: unknown } }

const dashboard = JSON.parse(readFileSync(new URL('../../../../grafana/dashboards/certgate.json', import.meta.url), 'utf8')) as { panels: readonly Panel[] }
const allPanels = (panels: readonly Panel[]): Panel[] => panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])])

function prometheusBinary (): string {
  const dirs = ['/usr/bin', ...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== '')]
  for (const d of dirs) if (existsSync(join(d, 'prometheus'))) return join(d, 'prometheus')
  throw new Error('prometheus is not installed: apt-get install prometheus (.ci/run installs it)')
}

/** Grafana's variables as a dashboard at "last 5 minutes, all listeners" would expand them. */
function promql (expr: string): string {
  const out = expr
    .replaceAll('${__rate_interval}', '1m').replaceAll('$__rate_interval', '1m')
    .replaceAll('${__interval}', '15s').replaceAll('$__interval', '15s')
    .replaceAll('${__range}', '5m').replaceAll('$__range', '5m')
    .replaceAll('${listener}', '.*').replaceAll('$listener', '.*')
    .replaceAll('${datasource}', '').replaceAll('$datasource', '')
  assert.ok(!out.includes('$'), `a Grafana variable this test does not know is left in: ${out}`)
  return out
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

test('every dashboard query returns data from a real Prometheus scraping certgate', { timeout: 90_000 }, async (t) => {
  const cleanups: Array<() => Promise<void> | void> = []
  t.after(async () => { for (const c of cleanups.reverse()) await c() })

  const bin = prometheusBinary()
  // CRLs are fetched often here, so the fetch panel has data within the test.
  const h: Harness = await startHarness({}, { crlFetch: { tickMs: 200, minRefreshMs: 500 } })
  cleanups.push(() => h.close())
  const closedPort = await freePort()
  const down: Harness = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${closedPort}`, CERTGATE_UPSTREAM_CONNECT_TIMEOUT_MS: '1000' })
  cleanups.push(() => down.close())
  const pki = await issueHierarchy()
  await h.registerCa('fleet-root', pki.root)
  await down.registerCa('fleet-root', pki.root)
  // A CRL held for the CA (revoking nothing yet), so the revocation panels have data.
  const crl = await fetch(`http://${h.gw.admin.host}:${h.gw.admin.port}/certificates/fleet-root/crl`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${h.gw.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ crl: await opensslCrl({ ca: pki.root }) })
  })
  assert.equal(crl.status, 200, await crl.text())
  // A CA whose certificate names a CRL distribution point on this machine: fetched in the background.
  const published = createServer((_req, res) => { res.end(publishedCrl) })
  await new Promise<void>((resolve) => published.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => new Promise<void>((resolve) => { published.close(() => { resolve() }) }))
  const publishedCa = await issue({ cn: 'Published CA', ca: true, crlUrls: [`http://127.0.0.1:${(published.address() as AddressInfo).port}/ca.crl`] })
  const publishedCrl = await opensslCrl({ ca: publishedCa })
  await h.registerCa('published', publishedCa)
  // OCSP for the fleet CA (policy open), answered by `openssl ocsp -index` about int2's devices
  // (an empty index: "unknown"), so the OCSP panels have data.
  const responder = await startOpensslOcsp({ ca: pki.int2 })
  cleanups.push(() => responder.close())
  const withOcsp = await fetch(`http://${h.gw.admin.host}:${h.gw.admin.port}/certificates/fleet-root`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${h.gw.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ certificate: pki.root.pem, ocsp: { responders: [responder.url], policy: 'open' } })
  })
  assert.equal(withOcsp.status, 200, await withOcsp.text())
  const chain = [pki.int2, pki.int1]
  const leaf = async (cn: string) => await issue({ cn, issuer: pki.int2 })

  // Prometheus on a free port, scraping both admin listeners every second.
  const promDir = mkdtempSync(join(tmpdir(), 'certgate-prometheus-'))
  const promPort = await freePort()
  const targets = [h, down].map((x) => `'${x.gw.admin.host}:${x.gw.admin.port}'`)
  writeFileSync(join(promDir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    '  scrape_timeout: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: certgate',
    '    metrics_path: /metrics',
    '    static_configs:',
    `      - targets: [${targets.join(', ')}]`,
    ''
  ].join('\n'))
  const prom = spawn(bin, [
    `--config.file=${join(promDir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(promDir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`,
    '--log.level=warn'
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  let promLog = ''
  prom.stderr.on('data', (d: Buffer) => { promLog += d.toString() })
  cleanups.push(async () => {
    if (prom.exitCode === null && prom.signalCode === null) {
      const exited = new Promise((resolve) => prom.once('exit', resolve))
      process.kill(prom.pid!, 'SIGTERM')
      await exited
    }
    rmSync(promDir, { recursive: true, force: true })
  })
  const base = `http://127.0.0.1:${promPort}`

  const query = async (q: string): Promise<QueryReply> => {
    const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(q)}`)
    return await res.json() as QueryReply
  }
  const vector = async (q: string): Promise<Sample[]> => {
    const r = await query(q)
    assert.equal(r.status, 'success', `${q}: ${r.error ?? ''}`)
    assert.equal(r.data?.resultType, 'vector', q)
    return r.data.result as Sample[]
  }
  const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> => {
    const until = Date.now() + timeoutMs
    while (Date.now() < until) {
      if (prom.exitCode !== null) throw new Error(`prometheus exited with ${prom.exitCode}:\n${promLog}`)
      if (await check().catch(() => false)) return
      await sleep(200)
    }
    throw new Error(`timed out waiting for ${what}\nprometheus log:\n${promLog}`)
  }

  await waitFor('prometheus to be ready', async () => (await fetch(`${base}/-/ready`)).ok)
  await waitFor('both gateways to be up', async () => {
    const up = await vector('up{job="certgate"} == 1')
    return up.length === 2
  })

  // Phase 1: one accepted and one refused device, scraped before the measured phase, so rate()
  // sees the histograms grow.
  await h.addDevice('good-1')
  const devices: MqttClient[] = []
  cleanups.push(() => { for (const d of devices) d.end(true) })
  devices.push(await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await leaf('good-1'), chain }))
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await leaf('ghost-0'), chain }))
  await waitFor('the phase-1 histograms to be scraped', async () =>
    (await vector('certgate_auth_duration_seconds_count > 0')).length === 2 &&
    (await vector('certgate_upstream_connect_duration_seconds_count > 0')).length === 1)

  // Phase 2: the traffic every panel should show.
  for (const id of ['good-2', 'good-3', 'live-1']) await h.addDevice(id)
  await h.addDevice('off-1', { status: 'disabled', statusReason: 'returned for repair' })
  const [good1] = devices as [MqttClient]
  const good2 = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await leaf('good-2'), chain })
  devices.push(good2)
  devices.push(await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await leaf('good-3'), chain }))
  await good2.subscribeAsync('fleet/temp')
  const got = nextMessage(good2, 'fleet/temp')
  await good1.publishAsync('fleet/temp', '21.5')
  assert.equal(await got, '21.5')

  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await leaf('ghost-7'), chain }))
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await leaf('off-1'), chain }))
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, clientId: 'nobody' }))
  for (const reason of ['device_unknown', 'device_disabled', 'no_client_cert']) await h.waitForLog((l) => l.event === 'refused' && l.reason === reason)

  // Plain text on the TLS port: a handshake failure.
  await new Promise<void>((resolve) => {
    const s = connect(h.gw.device.port, '127.0.0.1', () => { s.write('GET / HTTP/1.0\r\n\r\n') })
    s.on('error', () => { /* the gateway resets it */ })
    s.on('close', () => { resolve() })
    s.resume()
  })

  // A live connection certgate closes because its device is disabled.
  const doomed = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await leaf('live-1'), chain })
  devices.push(doomed)
  const gone = closed(doomed, 2000)
  await h.gw.registry.putDevice({ deviceId: 'live-1', authType: 'certificateAuthority', primaryThumbprint: null, secondaryThumbprint: null, status: 'disabled', statusReason: 'stolen' })
  await gone
  await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'live-1' && l.reason === 'device_disabled')

  // An authenticated device whose upstream is down.
  await down.addDevice('far-1')
  await assert.rejects(connectDevice({ port: down.gw.device.port, serverCa: down.serverCa, leaf: await leaf('far-1'), chain }))
  await down.waitForLog((l) => l.event === 'refused' && l.reason === 'upstream_unavailable')

  // Wait for scrapes that started after all of that (byte counters are flushed once a second),
  // and for at least three samples per target.
  const fedAt = Date.now() / 1000
  await waitFor('scrapes after the traffic', async () => {
    const ts = await vector('timestamp(up{job="certgate"})')
    const counts = await vector('count_over_time(up{job="certgate"}[1m])')
    return ts.length === 2 && ts.every((s) => Number(s.value[1]) > fedAt + 1.5) &&
      counts.length === 2 && counts.every((s) => Number(s.value[1]) >= 3)
  })

  // The $listener variable's values.
  const labels = await (await fetch(`${base}/api/v1/label/listener/values?match[]=certgate_connections_accepted_total`)).json() as { status: string, data: string[] }
  assert.equal(labels.status, 'success')
  assert.deepEqual(labels.data, ['device'])

  // Every target of every panel.
  const results = new Map<string, Sample[]>()
  const problems: string[] = []
  const panels = allPanels(dashboard.panels).filter((p) => p.type !== 'row')
  for (const p of panels) {
    for (const target of p.targets ?? []) {
      const q = promql(target.expr)
      const r = await query(q)
      const where = `"${p.title}" ${target.refId}: ${q}`
      if (r.status !== 'success') { problems.push(`${where}\n  → ${r.status}: ${r.error ?? ''}`); continue }
      const samples = r.data?.resultType === 'vector' ? r.data.result as Sample[] : []
      if (samples.length === 0) { problems.push(`${where}\n  → empty result`); continue }
      if (!samples.some((s) => Number.isFinite(Number(s.value[1])))) problems.push(`${where}\n  → no finite value: ${JSON.stringify(samples)}`)
      results.set(`${p.title}/${target.refId}`, samples)
    }
  }
  assert.ok(results.size + problems.length >= 25, `only ${results.size + problems.length} targets evaluated`)
  assert.deepEqual(problems, [], `dashboard queries without data:\n${problems.join('\n')}`)

  // The panels the test fed on purpose show what was fed.
  const byLabel = (panel: string, refId: string, labelName: string): Record<string, number> => {
    const samples = results.get(`${panel}/${refId}`)
    assert.ok(samples !== undefined, `no panel "${panel}" target ${refId} (renamed?)`)
    return Object.fromEntries(samples.map((s) => [s.metric[labelName] ?? '', Number(s.value[1])]))
  }
  const total = (panel: string, refId: string): number => (results.get(`${panel}/${refId}`) ?? []).reduce((a, s) => a + Number(s.value[1]), 0)

  const refusals = byLabel('Refusals by reason', 'A', 'reason')
  for (const reason of ['device_unknown', 'device_disabled', 'no_client_cert', 'upstream_unavailable']) assert.ok((refusals[reason] ?? 0) > 0, `refusals: ${reason} in ${JSON.stringify(refusals)}`)
  assert.ok(Object.keys(byLabel('Top refusal reasons (dashboard range)', 'A', 'reason')).includes('device_unknown'))
  assert.ok((byLabel('Connection rate by outcome', 'A', 'result').authenticated ?? 0) > 0)
  assert.ok(total('Connection rate by outcome', 'B') > 0, 'TLS handshake failures')
  assert.ok(total('TLS handshake failures by bucket', 'A') > 0)
  assert.deepEqual(byLabel('Live connections', 'A', 'listener'), { device: 3 })
  assert.ok((byLabel('Live connections closed by certgate', 'A', 'reason').device_disabled ?? 0) > 0)
  assert.ok(total('Upstream connect failures', 'A') > 0)
  const bytes = byLabel('Bytes forwarded by direction', 'A', 'direction')
  assert.ok((bytes.from_device ?? 0) > 0 && (bytes.to_device ?? 0) > 0, JSON.stringify(bytes))
  const days = byLabel('CA certificate expiry', 'A', 'ca')['fleet-root'] ?? 0
  assert.ok(days > 3600 && days <= 3651, `fleet-root expires in ${days} days`)
  assert.deepEqual(byLabel('Devices by status', 'A', 'status'), { enabled: 3, disabled: 2 }) // max over the two gateways' registries
  assert.equal(byLabel('Registered CAs', 'A', 'state').verified, 2) // fleet-root and published on h
  assert.ok((byLabel('OCSP answers by status', 'A', 'status').unknown ?? 0) > 0, 'the devices under fleet-root were asked about (an empty index: unknown)')
  for (const [panel, refId] of [['Authentication latency p50 / p99', 'B'], ['Chain validation latency p50 / p99', 'B'], ['Upstream connect latency p50 / p99', 'B'], ['Intermediate cache hit ratio', 'A']] as const) {
    const v = (results.get(`${panel}/${refId}`) ?? []).map((s) => Number(s.value[1]))
    assert.ok(v.some((x) => Number.isFinite(x) && x > 0), `${panel} ${refId}: ${JSON.stringify(v)}`)
  }
})
