// The load scenarios at toy size, so the scripts do not rot: each one runs end to end as its
// npm script would (a child process, 50 devices, a second or two), and the JSON it writes must
// hold sane numbers, next to an SVG picture. nginx is optional here: when it is absent the
// storm leaves it out, and the nginx subtests are skipped visibly (reported as SKIP with what to
// install); npm test does not install nginx (see scripts/provide-services.js).
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { detectNginx } from '../support/nginx.js'

/** The nginx half of a scenario as its own subtest: skipped, visibly, when nginx is missing. */
async function nginxPart (t: TestContext, name: string, check: () => void): Promise<void> {
  const nginx = detectNginx()
  await t.test(name, (st) => {
    if (!nginx.ok) { st.skip(nginx.missing); return }
    check()
  })
}

function run (script: string, args: readonly string[]): { json: Record<string, unknown>, svg: string, stdout: string } {
  const out = mkdtempSync(join(tmpdir(), 'certgate-smoke-'))
  try {
    const file = fileURLToPath(new URL(`../${script}`, import.meta.url))
    const r = spawnSync(process.execPath, [file, ...args, '--out', out], { encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, `${script} failed:\n${r.stdout}\n${r.stderr}`)
    const names = readdirSync(out)
    const json = names.find((n) => n.endsWith('.json'))
    const svg = names.find((n) => n.endsWith('.svg'))
    assert.ok(json !== undefined && svg !== undefined, `${script} wrote ${names.join(', ')}`)
    return { json: JSON.parse(readFileSync(join(out, json), 'utf8')) as Record<string, unknown>, svg: readFileSync(join(out, svg), 'utf8'), stdout: r.stdout }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

interface Row { key: string, connPerSec: number, cpuMsPerConn: number, p50: number, p99: number, failed: number }

test('handshake storm: every target authenticates connections and costs CPU; the paced phase reads the auth histogram', async (t) => {
  const { json, svg } = run('handshake-storm.js', ['--devices', '50', '--seconds', '1', '--warmup', '0.5', '--rounds', '1', '--paced-seconds', '1'])
  const rows = json.rows as Row[]
  assert.deepEqual(rows.map((r) => r.key).filter((k) => k !== 'nginx'), ['bare', 'warm', 'cold'])
  await nginxPart(t, 'nginx stream mTLS is measured beside certgate', () => {
    assert.deepEqual(rows.map((r) => r.key), ['bare', 'nginx', 'warm', 'cold'])
  })
  for (const r of rows) {
    assert.ok(r.connPerSec > 5, `${r.key}: ${r.connPerSec} conn/s`)
    assert.ok(r.cpuMsPerConn > 0.05 && r.cpuMsPerConn < 100, `${r.key}: ${r.cpuMsPerConn} ms CPU per connection`)
    assert.ok(r.p50 > 0 && r.p99 >= r.p50, `${r.key}: p50 ${r.p50} p99 ${r.p99}`)
    assert.equal(r.failed, 0, `${r.key} had failed connections`)
  }
  const paced = json.paced as Array<{ workers: number, completed: number, failed: number, authDecision: { observations: number, p99Ms: number } }>
  assert.deepEqual(paced.map((p) => p.workers), [1, 0])
  for (const p of paced) {
    assert.ok(p.completed > 0 && p.failed === 0)
    assert.ok(p.authDecision.observations >= p.completed && p.authDecision.p99Ms > 0, JSON.stringify(p.authDecision))
  }
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/)
  assert.match(svg, /<polyline /)
})

test('reconnect storm: every device gets its CONNACK from Mosquitto, none refused, /healthz polled', () => {
  const { json, svg } = run('reconnect-storm.js', ['--devices', '50', '--concurrency', '20', '--processes', '1'])
  const r = json.result as { connected: number, refusals: number, connectP99Ms: number, allConnectedS: number, healthz: { probes: number, failures: number, maxMs: number } }
  assert.equal(r.connected, 50)
  assert.equal(r.refusals, 0)
  assert.ok(r.connectP99Ms > 0 && r.allConnectedS > 0)
  assert.ok(r.healthz.probes > 0 && r.healthz.failures === 0 && Number.isFinite(r.healthz.maxMs))
  assert.match(svg, /<polyline /)
})

test('idle fleet: connections are held and certgate\'s resident memory is read', () => {
  const { json } = run('idle-fleet.js', ['--devices', '50', '--processes', '1', '--hold-s', '1'])
  const r = json.result as { connected: number, failed: number, rssEmptyMiB: number, rssPeakMiB: number, heapUsedMiB: number, liveConnections: number }
  assert.equal(r.connected, 50)
  assert.equal(r.failed, 0)
  assert.equal(r.liveConnections, 50)
  assert.ok(r.rssEmptyMiB > 10 && r.rssPeakMiB >= r.rssEmptyMiB * 0.9, `${r.rssEmptyMiB} → ${r.rssPeakMiB} MiB`)
  assert.ok(r.heapUsedMiB > 1)
})

test('keep-alive: requests flow through certgate http and tcp modes (and nginx when installed) with no errors', async (t) => {
  const { json, svg } = run('keep-alive.js', ['--seconds', '1', '--rounds', '1', '--connections', '4'])
  const rows = json.rows as Array<{ key: string, reqPerSec: number, p99: number, cpuUsPerReq?: number, errors: number, non2xx: number }>
  assert.deepEqual(rows.map((r) => r.key).filter((k) => !k.startsWith('nginx-')), ['direct', 'certgate-http', 'certgate-tcp'])
  await nginxPart(t, 'nginx http and stream are measured beside certgate', () => {
    assert.deepEqual(rows.map((r) => r.key), ['direct', 'nginx-http', 'certgate-http', 'nginx-stream', 'certgate-tcp'])
  })
  for (const r of rows) {
    assert.ok(r.reqPerSec > 20, `${r.key}: ${r.reqPerSec} req/s`)
    assert.equal(r.errors, 0, `${r.key} had errors`)
    assert.equal(r.non2xx, 0, `${r.key} had non-2xx answers`)
    if (r.key !== 'direct') assert.ok(r.cpuUsPerReq !== undefined && r.cpuUsPerReq > 1 && r.cpuUsPerReq < 100_000, `${r.key}: ${r.cpuUsPerReq} µs CPU per request`)
  }
  assert.match(svg, /<polyline /)
})
