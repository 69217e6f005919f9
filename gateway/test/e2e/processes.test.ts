// What this proves: `certgate start` with CERTGATE_PROCESSES=2 runs a group of two gateway
// processes behind one device port and one admin port (port 0 yields one shared port each), and
// prints the listening line once. Devices authenticate through the shared port and are spread
// over both processes; they reach each other through the group's one embedded broker. The admin
// API works, and a device disabled (or its certificate deny-listed) through it is disconnected within a second whichever process
// holds it (the admin request is served by one process; changes reach the other over the group's
// IPC relay, since SQLite announces nothing across processes), and a device both processes have
// just let in, once disabled, is refused by either (no process keeps device records in a group).
// /metrics reports the whole group:
// authentications summed over both processes, registry gauges not doubled. SIGTERM to the
// group's primary drains both processes and exits 0. The same holds with the PostgreSQL registry
// (a throwaway cluster), where each process hears changes through LISTEN/NOTIFY instead.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { MqttClient } from 'mqtt'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { sha256Hex } from '../../../workers/validate-chain.js'
import { closed, connectDevice, nextMessage } from '../support/device.js'
import { startPostgres } from '../support/postgres.js'

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url))

interface Line { event?: string, deviceId?: string, pid?: number, reason?: string }

for (const backend of ['sqlite', 'postgres'] as const) test(`two processes share the device and admin ports; revocation reaches whichever process holds the device (${backend})`, async (t) => {
  const registryEnv: Record<string, string> = {}
  if (backend === 'postgres') {
    const pg = await startPostgres()
    t.after(async () => { await pg.destroy() })
    registryEnv.CERTGATE_REGISTRY_URL = await pg.createDatabase('group')
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'certgate-procs-'))
  const child = spawn(process.execPath, [CLI, 'start'], {
    env: { ...process.env, ...registryEnv, CERTGATE_DATA_DIR: dataDir, CERTGATE_LISTEN: '127.0.0.1:0', CERTGATE_ADMIN_LISTEN: '127.0.0.1:0', CERTGATE_PROCESSES: '2', CERTGATE_WORKERS: '1', CERTGATE_DRAIN_TIMEOUT_MS: '500' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const clients: MqttClient[] = []
  t.after(() => {
    for (const c of clients) c.end(true)
    child.kill('SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  })
  let out = ''
  let err = ''
  const lines: Line[] = []
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString()
    const parts = out.split('\n')
    out = parts.pop() ?? ''
    for (const p of parts) lines.push(p.startsWith('{') ? JSON.parse(p) as Line : { event: p })
  })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))

  const waitFor = async (pred: (l: Line) => boolean, what: string, timeoutMs = 5000): Promise<Line> => {
    const end = Date.now() + timeoutMs
    for (;;) {
      const hit = lines.find(pred)
      if (hit !== undefined) return hit
      if (Date.now() > end || child.exitCode !== null) throw new Error(`${what}: not seen in ${timeoutMs} ms\n${lines.map((l) => JSON.stringify(l)).join('\n')}\n${err}`)
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  const listening = await waitFor((l) => l.event?.startsWith('certgate listening') === true, 'listening line', 30_000)
  const m = /^certgate listening device=127\.0\.0\.1:(\d+) admin=127\.0\.0\.1:(\d+)$/.exec(listening.event ?? '')
  assert.ok(m !== null, listening.event)
  const devicePort = Number(m[1])
  const base = `http://127.0.0.1:${m[2]}`
  assert.notEqual(devicePort, 0)
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim()
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number, body: Record<string, unknown> }> => {
    const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
    const text = await res.text()
    return { status: res.status, body: text === '' ? {} : JSON.parse(text) as Record<string, unknown> }
  }

  // The CA through the admin API, with proof of possession.
  const pki = await issueHierarchy()
  assert.equal((await call('PUT', '/certificates/acme', { certificate: pki.root.pem })).status, 201)
  const code = (await call('POST', '/certificates/acme/generateVerificationCode')).body.verificationCode
  assert.ok(typeof code === 'string')
  assert.equal((await call('POST', '/certificates/acme/verify', { certificate: (await issue({ cn: code, issuer: pki.root, eku: [] })).pem })).status, 200)

  // Eight devices through the shared port; round-robin spreads them over both processes.
  const serverCa = readFileSync(join(dataDir, 'dev-server-cert.pem'), 'utf8')
  const ids = Array.from({ length: 8 }, (_, i) => `proc-dev-${i}`)
  const holder = new Map<string, MqttClient>()
  const leafOf = new Map<string, Issued>()
  for (const id of ids) {
    assert.equal((await call('PUT', `/devices/${id}`, { authentication: { type: 'certificateAuthority' }, status: 'enabled' })).status, 201)
  }
  // The CA verification reaches the other process's validator asynchronously: allow a moment.
  for (const id of ids) {
    const leaf = await issue({ cn: id, issuer: pki.int2 })
    leafOf.set(id, leaf)
    const end = Date.now() + 3000
    for (;;) {
      try {
        holder.set(id, await connectDevice({ port: devicePort, serverCa, leaf, chain: [pki.int2, pki.int1] }))
        break
      } catch (e) {
        if (Date.now() > end) throw e
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
    clients.push(holder.get(id) as MqttClient)
  }
  const pidOf = new Map<string, number>()
  for (const id of ids) pidOf.set(id, (await waitFor((l) => l.event === 'authenticated' && l.deviceId === id, `${id} authenticated`)).pid ?? 0)
  const pids = new Set(pidOf.values())
  assert.equal(pids.size, 2, `devices were served by processes ${[...pids].join(', ')}`)
  assert.ok(!pids.has(child.pid ?? -1), 'the primary serves no device itself')

  // Two devices on different processes reach each other through the group's one broker.
  const [p1, p2] = [...pids]
  const onP1 = holder.get(ids.find((id) => pidOf.get(id) === p1) as string) as MqttClient
  const onP2 = holder.get(ids.find((id) => pidOf.get(id) === p2) as string) as MqttClient
  await onP1.subscribeAsync('group/hello')
  const got = nextMessage(onP1, 'group/hello')
  await onP2.publishAsync('group/hello', 'across processes')
  assert.equal(await got, 'across processes')

  // /metrics: the whole group's authentications, the registry's gauges once.
  const metrics = await (await fetch(`${base}/metrics`)).text()
  assert.match(metrics, /^certgate_auth_total\{listener="device",result="authenticated",reason="none"\} 8$/m)
  assert.match(metrics, /^certgate_devices\{status="enabled"\} 8$/m)
  assert.match(metrics, /^certgate_live_connections\{listener="device"\} 8$/m)

  // Deny-list one device's certificate on each process: each closes within a second, on its own
  // process or on the other (a 'revocation' change, relayed like any other).
  const denied = [p1, p2].map((p) => ids.find((id) => pidOf.get(id) === p) as string)
  for (const id of denied) {
    const c = holder.get(id) as MqttClient
    let closedAt = 0
    c.once('close', () => { closedAt = performance.now() })
    const r = await call('PUT', `/revocations/${sha256Hex((leafOf.get(id) as Issued).der)}`, { reason: 'stolen' })
    const answeredAt = performance.now()
    assert.equal(r.status, 201)
    await closed(c, 3000)
    const ms = Math.max(0, closedAt - answeredAt)
    assert.ok(ms <= 1000, `${id} (pid ${pidOf.get(id)}) closed ${Math.round(ms)} ms after the deny-list answer`)
    const line = await waitFor((l) => l.event === 'closed' && l.deviceId === id, `${id} closed`)
    assert.equal(line.reason, 'cert_revoked')
  }

  // Disable every other device through the admin API (one keep-alive connection: one process answers);
  // each closes within a second, on its own process or on the other.
  for (const id of ids.filter((i) => !denied.includes(i))) {
    const c = holder.get(id) as MqttClient
    let closedAt = 0
    c.once('close', () => { closedAt = performance.now() })
    const r = await call('PUT', `/devices/${id}`, { authentication: { type: 'certificateAuthority' }, status: 'disabled' })
    const answeredAt = performance.now()
    assert.equal(r.status, 200)
    await closed(c, 3000)
    const ms = Math.max(0, closedAt - answeredAt)
    assert.ok(ms <= 1000, `${id} (pid ${pidOf.get(id)}) closed ${Math.round(ms)} ms after the admin answer`)
    const line = await waitFor((l) => l.event === 'closed' && l.deviceId === id, `${id} closed`)
    assert.equal(line.reason, 'device_disabled')
    assert.equal(line.pid, pidOf.get(id))
  }

  // Neither process keeps device records (the single-process SQLite device cache): a change made
  // through one process reaches the other later. A device both processes have just authenticated
  // is disabled through one of them; connecting again, it is refused by both.
  const again = ids.find((i) => !denied.includes(i)) as string
  const setStatus = async (status: 'enabled' | 'disabled'): Promise<void> => {
    assert.equal((await call('PUT', `/devices/${again}`, { authentication: { type: 'certificateAuthority' }, status })).status, 200)
  }
  const connectAgain = async (): Promise<MqttClient> => await connectDevice({ port: devicePort, serverCa, leaf: leafOf.get(again) as Issued, chain: [pki.int2, pki.int1] })
  await setStatus('enabled')
  const from = lines.length
  const authenticated = (): Line[] => lines.slice(from).filter((l) => l.event === 'authenticated' && l.deviceId === again)
  for (let n = 1; n <= 8 && new Set(authenticated().map((l) => l.pid)).size < 2; n++) {
    clients.push(await connectAgain())
    await waitFor(() => authenticated().length >= n, `${again} authenticated ${n} times`)
  }
  assert.deepEqual(new Set(authenticated().map((l) => l.pid)), pids, `${again} authenticated by both processes`)
  await setStatus('disabled')
  for (let attempt = 0; attempt < 2; attempt++) await assert.rejects(connectAgain(), `${again} connected while disabled`)
  for (const pid of pids) await waitFor((l) => l.event === 'refused' && l.reason === 'device_disabled' && l.deviceId === again && l.pid === pid, `${again} refused by process ${pid}`)

  child.kill('SIGTERM')
  assert.equal(await exited, 0, err)
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), 'no gateway process outlives the group')
  assert.equal(lines.filter((l) => l.event?.startsWith('certgate listening') === true).length, 1, 'one listening line for the group')
})
