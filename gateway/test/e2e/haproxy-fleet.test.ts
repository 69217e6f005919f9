// What this proves: the scale-out deployment in docs/operations.md works as written. A real HAProxy in TCP
// mode (TLS passes through untouched) spreads devices over two certgate gateways that share one
// PostgreSQL registry, with `send-proxy-v2` to gateways that trust only the balancer's address
// and HTTP health checks on their /healthz. Devices connecting from several addresses are
// authenticated on both gateways, and each gateway logs the device's own address from the PROXY
// header, not the balancer's; a device disabled through one gateway's admin API is disconnected
// from whichever gateway holds it; and a connection to a gateway from the balancer's address
// without a PROXY header is refused.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqtt, { type MqttClient } from 'mqtt'
import { issueHierarchy, issue } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { startPostgres } from '../support/postgres.js'
import { freePort } from '../support/ports.js'
import { startHaProxy } from '../support/haproxy.js'
import { connect as tlsConnect } from 'node:tls'
import { join } from 'node:path'

test('HAProxy (TCP, send-proxy-v2) in front of two gateways on one PostgreSQL', { timeout: 60_000 }, async () => {
  const pg = await startPostgres()
  const url = await pg.createDatabase('lb')
  const env = { CERTGATE_REGISTRY_URL: url, CERTGATE_TRUSTED_PROXIES: '127.0.0.1', CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '50' }
  const gws: Harness[] = []
  const clients: MqttClient[] = []
  let lb: Awaited<ReturnType<typeof startHaProxy>> | undefined
  try {
    gws.push(await startHarness(env))
    const a = gws[0] as Harness
    // One server certificate for the fleet (devices verify the name they dialled, the balancer's).
    gws.push(await startHarness({ ...env, CERTGATE_TLS_CERT: join(a.dataDir, 'dev-server-cert.pem'), CERTGATE_TLS_KEY: join(a.dataDir, 'dev-server-key.pem') }))
    const b = gws[1] as Harness
    const port = await freePort()
    lb = await startHaProxy([
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 1m',
      '  timeout server 1m',
      'frontend devices',
      `  bind 127.0.0.1:${port}`,
      '  default_backend certgate',
      'backend certgate',
      '  balance roundrobin',
      '  option httpchk GET /healthz',
      '  http-check expect status 200',
      `  server a 127.0.0.1:${a.gw.device.port} send-proxy-v2 check port ${a.gw.admin.port} inter 500ms`,
      `  server b 127.0.0.1:${b.gw.device.port} send-proxy-v2 check port ${b.gw.admin.port} inter 500ms`,
      ''
    ].join('\n'), port)
    const pki = await issueHierarchy()
    await a.registerCa('root', pki.root)
    const ids = ['lb-1', 'lb-2', 'lb-3', 'lb-4']
    for (const id of ids) await a.addDevice(id)
    for (const [i, id] of ids.entries()) {
      const leaf = await issue({ cn: id, issuer: pki.int2 })
      // mqtt.js hands its options to tls.connect, localAddress included (its types omit it).
      const options: mqtt.IClientOptions & { localAddress: string } = {
        protocol: 'mqtts', host: '127.0.0.1', port, localAddress: `127.0.0.${i + 2}`, ca: a.serverCa, servername: 'localhost',
        key: leaf.keyPem, cert: leaf.pem + pki.int2.pem + pki.int1.pem, clientId: id, reconnectPeriod: 0, connectTimeout: 5000
      }
      const c = mqtt.connect(options)
      await new Promise((resolve, reject) => { c.once('connect', resolve); c.once('error', reject) })
      clients.push(c)
    }
    const authenticated = gws.map((g) => g.logs.filter((l) => l.event === 'authenticated') as Array<{ deviceId?: string, remote?: string }>)
    assert.ok(authenticated[0]?.length !== 0 && authenticated[1]?.length !== 0, `both gateways serve devices: ${authenticated.map((x) => x.length).join(' + ')}`)
    const remotes = new Map(authenticated.flat().map((l) => [l.deviceId, l.remote]))
    assert.deepEqual(ids.map((id) => remotes.get(id)), ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'], 'the devices\' own addresses, from the PROXY header')

    // Disabled through A, closed wherever it is.
    const onB = authenticated[1]?.[0]?.deviceId
    assert.ok(onB !== undefined)
    const victim = clients[ids.indexOf(onB)] as MqttClient
    const closedAt = new Promise<number>((resolve) => victim.once('close', () => { resolve(Date.now()) }))
    const res = await fetch(`http://127.0.0.1:${a.gw.admin.port}/devices/${onB}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${a.gw.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ authentication: { type: 'certificateAuthority' }, status: 'disabled' })
    })
    const answeredAt = Date.now()
    assert.equal(res.status, 200)
    assert.ok(await closedAt - answeredAt < 1000, 'closed within a second')

    // The balancer's own address without a header: refused before TLS.
    const direct = tlsConnect({ host: '127.0.0.1', port: b.gw.device.port, ca: b.serverCa, servername: 'localhost' })
    const outcome = await new Promise<string>((resolve) => { direct.once('secureConnect', () => { resolve('secure') }); direct.once('error', () => { resolve('refused') }); direct.once('close', () => { resolve('refused') }) })
    direct.destroy()
    assert.equal(outcome, 'refused')
  } finally {
    await Promise.all(clients.map(async (c) => { await c.endAsync(true) }))
    await lb?.stop()
    for (const g of gws) await g.close()
    await pg.destroy()
  }
})
