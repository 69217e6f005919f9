// What this proves: in http mode certgate is an mTLS-authenticating HTTP/1.1 reverse proxy. An
// upstream node:http server sees every request of an authenticated device with
// x-certgate-device-id and an Envoy-format x-forwarded-client-cert (Hash, Subject; Cert and Chain
// when configured) and never a copy the device forged; many requests ride one keep-alive
// connection; bodies stream both ways (the upstream sees an upload before it ends, the device a
// response before it ends). An upstream that is down is answered 502 and then, fast, 503 with a
// reason, and recovers by itself; a slow one 504. A deleted device's keep-alive connection closes.
// An unknown device's request never reaches the upstream. WebSocket upgrades pass through to a ws
// upstream with the same identity headers, and MQTT over WebSockets reaches a real Mosquitto.
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, X509Certificate } from 'node:crypto'
import { PassThrough } from 'node:stream'
import { connect as tlsConnect } from 'node:tls'
import { once } from 'node:events'
import { Client } from 'undici'
import WebSocket from 'ws'
import mqtt from 'mqtt'
import { issueHierarchy, issue, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { startHttpUpstream } from '../support/http-upstream.js'
import { startMosquitto } from '../support/mosquitto.js'
import { freePort } from '../support/ports.js'

let pki: { root: Issued, int1: Issued, int2: Issued }
before(async () => { pki = await issueHierarchy() })

async function gateway (upstreamPort: number, env: Record<string, string> = {}): Promise<Harness> {
  const h = await startHarness({ CERTGATE_PROTOCOL: 'http', CERTGATE_UPSTREAM: `http://127.0.0.1:${upstreamPort}`, ...env })
  await h.registerCa('root', pki.root)
  return h
}

function deviceClient (h: Harness, leaf: Issued): Client {
  return new Client(`https://127.0.0.1:${h.gw.device.port}`, {
    connect: { ca: h.serverCa, cert: leaf.pem + pki.int2.pem + pki.int1.pem, key: leaf.keyPem, servername: 'localhost' }
  })
}

const sha256 = (der: Uint8Array): string => createHash('sha256').update(der).digest('hex')

/** Headers other proxies set for the client's address or certificate, which an upstream may trust: forged here. */
const FORGED_ELSEWHERE = {
  Forwarded: 'for=203.0.113.9;proto=https',
  'X-Real-IP': '203.0.113.9',
  'True-Client-IP': '203.0.113.9',
  'X-Forwarded-Host': 'admin.example',
  'X-ARR-ClientCert': 'MIIB',
  'X-SSL-Client-DN': 'CN=mallory',
  'X-Remote-User': 'mallory'
}

test('identity headers on every request of a keep-alive connection; forged copies never pass', { timeout: 30_000 }, async () => {
  const up = await startHttpUpstream()
  const h = await gateway(up.port)
  const leaf = await issue({ cn: 'alice', issuer: pki.int2 })
  await h.addDevice('alice')
  const client = deviceClient(h, leaf)
  try {
    for (let i = 0; i < 3; i++) {
      const res = await client.request({
        path: `/hello?i=${i}`,
        method: 'GET',
        headers: {
          'x-certgate-device-id': 'mallory',
          'X-Forwarded-Client-Cert': 'Hash=00;Subject="CN=mallory"',
          'x-certgate-anything': 'forged',
          'x-forwarded-for': '203.0.113.9',
          ...FORGED_ELSEWHERE,
          'X-Not-Identity': 'kept'
        }
      })
      assert.equal(res.statusCode, 200)
      assert.equal(res.headers['x-upstream'], 'yes')
      assert.equal(await res.body.text(), 'hi')
    }
    assert.equal(up.requests.length, 3)
    for (const r of up.requests) {
      assert.equal(r.headers['x-certgate-device-id'], 'alice')
      assert.equal(r.headers['x-forwarded-client-cert'], `Hash=${sha256(leaf.der)};Subject="CN=alice,O=certgate"`)
      assert.equal(r.headers['x-certgate-anything'], undefined)
      assert.equal(r.headers['x-forwarded-for'], '127.0.0.1')
      assert.equal(r.headers['x-forwarded-proto'], 'https')
      for (const name of Object.keys(FORGED_ELSEWHERE)) assert.equal(r.headers[name.toLowerCase()], undefined, `${name} reached the upstream`)
      assert.equal(r.headers['x-not-identity'], 'kept', 'an ordinary header is forwarded')
    }
    assert.deepEqual(up.requests.map((r) => r.url), ['/hello?i=0', '/hello?i=1', '/hello?i=2'])
    const authenticated = h.logs.filter((l) => l.event === 'authenticated' && l.deviceId === 'alice')
    assert.equal(authenticated.length, 1, 'one TLS connection, one authentication, three requests')

    // Written by hand: duplicate forged headers in odd case, and a header named in Connection.
    const raw = tlsConnect({ host: '127.0.0.1', port: h.gw.device.port, ca: h.serverCa, cert: leaf.pem + pki.int2.pem + pki.int1.pem, key: leaf.keyPem, servername: 'localhost' })
    await once(raw, 'secureConnect')
    raw.write('GET /raw HTTP/1.1\r\nHost: x\r\nX-CERTGATE-DEVICE-ID: mallory\r\nx-certgate-device-id: eve\r\nConnection: close, x-drop-me\r\nx-drop-me: 1\r\n\r\n')
    let response = ''
    for await (const d of raw) response += (d as Buffer).toString()
    assert.match(response, /^HTTP\/1\.1 200/)
    const last = up.requests.at(-1)
    assert.equal(last?.url, '/raw')
    assert.equal(last.headers['x-certgate-device-id'], 'alice')
    assert.equal(last.headers['x-drop-me'], undefined, 'headers named in Connection are hop-by-hop')
  } finally {
    await client.close()
    await h.close()
    await up.close()
  }
})

test('CERTGATE_HTTP_FORWARD_CHAIN: Cert and Chain carry the URL-encoded PEMs the device sent', { timeout: 30_000 }, async () => {
  const up = await startHttpUpstream()
  const h = await gateway(up.port, { CERTGATE_HTTP_FORWARD_CHAIN: 'true' })
  const leaf = await issue({ cn: 'bob', issuer: pki.int2 })
  await h.addDevice('bob')
  const client = deviceClient(h, leaf)
  try {
    const res = await client.request({ path: '/', method: 'GET' })
    await res.body.text()
    const xfcc = String(up.requests[0]?.headers['x-forwarded-client-cert'])
    const field = (k: string): string => decodeURIComponent(new RegExp(`${k}="([^"]*)"`).exec(xfcc)?.[1] ?? '')
    assert.ok(new X509Certificate(field('Cert')).raw.equals(Buffer.from(leaf.der)))
    const chain = field('Chain').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []
    assert.deepEqual(chain.map((p) => sha256(new X509Certificate(p).raw)), [leaf, pki.int2, pki.int1].map((c) => sha256(c.der)))
  } finally {
    await client.close()
    await h.close()
    await up.close()
  }
})

test('bodies stream both ways', { timeout: 30_000 }, async () => {
  const up = await startHttpUpstream()
  const h = await gateway(up.port)
  await h.addDevice('carol')
  const client = deviceClient(h, await issue({ cn: 'carol', issuer: pki.int2 }))
  try {
    // Upload: the upstream has the first chunk while the device has not finished sending.
    const body = new PassThrough()
    const answer = client.request({ path: '/echo', method: 'POST', body })
    body.write('part-1;')
    await up.uploadStarted
    body.end('part-2')
    const res = await answer
    assert.equal(await res.body.text(), 'part-1;part-2')
    assert.equal(up.requests[0]?.headers['transfer-encoding'], 'chunked')

    // Download: the device reads the first chunk while the upstream holds the rest.
    const streaming = await client.request({ path: '/stream', method: 'GET' })
    const first = await new Promise<string>((resolve) => streaming.body.once('data', (d: Buffer) => { resolve(d.toString()) }))
    assert.equal(first, 'first;')
    up.release()
    let rest = ''
    for await (const d of streaming.body) rest += (d as Buffer).toString()
    assert.equal(rest, 'second')
  } finally {
    await client.close()
    await h.close()
    await up.close()
  }
})

test('upstream down: 502 with a reason, then 503 at once while it stays down, and recovery on its own; a slow upstream is 504', { timeout: 30_000 }, async () => {
  const port = await freePort()
  const h = await gateway(port, { CERTGATE_HTTP_UPSTREAM_TIMEOUT_MS: '300' })
  await h.addDevice('dave')
  const client = deviceClient(h, await issue({ cn: 'dave', issuer: pki.int2 }))
  try {
    const first = await client.request({ path: '/', method: 'GET' })
    assert.equal(first.statusCode, 502)
    assert.equal(first.headers['x-certgate-error'], 'upstream_unavailable')
    const body = await first.body.json() as { error: { code: string, message: string } }
    assert.equal(body.error.code, 'upstream_unavailable')
    assert.match(body.error.message, new RegExp(`127\\.0\\.0\\.1:${port}.*ECONNREFUSED`))
    const fast = await client.request({ path: '/', method: 'GET' })
    assert.equal(fast.statusCode, 503)
    assert.equal(fast.headers['retry-after'], '1')
    assert.match(((await fast.body.json()) as { error: { message: string } }).error.message, /unreachable .* since/)

    const up = await startHttpUpstream(port)
    try {
      let status = 0
      const until = Date.now() + 10_000
      while (status !== 200 && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        const r = await client.request({ path: '/', method: 'GET' })
        status = r.statusCode
        await r.body.text()
      }
      assert.equal(status, 200, 'recovered without a restart')
      await h.waitForLog((l) => (l as { event?: string }).event === 'upstream_up')

      const slow = await client.request({ path: '/slow', method: 'GET' })
      assert.equal(slow.statusCode, 504)
      assert.equal(((await slow.body.json()) as { error: { code: string } }).error.code, 'upstream_timeout')
    } finally {
      await up.close()
    }
    const metrics = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
    assert.match(metrics, /certgate_http_requests_total\{listener="device",outcome="upstream_unavailable"\} [2-9]/)
    assert.match(metrics, /certgate_http_requests_total\{listener="device",outcome="upstream_timeout"\} 1/)
    assert.match(metrics, /certgate_http_requests_total\{listener="device",outcome="2xx"\} [1-9]/)
  } finally {
    await client.close()
    await h.close()
  }
})

test('a deleted device loses its keep-alive connection; an unknown device never reaches the upstream', { timeout: 30_000 }, async () => {
  const up = await startHttpUpstream()
  const h = await gateway(up.port)
  await h.addDevice('erin')
  const client = deviceClient(h, await issue({ cn: 'erin', issuer: pki.int2 }))
  const stranger = deviceClient(h, await issue({ cn: 'stranger', issuer: pki.int2 }))
  try {
    const ok = await client.request({ path: '/', method: 'GET' })
    await ok.body.text()
    const disconnected = new Promise<void>((resolve) => client.once('disconnect', () => { resolve() }))
    await h.gw.registry.deleteDevice('erin')
    await disconnected
    await h.waitForLog((l) => l.event === 'closed' && l.reason === 'device_deleted' && l.deviceId === 'erin')

    await assert.rejects(stranger.request({ path: '/secret', method: 'GET' }))
    await h.waitForLog((l) => l.event === 'refused' && l.reason === 'device_unknown' && l.deviceId === 'stranger')
    assert.deepEqual(up.requests.map((r) => r.url), ['/'])
  } finally {
    await client.close()
    await stranger.close()
    await h.close()
    await up.close()
  }
})

test('WebSocket upgrade (CERTGATE_WEBSOCKET_PAYLOAD=opaque): passed through to a ws upstream with the identity headers, forged ones dropped', { timeout: 30_000 }, async () => {
  const up = await startHttpUpstream()
  const h = await gateway(up.port, { CERTGATE_WEBSOCKET_PAYLOAD: 'opaque' })
  await h.addDevice('frank')
  const leaf = await issue({ cn: 'frank', issuer: pki.int2 })
  const ws = new WebSocket(`wss://localhost:${h.gw.device.port}/ws?x=1`, {
    ca: h.serverCa, cert: leaf.pem + pki.int2.pem + pki.int1.pem, key: leaf.keyPem,
    headers: { 'x-certgate-device-id': 'mallory' }
  })
  try {
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    const echoed = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => { resolve(d.toString()) }))
    ws.send('ping over certgate')
    assert.equal(await echoed, 'ping over certgate')
    const u = up.upgrades[0]
    assert.equal(u?.url, '/ws?x=1')
    assert.equal(u.headers['x-certgate-device-id'], 'frank')
    assert.match(String(u.headers['x-forwarded-client-cert']), new RegExp(`^Hash=${sha256(leaf.der)};Subject="CN=frank,O=certgate"$`))
  } finally {
    ws.terminate()
    await h.close()
    await up.close()
  }
})

async function wssDevice (h: Harness, id: string, more: { clientId?: string, username?: string } = {}): Promise<mqtt.MqttClient> {
  const leaf = await issue({ cn: id, issuer: pki.int2 })
  const client = mqtt.connect(`wss://localhost:${h.gw.device.port}/mqtt`, {
    ca: h.serverCa, cert: leaf.pem + pki.int2.pem + pki.int1.pem, key: leaf.keyPem,
    clientId: more.clientId ?? id, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000,
    ...(more.username === undefined ? {} : { username: more.username })
  })
  return await new Promise((resolve, reject) => {
    client.once('connect', () => { resolve(client) })
    client.once('error', (err) => { client.end(true); reject(err) })
    client.once('close', () => { reject(new Error('closed before CONNACK')) })
  })
}

test('MQTT over WebSockets to a real Mosquitto: the CONNECT inside the frames is held to mqtt mode\'s rules', { timeout: 30_000 }, async () => {
  const wsPort = await freePort()
  const broker = await startMosquitto([`listener ${wsPort} 127.0.0.1`, 'protocol websockets', 'acl_file $DIR/acl'], { acl: 'pattern readwrite devices/%u/#\n' })
  const h = await gateway(wsPort, { CERTGATE_MQTT_USERNAME: 'device-id' })
  for (const id of ['gina', 'hank', 'ivan']) await h.addDevice(id)
  const clients: mqtt.MqttClient[] = []
  try {
    const hank = await wssDevice(h, 'hank')
    const gina = await wssDevice(h, 'gina', { username: 'hank' }) // claims to be hank
    clients.push(hank, gina)
    await hank.subscribeAsync('devices/hank/#', { qos: 1 })
    await gina.subscribeAsync('devices/hank/#', { qos: 1 })
    await gina.subscribeAsync('devices/gina/#', { qos: 1 })
    const hankReads = new Promise<string>((resolve) => hank.once('message', (_t, p) => { resolve(p.toString()) }))
    const ginaReads = new Promise<string>((resolve) => gina.on('message', (t, p) => { if (t.startsWith('devices/hank/')) resolve(p.toString()) }))
    await hank.publishAsync('devices/hank/telemetry', 'hank-data', { qos: 1 })
    assert.equal(await hankReads, 'hank-data')
    assert.equal(await Promise.race([ginaReads, new Promise((resolve) => setTimeout(() => { resolve('nothing') }, 700))]), 'nothing', 'gina read hank\'s topic over WebSockets')
    const own = new Promise<string>((resolve) => gina.on('message', (t, p) => { if (t === 'devices/gina/x') resolve(p.toString()) }))
    await gina.publishAsync('devices/gina/x', 'gina-data', { qos: 1 })
    assert.equal(await own, 'gina-data')
    assert.match(broker.log(), /New client connected .* as gina .*u'gina'/)

    await assert.rejects(wssDevice(h, 'ivan', { clientId: 'hank' }), /Identifier rejected|identifier/i)
    await h.waitForLog((l) => l.event === 'closed' && l.reason === 'mqtt_protocol_error' && l.deviceId === 'ivan' && /mqtt_client_id_mismatch/.test(l.detail ?? ''))
    assert.equal(hank.connected, true, 'hank\'s session was not taken over')
  } finally {
    await Promise.all(clients.map(async (c) => { await c.endAsync(true) }))
    await h.close()
    await broker.stop()
  }
})

test('a keep-alive connection lives while used and closes after CERTGATE_IDLE_TIMEOUT_S of silence', { timeout: 30_000 }, async () => {
  const up = await startHttpUpstream()
  const h = await gateway(up.port, { CERTGATE_IDLE_TIMEOUT_S: '2' })
  await h.addDevice('jane')
  const client = deviceClient(h, await issue({ cn: 'jane', issuer: pki.int2 }))
  try {
    const disconnected = new Promise<number>((resolve) => client.once('disconnect', () => { resolve(Date.now()) }))
    // Requests 1.2 s apart keep it open past the 2 s idle limit, on one connection.
    let lastTraffic = 0
    for (let i = 0; i < 3; i++) {
      const r = await client.request({ path: '/', method: 'GET' })
      await r.body.text()
      lastTraffic = Date.now()
      await new Promise((resolve) => setTimeout(resolve, 1200))
    }
    const quiet = await disconnected - lastTraffic
    assert.ok(quiet >= 1900 && quiet < 4000, `closed ${quiet} ms after the last traffic`)
    assert.equal(h.logs.filter((l) => l.event === 'authenticated').length, 1, 'all requests on one connection')
    await h.waitForLog((l) => l.event === 'closed' && l.reason === 'idle' && l.deviceId === 'jane')
  } finally {
    await client.close()
    await h.close()
    await up.close()
  }
})
