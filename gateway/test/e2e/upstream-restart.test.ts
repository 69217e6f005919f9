// What this proves: when the real Mosquitto behind certgate goes away, devices' connections close
// with a logged reason (upstream_closed); while it stays down, reconnecting devices (mqtt.js with
// its defaults) are refused, mostly without certgate even trying the broker (a few
// probes, not one attempt per device reconnect: no retry storm); once it is back on the same port,
// every device reconnects on its own and traffic flows again, with no restart of certgate.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import mqtt, { type MqttClient } from 'mqtt'
import { issueHierarchy, issue } from '../../pki/issue.js'
import { startHarness } from '../support/harness.js'
import { startMosquitto } from '../support/mosquitto.js'
import { freePort } from '../support/ports.js'

function metric (text: string, name: string): number {
  return Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
}

test('Mosquitto restart: devices are closed with a reason, refused fast while it is down, and reconnect by themselves', { timeout: 60_000 }, async (t) => {
  const port = await freePort()
  let broker = await startMosquitto([], {}, { port })
  const pki = await issueHierarchy()
  const h = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${port}`, CERTGATE_PROTOCOL: 'mqtt' })
  const ids = ['r-1', 'r-2', 'r-3', 'r-4']
  const clients: MqttClient[] = []
  const connects = new Map<string, number>()
  const refusedConnacks: string[] = []
  try {
    await h.registerCa('root', pki.root)
    for (const id of ids) {
      await h.addDevice(id)
      const leaf = await issue({ cn: id, issuer: pki.int2 })
      const c = mqtt.connect({
        protocol: 'mqtts', host: '127.0.0.1', port: h.gw.device.port, ca: h.serverCa, servername: 'localhost',
        key: leaf.keyPem, cert: leaf.pem + pki.int2.pem + pki.int1.pem, clientId: id, protocolVersion: 4,
        reconnectPeriod: 100, connectTimeout: 3000
      })
      c.on('connect', () => { connects.set(id, (connects.get(id) ?? 0) + 1) })
      c.on('error', (err) => { refusedConnacks.push(err.message) })
      clients.push(c)
    }
    const allConnected = async (times: number, timeoutMs: number): Promise<void> => {
      const until = Date.now() + timeoutMs
      while (ids.some((id) => (connects.get(id) ?? 0) < times) || clients.some((c) => !c.connected)) {
        if (Date.now() > until) assert.fail(`not all reconnected: ${JSON.stringify([...connects])}`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    await allConnected(1, 10_000)

    await broker.stop()
    for (const id of ids) await h.waitForLog((l) => l.event === 'closed' && l.reason === 'upstream_closed' && l.deviceId === id)
    const downFor = 2500
    await new Promise((resolve) => setTimeout(resolve, downFor))
    const during = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
    const attempts = metric(during, 'certgate_upstream_connect_failures_total{listener="device"}')
    const refusals = metric(during, 'certgate_auth_total{listener="device",result="refused",reason="upstream_unavailable"}')
    assert.equal(metric(during, 'certgate_upstream_up{listener="device"}'), 0)
    // 4 devices retrying every ~100 ms for 2.5 s: dozens of reconnects, a handful of real attempts
    // (250 ms doubling backoff: about 5 probes in 2.5 s).
    t.diagnostic(`broker down ${downFor} ms: ${refusals} device reconnects refused, ${attempts} connection attempts against the broker`)
    assert.ok(refusals >= 12, `refusals while down: ${refusals}`)
    assert.ok(attempts <= 8, `connection attempts against the down broker: ${attempts} (refusals ${refusals})`)
    assert.deepEqual(refusedConnacks.filter((m) => /Connection refused/i.test(m)), [], 'no CONNACK error, which would stop mqtt.js from reconnecting')
    const refusal = await h.waitForLog((l) => l.event === 'refused' && l.reason === 'upstream_unavailable')
    assert.match(refusal.detail ?? '', /unreachable|ECONNREFUSED/)

    broker = await startMosquitto([], {}, { port })
    await allConnected(2, 15_000)
    await h.waitForLog((l) => (l as { event?: string }).event === 'upstream_up')
    const [a, b] = clients as [MqttClient, MqttClient]
    await b.subscribeAsync('back/t', { qos: 1 })
    const got = new Promise<string>((resolve) => b.once('message', (_t, p) => { resolve(p.toString()) }))
    await a.publishAsync('back/t', 'after the restart', { qos: 1 })
    assert.equal(await got, 'after the restart')
    const after = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
    assert.equal(metric(after, 'certgate_upstream_up{listener="device"}'), 1)
  } finally {
    await Promise.all(clients.map(async (c) => { await c.endAsync(true) }))
    await h.close()
    await broker.stop()
  }
})
