// `npm run demo`: a newcomer's walkthrough on a fresh clone, needing nothing but `npm ci`. It
// starts certgate as its own process (embedded MQTT broker, ports chosen by the OS, a throwaway
// data directory), builds a PKI and registers and enrolls with the real CLI commands (each one
// printed, then its output), connects a device with mqtt.js (a devDependency, installed by
// `npm ci`), publishes and receives, then disables the device and shows the live connection
// closed and a reconnection refused, quoting the gateway's own log lines. Exits 0 when every step
// did what it says, 1 otherwise; stops the gateway with SIGTERM. `--keep` keeps the directory.
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import mqtt, { type MqttClient } from 'mqtt'
import { errorMessage } from '../workers/errors.js'

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url))
const DEADLINE_MS = 30_000
const DEVICE = 'demo-sensor-1'
const TOPIC = `demo/${DEVICE}/temperature`

interface LogEvent { readonly event?: string, readonly reason?: string, readonly detail?: string, readonly deviceId?: string, readonly ca?: string }

const print = (text: string): void => { process.stdout.write(text + '\n') }
const indent = (text: string): string => text.trimEnd().split('\n').map((l) => `     ${l}`).join('\n')
const quote = (arg: string): string => /^[\w./:=@,+-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\$`])/g, '\\$1')}"`

/** The environment without any CERTGATE_* the user may have set, plus ours. */
function envWith (vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CERTGATE_')) env[k] = v
  return { ...env, ...vars }
}

class Gateway {
  readonly logs: LogEvent[] = []
  listening: string | undefined
  private readonly waiters = new Set<() => void>()
  private stderr = ''
  readonly exited: Promise<number | null>

  constructor (readonly child: ChildProcessByStdio<null, Readable, Readable>) {
    let buffered = ''
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8')
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? ''
      for (const line of lines) this.onLine(line)
    })
    child.stderr.on('data', (chunk: Buffer) => { this.stderr += chunk.toString('utf8') })
    this.exited = new Promise((resolve) => child.once('exit', (code) => { resolve(code) }))
  }

  private onLine (line: string): void {
    if (line.startsWith('certgate listening ')) this.listening = line
    else if (line.startsWith('{')) {
      try { this.logs.push(JSON.parse(line) as LogEvent) } catch { /* not a log line */ }
    }
    for (const w of this.waiters) w()
  }

  /** Resolves with the first output that satisfies `pick`, waiting for it if need be. */
  async waitFor<T> (what: string, pick: () => T | undefined, timeoutMs = 10_000): Promise<T> {
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = pick()
        if (hit !== undefined) { done(); resolve(hit) }
      }
      const timer = setTimeout(() => { done(); reject(new Error(`the gateway did not log ${what} within ${timeoutMs / 1000} s${this.stderr === '' ? '' : `; its stderr:\n${this.stderr}`}`)) }, timeoutMs)
      const done = (): void => { clearTimeout(timer); this.waiters.delete(check) }
      this.waiters.add(check)
      void this.exited.then((code) => { done(); reject(new Error(`the gateway exited (code ${code}) before it logged ${what}${this.stderr === '' ? '' : `; its stderr:\n${this.stderr}`}`)) })
      check()
    })
  }

  async logged (event: string, reason?: string): Promise<LogEvent> {
    return await this.waitFor(`"event":"${event}"${reason === undefined ? '' : ` with reason ${reason}`}`,
      () => this.logs.find((l) => l.event === event && l.deviceId === DEVICE && (reason === undefined || l.reason === reason)))
  }
}

/** Runs `certgate <args>` as the reader would type it, printing the command and its output. */
async function certgate (args: readonly string[], cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  print(`   $ npx certgate ${args.map(quote).join(' ')}`)
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString('utf8') })
  child.stderr.on('data', (d: Buffer) => { err += d.toString('utf8') })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (out !== '') print(indent(out))
  if (code !== 0) throw new Error(`"certgate ${args.join(' ')}" exited ${code}:\n${err}`)
  return out
}

/** Connects as the device; resolves once CONNACK came, rejects if the connection ends first. */
async function connectDevice (port: number, dir: string): Promise<MqttClient> {
  const client = mqtt.connect({
    protocol: 'mqtts',
    host: '127.0.0.1',
    port,
    ca: readFileSync(join(dir, 'data', 'dev-server-cert.pem')),
    servername: 'localhost',
    key: readFileSync(join(dir, 'pki', `${DEVICE}.key`)),
    cert: readFileSync(join(dir, 'pki', `${DEVICE}-chain.pem`)),
    clientId: DEVICE,
    reconnectPeriod: 0,
    connectTimeout: 5000
  })
  return await new Promise((resolve, reject) => {
    const fail = (err: Error): void => { client.end(true); reject(err) }
    client.once('connect', () => { client.removeAllListeners('error'); client.removeAllListeners('close'); client.on('error',
      () => { /* reported through close */ }); resolve(client) })
    client.once('error', fail)
    client.once('close', () => { fail(new Error('the connection was closed before CONNACK')) })
  })
}

async function withTimeout<T> (what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([work, new Promise<never>((_resolve,
      reject) => { timer = setTimeout(() => { reject(new Error(`${what}: nothing within ${ms / 1000} s`)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

async function demo (dir: string, gwRef: { gw?: Gateway }): Promise<void> {
  print('1. Start certgate: MQTT over TLS in front of its embedded broker; the OS picks the ports')
  print('   $ CERTGATE_DATA_DIR=data CERTGATE_LISTEN=127.0.0.1:0 CERTGATE_ADMIN_LISTEN=127.0.0.1:0 npx certgate start')
  const gw = new Gateway(spawn(process.execPath, [CLI, 'start'], {
    cwd: dir,
    env: envWith({ CERTGATE_DATA_DIR: 'data', CERTGATE_LISTEN: '127.0.0.1:0', CERTGATE_ADMIN_LISTEN: '127.0.0.1:0', CERTGATE_LOG_LEVEL: 'info',
      CERTGATE_DRAIN_TIMEOUT_MS: '2000' }),
    stdio: ['ignore', 'pipe', 'pipe']
  }))
  gwRef.gw = gw
  const line = await gw.waitFor('its listening line', () => gw.listening, 15_000)
  print(indent(line))
  const m = /device=(\S+):(\d+) admin=(\S+)$/.exec(line)
  if (m === null) throw new Error(`unexpected listening line: ${line}`)
  const devicePort = Number(m[2])
  const adminUrl = `http://${m[3] ?? ''}`
  print(`   The commands below reach its admin API with CERTGATE_ADMIN_URL=${adminUrl}; the admin`)
  print('   token is read from data/admin-token, which the gateway wrote (mode 0600).')
  const env = envWith({ CERTGATE_ADMIN_URL: adminUrl, CERTGATE_DATA_DIR: 'data' })

  print('\n2. Create a PKI: a root CA, an intermediate CA it signs, and a device certificate (CN = deviceId)')
  await certgate(['pki', 'root', '--cn', 'Demo Root CA'], dir, env)
  await certgate(['pki', 'intermediate', '--cn', 'Demo Devices CA', '--issuer', 'pki/root.pem', '--issuer-key', 'pki/root.key', '--name',
    'intermediate'], dir, env)
  await certgate(['pki', 'device', '--id', DEVICE, '--issuer', 'pki/intermediate.pem', '--issuer-key', 'pki/intermediate.key'], dir, env)

  print('\n3. Register the root CA with proof of possession: the CLI signs the verification')
  print('   certificate with root.key here; the key is never sent')
  await certgate(['ca', 'register', '--name', 'demo-root', '--cert', 'pki/root.pem', '--key', 'pki/root.key'], dir, env)

  print('\n4. Enroll the device')
  await certgate(['device', 'add', '--id', DEVICE], dir, env)

  print(`\n5. Connect as the device with mqtt.js (TLS client certificate: pki/${DEVICE}-chain.pem, the`)
  print('   device certificate followed by the intermediate), subscribe, publish, receive')
  const client = await connectDevice(devicePort, dir)
  const auth = await gw.logged('authenticated')
  print(`     connected; gateway log: "event":"authenticated","deviceId":"${DEVICE}","ca":"${auth.ca ?? ''}"`)
  await client.subscribeAsync(TOPIC)
  const received = new Promise<string>((resolve) => { client.on('message', (topic, payload) => { if (topic === TOPIC) resolve(payload.toString()) }) })
  await client.publishAsync(TOPIC, '21.5')
  const payload = await withTimeout('waiting for the device\'s own message', 5000, received)
  print(`     published "21.5" to ${TOPIC} and received "${payload}" back through certgate`)

  print('\n6. Disable the device: certgate closes its live connection at once')
  const closed = new Promise<number>((resolve) => { const t = Date.now(); client.once('close', () => { resolve(Date.now() - t) }) })
  await certgate(['device', 'disable', '--id', DEVICE, '--reason', 'demo: reported stolen'], dir, env)
  const ms = await withTimeout('waiting for the live connection to close', 5000, closed)
  const closeLog = await gw.logged('closed', 'device_disabled')
  print(`     the device's connection was closed ${ms} ms after the command started; gateway log: "event":"closed","reason":"${closeLog.reason ?? ''}"`)

  print('\n7. The device tries to reconnect: refused')
  const refusedAt = gw.logs.length
  let reconnected: MqttClient | undefined
  try { reconnected = await connectDevice(devicePort, dir) } catch (err) { print(`     mqtt.js: ${errorMessage(err)}`) }
  if (reconnected !== undefined) { reconnected.end(true); throw new Error('the disabled device was able to connect again') }
  const refusal = await gw.waitFor('the refusal', () => gw.logs.slice(refusedAt).find((l) => l.event === 'refused' && l.deviceId === DEVICE))
  if (refusal.reason !== 'device_disabled') throw new Error(`refused for ${refusal.reason ?? '?'}, expected device_disabled`)
  print(`     gateway log: "event":"refused","reason":"${refusal.reason}","detail":${JSON.stringify(refusal.detail ?? '')}`)

  print(`\n8. Stop certgate with SIGTERM (pid ${gw.child.pid ?? '?'}): it drains and exits 0`)
  gw.child.kill('SIGTERM')
  const code = await withTimeout('waiting for the gateway to exit', 10_000, gw.exited)
  if (code !== 0) throw new Error(`the gateway exited with code ${code}, not 0`)
  print('     exited 0')
}

async function main (): Promise<number> {
  const keep = process.argv.includes('--keep')
  const started = Date.now()
  const dir = mkdtempSync(join(tmpdir(), 'certgate-demo-'))
  print(`certgate demo, in ${dir}. Each "npx certgate ..." below is run as node dist/gateway/cli.js ...\n`)
  const gwRef: { gw?: Gateway } = {}
  let ok = false
  try {
    await withTimeout('the demo', DEADLINE_MS, demo(dir, gwRef))
    ok = true
    print(`\nDone in ${((Date.now() - started) / 1000).toFixed(1)} s: a CA registered with proof of possession, a device enrolled,`)
    print('connected and cut off by one command. Next: certgate --help, README.md.')
  } catch (err) {
    process.stderr.write(`\ndemo failed: ${errorMessage(err)}\n`)
  } finally {
    const child = gwRef.gw?.child
    if (child?.exitCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGTERM')
      const timer = setTimeout(() => { if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL') }, 5000)
      await gwRef.gw?.exited
      clearTimeout(timer)
    }
    if (keep || !ok) print(`files kept in ${dir}`)
    else rmSync(dir, { recursive: true, force: true })
  }
  return ok ? 0 : 1
}

main().then((code) => { process.exit(code) }, (err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
