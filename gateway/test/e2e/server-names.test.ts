// What this proves: devices can verify the gateway by the name or address they dial. The generated
// development certificate names the machine's hostname, localhost, 127.0.0.1 and ::1, so the
// README walkthrough works with Debian's `mosquitto_pub -h 127.0.0.1` (host verification on) as
// well as `-h localhost`, and `mosquitto_sub` receives the message; an old development
// certificate naming only localhost is made again, a current one is kept. `certgate pki server
// --dns … --ip … --issuer … --issuer-key …` makes a server certificate signed by the operator's
// CA that mosquitto_pub verifies against that CA. `pki device --key-type ed25519|ec-p521` makes
// device certificates the validator accepts (mosquitto_pub connects and publishes with them).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { devServerNames, serverCertificate } from '../../data-dir.js'
import { issue } from '../../pki/issue.js'
import { loadIssued } from '../../pki/load.js'
import { startHarness } from '../support/harness.js'

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url))

interface Run { readonly code: number | null, readonly stdout: string, readonly stderr: string }

async function run (cmd: string, args: readonly string[], cwd: string, timeoutMs = 15_000): Promise<Run> {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CERTGATE_')) env[k] = v
  const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (d: Buffer) => out.push(d))
  child.stderr.on('data', (d: Buffer) => err.push(d))
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }
}

async function certgate (args: readonly string[], cwd: string): Promise<string> {
  const r = await run(process.execPath, [CLI, ...args], cwd)
  assert.equal(r.code, 0, `certgate ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`)
  return r.stdout
}

/** mosquitto_pub with host verification (no --insecure): exit 0 means it connected, published and disconnected. */
async function publish (o: { host: string, port: number, cafile: string, cert: string, key: string, id: string, topic: string, message: string, retain?: boolean }, cwd: string): Promise<Run> {
  return await run('mosquitto_pub', ['-h', o.host, '-p', String(o.port), '--cafile', o.cafile, '--cert', o.cert, '--key', o.key, '-i', o.id, '-t', o.topic, '-m', o.message, '-V', 'mqttv311', '-q', '1', ...(o.retain === true ? ['-r'] : [])], cwd)
}

test('the development certificate names the hostname, localhost, 127.0.0.1 and ::1; an old one naming only localhost is made again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-names-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }) })
  const made = await serverCertificate(dir, undefined, undefined)
  const cert = new X509Certificate(made.certPem)
  assert.ok(devServerNames().dns.includes(hostname().toLowerCase()), `the hostname ${hostname()} is named`)
  for (const name of devServerNames().dns) assert.ok(cert.checkHost(name) !== undefined, name)
  for (const ip of ['127.0.0.1', '::1']) assert.ok(cert.checkIP(ip) !== undefined, ip)
  assert.equal((await serverCertificate(dir, undefined, undefined)).certPem, made.certPem, 'a current one is kept')

  const old = await issue({ cn: 'localhost', sanDns: ['localhost'], eku: ['1.3.6.1.5.5.7.3.1'] })
  writeFileSync(join(dir, 'dev-server-cert.pem'), old.pem)
  writeFileSync(join(dir, 'dev-server-key.pem'), old.keyPem)
  const again = await serverCertificate(dir, undefined, undefined)
  assert.notEqual(again.certPem, old.pem)
  assert.match(again.regenerated ?? '', /does not name this machine/)
  assert.ok(new X509Certificate(again.certPem).checkIP('127.0.0.1') !== undefined)
  // A hostname that is no DNS name is left out rather than written into a SAN.
  assert.deepEqual(devServerNames('bad_host name'), { dns: ['localhost'], ip: ['127.0.0.1', '::1'] })
})

test('walkthrough with Debian\'s mosquitto clients: -h 127.0.0.1 and -h localhost verify the development certificate; mosquitto_sub receives', { timeout: 90_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'certgate-walk-'))
  t.after(() => { rmSync(work, { recursive: true, force: true }) })
  const h = await startHarness()
  t.after(async () => { await h.close() })
  await certgate(['pki', 'root', '--cn', 'Walk Root'], work)
  await h.registerCa('walk', await loadIssued(readFileSync(join(work, 'pki/root.pem'), 'utf8'), readFileSync(join(work, 'pki/root.key'), 'utf8')))
  for (const id of ['walk-pub', 'walk-sub']) {
    await certgate(['pki', 'device', '--id', id, '--issuer', 'pki/root.pem', '--issuer-key', 'pki/root.key'], work)
    await h.addDevice(id)
  }
  const cafile = join(h.dataDir, 'dev-server-cert.pem')
  const port = h.gw.device.port
  // Retained messages (-r), published first: the subscriber gets them when it subscribes, so no
  // race between its SUBSCRIBE and the publishes.
  for (const [host, topic] of [['127.0.0.1', 'walk/ip'], ['localhost', 'walk/name']] as const) {
    const r = await publish({ host, port, cafile, cert: join(work, 'pki/walk-pub-chain.pem'), key: join(work, 'pki/walk-pub.key'), id: 'walk-pub', topic, message: `via ${host}`, retain: true }, work)
    assert.equal(r.code, 0, `mosquitto_pub -h ${host}: ${r.stderr}`)
  }
  const r = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port), '--cafile', cafile, '--cert', 'pki/walk-sub-chain.pem', '--key', 'pki/walk-sub.key', '-i', 'walk-sub', '-t', 'walk/#', '-C', '2', '-W', '20', '-q', '1', '-V', 'mqttv311'], work, 30_000)
  assert.equal(r.code, 0, `mosquitto_sub: ${r.stderr}${r.stdout}`)
  assert.deepEqual(r.stdout.trim().split('\n').sort(), ['via 127.0.0.1', 'via localhost'])
})

test('pki server makes a certificate mosquitto_pub verifies by IP and name against the operator\'s CA; pki device --key-type ed25519 and ec-p521 devices get in', { timeout: 90_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'certgate-pki-server-'))
  t.after(() => { rmSync(work, { recursive: true, force: true }) })
  await certgate(['pki', 'root', '--cn', 'Ops Root'], work)
  await certgate(['pki', 'intermediate', '--cn', 'Ops Servers', '--issuer', 'pki/root.pem', '--issuer-key', 'pki/root.key', '--name', 'servers'], work)
  const out = await certgate(['pki', 'server', '--dns', 'gateway.example.test', '--dns', 'localhost', '--ip', '127.0.0.1,::1', '--issuer', 'pki/servers.pem', '--issuer-key', 'pki/servers.key'], work)
  assert.match(out, /CERTGATE_TLS_CERT=/)
  const served = readFileSync(join(work, 'pki/server.pem'), 'utf8')
  assert.equal(served.match(/BEGIN CERTIFICATE/g)?.length, 2, 'the intermediate follows the server certificate')
  const leaf = new X509Certificate(served)
  assert.ok(leaf.checkHost('gateway.example.test') !== undefined && leaf.checkIP('::1') !== undefined)
  const refused = await run(process.execPath, [CLI, 'pki', 'server', '--ip', '300.1.1.1', '--issuer', 'pki/root.pem', '--issuer-key', 'pki/root.key'], work)
  assert.notEqual(refused.code, 0)
  assert.match(refused.stderr, /not an IPv4 or IPv6 address/)

  const h = await startHarness({ CERTGATE_TLS_CERT: join(work, 'pki/server.pem'), CERTGATE_TLS_KEY: join(work, 'pki/server.key') })
  t.after(async () => { await h.close() })
  await h.registerCa('ops', await loadIssued(readFileSync(join(work, 'pki/root.pem'), 'utf8'), readFileSync(join(work, 'pki/root.key'), 'utf8')))
  for (const keyType of ['ed25519', 'ec-p521'] as const) {
    const id = `dev-${keyType}`
    await certgate(['pki', 'device', '--id', id, '--key-type', keyType, '--issuer', 'pki/root.pem', '--issuer-key', 'pki/root.key'], work)
    await h.addDevice(id)
    const r = await publish({ host: '127.0.0.1', port: h.gw.device.port, cafile: join(work, 'pki/root.pem'), cert: join(work, `pki/${id}-chain.pem`), key: join(work, `pki/${id}.key`), id, topic: 'ops/t', message: keyType }, work)
    assert.equal(r.code, 0, `mosquitto_pub with a ${keyType} device: ${r.stderr}`)
    await h.waitForLog((l) => l.event === 'authenticated' && l.deviceId === id)
  }
  const ca = await run(process.execPath, [CLI, 'pki', 'root', '--cn', 'X', '--key-type', 'ed25519', '--out', 'other'], work)
  assert.notEqual(ca.code, 0)
  assert.match(ca.stderr, /is for devices/)
})
