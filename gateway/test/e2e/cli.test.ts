// What this proves: the `certgate` CLI, run as its own process against a real gateway (port 0,
// throwaway data directory), does what an operator needs end to end: `pki` makes a root, two
// intermediates and a device certificate whose chain file lets the device in; `ca register` proves
// possession of the CA key in one step (with a CA made by openssl too: SEC1 key, its own key
// identifier); `device add` enrolls, the device connects over MQTT/TLS, publishes and receives,
// `device disable` closes its live connection, and get/list/enable/remove/ca list/show/remove
// behave. The admin API is found from flags, environment or the data directory's token file. It
// also proves the failure modes scripts depend on: a key that does not match the certificate and
// a --cert file holding a private key are refused before anything is uploaded (exit 1, clear
// message); an unreachable gateway and API refusals exit 1 with the API's code; usage errors exit
// 2; --help exits 0 on every command and subcommand (those run in-process through the CLI context,
// one of each through a real process for the entry's exit code). `device import` reports each invalid line by
// number and imports nothing, and imports 100,000 devices that `device list` then returns in full
// (the elapsed time is printed, not asserted). PKCS#12 bundles of RSA and EC devices are read by
// Node and let the device in. Self-signed devices enroll with the thumbprint `pki` prints.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { connect as tlsConnect, createSecureContext } from 'node:tls'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startHarness, type Harness } from '../support/harness.js'
import { closed, connectDevice, nextMessage } from '../support/device.js'
import { loadIssued } from '../../pki/load.js'
import type { Issued } from '../../pki/issue.js'
import { runCli } from '../../cli/run-cli.js'

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url))

let h: Harness
let dir: string
let adminUrl: string

before(async () => {
  h = await startHarness()
  dir = mkdtempSync(join(tmpdir(), 'certgate-cli-'))
  adminUrl = `http://127.0.0.1:${h.gw.admin.port}`
})
after(async () => {
  await h.close()
  rmSync(dir, { recursive: true, force: true })
})

interface Run { readonly code: number | null, readonly stdout: string, readonly stderr: string }

/** `certgate <args>` in the work directory; by default pointed at the harness by environment. */
async function certgate (args: readonly string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const base: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CERTGATE_')) base[k] = v
  const merged: NodeJS.ProcessEnv = { ...base, CERTGATE_ADMIN_URL: adminUrl, CERTGATE_ADMIN_TOKEN: h.gw.adminToken, ...env }
  for (const [k, v] of Object.entries(merged)) if (v === undefined) Reflect.deleteProperty(merged, k)
  const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env: merged, stdio: ['ignore', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (d: Buffer) => out.push(d))
  child.stderr.on('data', (d: Buffer) => err.push(d))
  const [code] = await once(child, 'exit') as [number | null]
  return { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }
}

/** The same command line run in-process through the injectable CLI context (no process start-up):
 * for usage errors and --help, which touch neither the network nor files. */
async function certgateInProcess (args: readonly string[]): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const ctx = {
    out: (text: string) => { stdout += text },
    err: (text: string) => { stderr += text },
    env: { adminUrl, adminToken: h.gw.adminToken, dataDir: undefined },
    cwd: dir
  }
  const { code } = await runCli(args, ctx, {})
  return { code, stdout, stderr }
}

async function ok (args: readonly string[], env: Record<string, string | undefined> = {}): Promise<string> {
  const r = await certgate(args, env)
  assert.equal(r.code, 0, `certgate ${args.join(' ')} exited ${r.code}:\n${r.stderr}${r.stdout}`)
  return r.stdout
}

const read = (file: string): string => readFileSync(join(dir, file), 'utf8')

/** The device as connectDevice wants it, presenting `certFile` (a chain file sends the intermediates too). */
async function deviceFromFiles (certFile: string, keyFile: string): Promise<Issued> {
  return { ...(await loadIssued(read(certFile), read(keyFile))), pem: read(certFile) }
}

test('the happy path: pki, ca register, device add, connect, disable closes it, get/list/enable/remove', async () => {
  await ok(['pki', 'root', '--cn', 'CLI Root CA'])
  await ok(['pki', 'intermediate', '--cn', 'CLI Int 1', '--issuer', 'pki/root.pem', '--issuer-key', 'pki/root.key', '--name', 'int1'])
  await ok(['pki', 'intermediate', '--cn', 'CLI Int 2', '--issuer', 'pki/int1.pem', '--issuer-key', 'pki/int1.key', '--name', 'int2', '--path-len', '0'])
  const issued = await ok(['pki', 'device', '--id', 'cli-dev-1', '--issuer', 'pki/int2.pem', '--issuer-key', 'pki/int2.key', '--chain', 'pki/int1.pem'])
  assert.match(issued, /chain file with 2 intermediates/)
  for (const key of ['root.key', 'int1.key', 'int2.key', 'cli-dev-1.key']) assert.equal(statSync(join(dir, 'pki', key)).mode & 0o777, 0o600, key)
  assert.equal(read('pki/cli-dev-1-chain.pem').match(/BEGIN CERTIFICATE/g)?.length, 3)
  assert.equal(read('pki/cli-dev-1-chain.pem').indexOf(read('pki/cli-dev-1.pem')), 0, 'the chain file starts with the device certificate')

  // The token comes from the data directory here: no CERTGATE_ADMIN_TOKEN, no --token.
  const registered = await ok(['ca', 'register', '--name', 'cli-root', '--cert', 'pki/root.pem', '--key', 'pki/root.key'], { CERTGATE_ADMIN_TOKEN: undefined, CERTGATE_DATA_DIR: h.dataDir })
  assert.match(registered, /CA "cli-root" is verified/)
  assert.equal((await h.gw.registry.getCa('cli-root'))?.isVerified, true)
  assert.match(await ok(['ca', 'register', '--name', 'cli-root', '--cert', 'pki/root.pem', '--key', 'pki/root.key']), /already registered .* verified; nothing to do/)

  // Flags instead of environment (the token may begin with "-": it is still taken as the value).
  await ok(['device', 'add', '--id', 'cli-dev-1', '--admin', adminUrl, '--token', h.gw.adminToken], { CERTGATE_ADMIN_URL: undefined, CERTGATE_ADMIN_TOKEN: undefined })
  assert.equal((await certgate(['device', 'get', '--id', 'cli-dev-1', '--token', '-starts-with-a-dash'])).stderr.match(/unauthorized \(HTTP 401\)/)?.length, 1)
  const again = await certgate(['device', 'add', '--id', 'cli-dev-1'])
  assert.equal(again.code, 1)
  assert.match(again.stderr, /already exists/)

  const client = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await deviceFromFiles('pki/cli-dev-1-chain.pem', 'pki/cli-dev-1.key') })
  await client.subscribeAsync('cli/temp')
  const got = nextMessage(client, 'cli/temp')
  await client.publishAsync('cli/temp', '19.5')
  assert.equal(await got, '19.5')
  const connected = JSON.parse(await ok(['device', 'get', '--id', 'cli-dev-1', '--json'])) as { connectionState: string, status: string }
  assert.equal(connected.connectionState, 'Connected')

  // Listening before the command: device.ts's connectDevice removes mqtt.js's own 'close'
  // handler, so `connected` stays true after a close that happened before closed() is called.
  const disconnected = closed(client)
  assert.match(await ok(['device', 'disable', '--id', 'cli-dev-1', '--reason', 'lost in transit']), /disabled device "cli-dev-1"/)
  await disconnected
  client.end(true) // stops its keepalive timer, which the removed handler would have stopped
  await h.waitForLog((l) => l.event === 'closed' && l.reason === 'device_disabled' && l.deviceId === 'cli-dev-1')
  const disabled = JSON.parse(await ok(['device', 'get', '--id', 'cli-dev-1', '--json'])) as { status: string, statusReason: string }
  assert.deepEqual([disabled.status, disabled.statusReason], ['disabled', 'lost in transit'])
  assert.match(await ok(['device', 'get', '--id', 'cli-dev-1']), /status:\s+disabled \(lost in transit\)/)
  await assert.rejects(connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await deviceFromFiles('pki/cli-dev-1-chain.pem', 'pki/cli-dev-1.key') }))

  const listed = JSON.parse(await ok(['device', 'list', '--json'])) as Array<{ deviceId: string }>
  assert.ok(listed.some((d) => d.deviceId === 'cli-dev-1'))
  assert.match(await ok(['device', 'list']), /^cli-dev-1\s+certificateAuthority\s+disabled\s+Disconnected\s+lost in transit$/m)

  await ok(['device', 'enable', '--id', 'cli-dev-1'])
  assert.equal((await h.gw.registry.getDevice('cli-dev-1'))?.status, 'enabled')
  const back = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await deviceFromFiles('pki/cli-dev-1-chain.pem', 'pki/cli-dev-1.key') })
  const removed = closed(back)
  assert.match(await ok(['device', 'remove', '--id', 'cli-dev-1']), /removed device "cli-dev-1"/)
  await removed
  back.end(true)
  const gone = await certgate(['device', 'get', '--id', 'cli-dev-1'])
  assert.equal(gone.code, 1)
  assert.match(gone.stderr, /device_not_found \(HTTP 404\): no device "cli-dev-1"/)

  assert.match(await ok(['ca', 'list']), /^cli-root\s+yes\s/m)
  assert.equal((JSON.parse(await ok(['ca', 'show', '--name', 'cli-root', '--json'])) as { isVerified: boolean }).isVerified, true)
  assert.equal(await ok(['ca', 'show', '--name', 'cli-root', '--pem']), read('pki/root.pem'))
})

test('a CA made with openssl (SEC1 key, its own key identifier) registers and issues devices that get in', async () => {
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'ossl.key')])
  execFileSync('openssl', ['req', '-x509', '-new', '-key', join(dir, 'ossl.key'), '-subj', '/C=DE/O=Acme/CN=Acme OpenSSL Root', '-days', '30', '-out', join(dir, 'ossl.pem'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-addext', 'subjectKeyIdentifier=0102030405060708'], { stdio: 'ignore' })
  assert.match(read('ossl.key'), /BEGIN EC PRIVATE KEY/)
  // Uploaded first with revocation settings (say by a provisioning script): registering it keeps them.
  const settings = { crlUrls: ['http://127.0.0.1:9/ossl.crl'], ocsp: { responders: ['http://127.0.0.1:9/'], policy: 'open' as const } }
  await h.gw.caService.upload('ossl-root', read('ossl.pem'), undefined, settings)
  await ok(['ca', 'register', '--name', 'ossl-root', '--cert', 'ossl.pem', '--key', 'ossl.key'])
  assert.deepEqual((await h.gw.registry.getCa('ossl-root'))?.settings, settings)
  assert.equal((await h.gw.registry.getCa('ossl-root'))?.isVerified, true)
  await ok(['pki', 'device', '--id', 'ossl-dev', '--issuer', 'ossl.pem', '--issuer-key', 'ossl.key'])
  await ok(['device', 'add', '--id', 'ossl-dev'])
  const client = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await deviceFromFiles('pki/ossl-dev-chain.pem', 'pki/ossl-dev.key') })
  client.end(true)
  assert.match(await ok(['ca', 'remove', '--name', 'ossl-root']), /removed CA "ossl-root"/)
  const shown = await certgate(['ca', 'show', '--name', 'ossl-root'])
  assert.equal(shown.code, 1)
  assert.match(shown.stderr, /ca_not_found/)
})

test('a self-signed device enrolls with the thumbprint `pki device --self-signed` prints', async () => {
  const out = await ok(['pki', 'device', '--id', 'cli-self-1', '--self-signed'])
  const thumbprint = /SHA-256 thumbprint ([0-9a-f]{64})/.exec(out)?.[1]
  assert.ok(thumbprint !== undefined, out)
  await ok(['device', 'add', '--id', 'cli-self-1', '--self-signed', '--primary', thumbprint.toUpperCase()])
  const client = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await deviceFromFiles('pki/cli-self-1.pem', 'pki/cli-self-1.key') })
  client.end(true)
})

/** An MQTT 3.1.1 CONNECT over TLS with a PKCS#12 bundle; resolves with the first bytes back. */
async function connectWithPfx (pfx: Buffer, passphrase: string, clientId: string): Promise<Buffer> {
  const socket = tlsConnect({ host: '127.0.0.1', port: h.gw.device.port, servername: 'localhost', ca: h.serverCa, pfx, passphrase })
  try {
    await once(socket, 'secureConnect')
    const id = Buffer.from(clientId)
    const body = Buffer.concat([Buffer.from([0, 4]), Buffer.from('MQTT'), Buffer.from([4, 2, 0, 60, 0, id.length]), id])
    socket.write(Buffer.concat([Buffer.from([0x10, body.length]), body]))
    const [data] = await once(socket, 'data') as [Buffer]
    return data
  } finally {
    socket.destroy()
  }
}

test('pki p12 bundles RSA and EC devices with their chain; Node reads them and the device gets in', async () => {
  // Issued under the CA the first test registered.
  for (const keyType of ['rsa', 'ec']) {
    const id = `p12-${keyType}`
    await ok(['pki', 'device', '--id', id, '--key-type', keyType, '--issuer', 'pki/int1.pem', '--issuer-key', 'pki/int1.key', '--out', 'p12'])
    await ok(['device', 'add', '--id', id])
    assert.match(await ok(['pki', 'p12', '--cert', `p12/${id}-chain.pem`, '--key', `p12/${id}.key`, '--password', 'bundle secret']), /with 1 intermediate/)
    const pfx = readFileSync(join(dir, 'p12', `${id}.p12`))
    assert.equal(statSync(join(dir, 'p12', `${id}.p12`)).mode & 0o777, 0o600)
    assert.throws(() => createSecureContext({ pfx, passphrase: 'wrong' }))
    assert.deepEqual([...await connectWithPfx(pfx, 'bundle secret', id)], [0x20, 2, 0, 0], `${keyType}: CONNACK accepted`)
  }
})

test('ca register with a key that does not match the certificate fails with exit 1 and uploads nothing', async () => {
  await ok(['pki', 'root', '--cn', 'Someone Else', '--name', 'other'])
  const r = await certgate(['ca', 'register', '--name', 'mismatch', '--cert', 'pki/root.pem', '--key', 'pki/other.key'])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /the CA key pki\/other\.key does not match the CA certificate pki\/root\.pem/)
  assert.equal(await h.gw.registry.getCa('mismatch'), undefined)
  assert.doesNotMatch(readFileSync(join(h.dataDir, 'audit.log'), 'utf8'), /\/certificates\/mismatch/)
})

test('a --cert file holding a private key is refused before anything is sent', async () => {
  writeFileSync(join(dir, 'leaky.pem'), read('pki/root.pem') + read('pki/root.key'))
  const r = await certgate(['ca', 'register', '--name', 'leaky', '--cert', 'leaky.pem', '--key', 'pki/root.key'])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /leaky\.pem contains a private key; refusing to upload it/)
  assert.equal(await h.gw.registry.getCa('leaky'), undefined)
  assert.doesNotMatch(readFileSync(join(h.dataDir, 'audit.log'), 'utf8'), /\/certificates\/leaky/)
})

test('an unreachable gateway and an API refusal exit 1 with a message that says so', async () => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  const down = await certgate(['device', 'list'], { CERTGATE_ADMIN_URL: `http://127.0.0.1:${port}` })
  assert.equal(down.code, 1)
  assert.match(down.stderr, new RegExp(`cannot reach the admin API at http://127.0.0.1:${port}: ECONNREFUSED`))
  const badToken = await certgate(['device', 'list', '--token', 'not-the-token-at-all'])
  assert.equal(badToken.code, 1)
  assert.match(badToken.stderr, /unauthorized \(HTTP 401\)/)
  const badThumbprint = await certgate(['device', 'add', '--id', 'cli-bad-tp', '--self-signed', '--primary', 'abc'])
  assert.equal(badThumbprint.code, 1)
  assert.match(badThumbprint.stderr, /invalid_thumbprint \(HTTP 400\): primaryThumbprint must be the SHA-256/)
})

test('usage errors exit 2 with the usage of the command misused', async () => {
  const cases: string[][] = [
    [], ['bogus'], ['start', '--bogus'], ['pki'], ['pki', 'bogus'], ['pki', 'root'], ['pki', 'root', '--cn'], ['pki', 'root', '--cn', 'x', '--bogus'],
    ['pki', 'root', '--cn', 'x', '--key-type', 'dsa'], ['pki', 'root', '--cn', 'x', '--days', 'soon'], ['pki', 'device', '--id', 'bad id', '--self-signed'],
    ['pki', 'device', '--id', 'x', '--self-signed', '--issuer', 'a.pem'], ['pki', 'p12', '--cert', 'a.pem', '--key', 'a.key'],
    ['ca'], ['ca', 'register', '--name', 'n', '--cert', 'c.pem'], ['ca', 'show'], ['ca', 'list', 'extra'],
    ['device'], ['device', 'add'], ['device', 'add', '--id', 'x', '--primary', 'ab'], ['device', 'add', '--id', 'x', '--self-signed'],
    ['device', 'disable'], ['device', 'import'], ['device', 'import', '--file', 'f.csv', '--format', 'xml'], ['device', 'list', '--admin', 'not a url']
  ]
  const runs = await Promise.all(cases.map(async (args) => ({ args, r: await certgateInProcess(args) })))
  for (const { args, r } of runs) {
    assert.equal(r.code, 2, `certgate ${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, /^certgate: .+\n\nusage: certgate/, `certgate ${args.join(' ')}`)
  }  // The process entry maps the outcome to the exit code: one command line through a real process.
  const real = await certgate(['pki', 'root'])
  assert.equal(real.code, 2, real.stderr)
  assert.match(real.stderr, /^certgate: .+\n\nusage: certgate pki root/)
})

test('--help exits 0 with the usage for every command and subcommand', async () => {
  const groups: Record<string, string[]> = {
    pki: ['root', 'intermediate', 'device', 'verification', 'p12'],
    ca: ['register', 'list', 'show', 'remove'],
    device: ['add', 'get', 'list', 'enable', 'disable', 'remove', 'import']
  }
  const cases: string[][] = [['--help'], ['-h'], ['help'], ['start', '--help']]
  for (const [group, subs] of Object.entries(groups)) {
    cases.push([group, '--help'])
    for (const sub of subs) cases.push([group, sub, '--help'])
  }
  const runs = await Promise.all(cases.map(async (args) => ({ args, r: await certgateInProcess(args) })))
  for (const { args, r } of runs) {
    assert.equal(r.code, 0, `certgate ${args.join(' ')}: ${r.stderr}`)
    const named = args.filter((a) => !a.startsWith('-') && a !== 'help').join(' ')
    assert.ok(r.stdout.startsWith(`usage: certgate ${named}`), `certgate ${args.join(' ')} printed:\n${r.stdout}`)
  }  const real = await certgate(['device', 'add', '--help'])
  assert.equal(real.code, 0, real.stderr)
  assert.ok(real.stdout.startsWith('usage: certgate device add'), real.stdout)
})

test('device import of a CSV with invalid lines names each line and imports nothing', async () => {
  writeFileSync(join(dir, 'some-bad.csv'), [
    'deviceId,authType,primaryThumbprint,secondaryThumbprint,status,statusReason',
    'imp-ok-1,,,,,',
    'imp bad,,,,,',
    'imp-ok-2,,,,enabledish,',
    'imp-ok-3,selfSigned,,,,',
    'imp-ok-1,,,,disabled,"duplicate, on purpose"',
    ''
  ].join('\n'))
  const before = await h.gw.registry.countDevices()
  const r = await certgate(['device', 'import', '--file', 'some-bad.csv'])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^some-bad\.csv:3: deviceId has the character U\+0020 at position 4/m)
  assert.match(r.stderr, /^some-bad\.csv:4: status must be "enabled" or "disabled"$/m)
  assert.match(r.stderr, /^some-bad\.csv:5: selfSigned devices need authentication\.x509Thumbprint\.primaryThumbprint$/m)
  assert.match(r.stderr, /^some-bad\.csv:6: deviceId "imp-ok-1" is already on line 2$/m)
  assert.match(r.stderr, /certgate: 4 invalid lines in some-bad\.csv \(csv\); nothing was imported/)
  assert.deepEqual(await h.gw.registry.countDevices(), before)
  assert.equal(await h.gw.registry.getDevice('imp-ok-1'), undefined)

  writeFileSync(join(dir, 'good.jsonl'), '{"deviceId":"imp-j-1"}\n{"deviceId":"imp-j-2","authentication":{"type":"certificateAuthority"},"status":"disabled","statusReason":"spare"}\n')
  assert.match(await ok(['device', 'import', '--file', 'good.jsonl']), /imported 2 devices from good\.jsonl in 1 request/)
  assert.equal((await h.gw.registry.getDevice('imp-j-2'))?.statusReason, 'spare')
})

test('device import of 100,000 devices completes and device list returns every one', { timeout: 60_000 }, async (t) => {
  const N = 100_000
  const lines = ['deviceId,status,statusReason']
  for (let i = 0; i < N; i++) lines.push(i % 10 === 0 ? `bulk-${String(i).padStart(6, '0')},disabled,"returned, to be wiped"` : `bulk-${String(i).padStart(6, '0')},,`)
  writeFileSync(join(dir, 'fleet.csv'), lines.join('\n') + '\n')
  const started = performance.now()
  const out = await ok(['device', 'import', '--file', 'fleet.csv'])
  const importSeconds = (performance.now() - started) / 1000
  assert.match(out, /imported 100000 devices from fleet\.csv in \d+ requests/)
  const listStarted = performance.now()
  const listed = JSON.parse(await ok(['device', 'list', '--json'])) as Array<{ deviceId: string, status: string, statusReason: string | null }>
  const listSeconds = (performance.now() - listStarted) / 1000
  const bulk = listed.filter((d) => d.deviceId.startsWith('bulk-'))
  assert.equal(bulk.length, N)
  assert.equal(new Set(bulk.map((d) => d.deviceId)).size, N)
  assert.equal(bulk.filter((d) => d.status === 'disabled' && d.statusReason === 'returned, to be wiped').length, N / 10)
  t.diagnostic(`certgate device import --file fleet.csv (100,000 devices): ${importSeconds.toFixed(1)} s including process start (${out.trim()}); device list --json: ${listSeconds.toFixed(1)} s`)
})
