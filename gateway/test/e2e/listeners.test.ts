// What this proves: one certgate process serves several device listeners from a CERTGATE_CONFIG
// file, each with its own protocol and upstream: an MQTT device through the mqtt listener to the
// embedded broker, an HTTP device through the http listener to its upstream, and the same device
// identity on both; metrics are labelled per listener. Started as a process, it prints one
// "certgate listening" line per listener, naming each.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Client } from 'undici'
import { issueHierarchy, issue } from '../../pki/issue.js'
import { startHarness } from '../support/harness.js'
import { connectDevice, nextMessage } from '../support/device.js'
import { startHttpUpstream } from '../support/http-upstream.js'

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url))

function configFile (listeners: unknown[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'certgate-listeners-')), 'certgate.json')
  writeFileSync(file, JSON.stringify({ listeners }))
  return file
}

test('an mqtt and an http listener in one gateway, each to its own upstream', { timeout: 30_000 }, async () => {
  const web = await startHttpUpstream()
  const h = await startHarness({
    CERTGATE_CONFIG: configFile([
      { name: 'mqtts', listen: '127.0.0.1:0', protocol: 'mqtt', mqttUsername: 'device-id' },
      { name: 'https', listen: '127.0.0.1:0', protocol: 'http', upstream: `http://127.0.0.1:${web.port}` }
    ])
  })
  try {
    assert.deepEqual(h.gw.listeners.map((l) => [l.name, l.protocol]), [['mqtts', 'mqtt'], ['https', 'http']])
    const [mqtts, https] = h.gw.listeners
    assert.ok(mqtts !== undefined && https !== undefined)
    const pki = await issueHierarchy()
    await h.registerCa('root', pki.root)
    await h.addDevice('both-1')
    const leaf = await issue({ cn: 'both-1', issuer: pki.int2 })

    const device = await connectDevice({ port: mqtts.address.port, serverCa: h.serverCa, leaf, chain: [pki.int2, pki.int1] })
    await device.subscribeAsync('t/both', { qos: 1 })
    const got = nextMessage(device, 't/both')
    await device.publishAsync('t/both', 'via mqtts', { qos: 1 })
    assert.equal(await got, 'via mqtts')

    const client = new Client(`https://127.0.0.1:${https.address.port}`, { connect: { ca: h.serverCa, cert: leaf.pem + pki.int2.pem + pki.int1.pem, key: leaf.keyPem, servername: 'localhost' } })
    const res = await client.request({ path: '/', method: 'GET' })
    assert.equal(await res.body.text(), 'hi')
    assert.equal(web.requests[0]?.headers['x-certgate-device-id'], 'both-1')
    await client.close()
    await device.endAsync()

    const metrics = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
    assert.match(metrics, /certgate_auth_total\{listener="mqtts",result="authenticated",reason="none"\} 1/)
    assert.match(metrics, /certgate_auth_total\{listener="https",result="authenticated",reason="none"\} 1/)
    assert.match(metrics, /certgate_http_requests_total\{listener="https",outcome="2xx"\} 1/)
    const logs = h.logs.filter((l) => l.event === 'authenticated') as Array<{ listener?: string }>
    assert.deepEqual(logs.map((l) => l.listener).sort(), ['https', 'mqtts'])
  } finally {
    await h.close()
    await web.close()
  }
})

test('as a process: one listening line per listener, with its name and protocol', { timeout: 30_000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'certgate-proc-'))
  const child = spawn(process.execPath, [CLI, 'start'], {
    env: {
      ...process.env,
      CERTGATE_DATA_DIR: dataDir,
      CERTGATE_ADMIN_LISTEN: '127.0.0.1:0',
      CERTGATE_LOG_LEVEL: 'warn',
      CERTGATE_CONFIG: configFile([
        { name: 'mqtt', listen: '127.0.0.1:0', protocol: 'mqtt' },
        { name: 'web', listen: '127.0.0.1:0', protocol: 'http', upstream: 'http://127.0.0.1:9' }
      ])
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  try {
    const lines = await new Promise<string[]>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => { reject(new Error(`no listening lines in 15 s:\n${out}`)) }, 15_000)
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        const found = out.match(/^certgate listening .*$/gm) ?? []
        if (found.length === 2) { clearTimeout(timer); resolve(found) }
      })
      child.once('exit', (code) => { reject(new Error(`exited ${code}:\n${out}`)) })
    })
    assert.match(lines[0] ?? '', /^certgate listening device=127\.0\.0\.1:[1-9]\d* admin=127\.0\.0\.1:[1-9]\d* listener=mqtt protocol=mqtt$/)
    assert.match(lines[1] ?? '', /^certgate listening device=127\.0\.0\.1:[1-9]\d* admin=127\.0\.0\.1:[1-9]\d* listener=web protocol=http$/)
    const exit = new Promise<number | null>((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    assert.equal(await exit, 0)
  } finally {
    child.kill('SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  }
})
