// What this proves: OCSP against the responders an operator names on a CA (`ocsp` on the
// certificate resource), answered by the real `openssl ocsp -index` (behind a loopback HTTP
// front), for devices chained through an intermediate they send. A connected device whose
// certificate the responder then reports revoked is closed with `cert_revoked` (MQTT 5: DISCONNECT
// 0x98) within a second of the answer, and refused while the answer is held (detail "OCSP
// responder <url>"); a good device under the same CA stays and keeps forwarding, and its second
// connection while the answer is held is not asked about again. With the
// responder down, policy `open` keeps the device connected and counts the failure; policy
// `closed` closes it with `ocsp_unavailable`, refuses new connections while the responder is known
// down, and lets the device back once the responder answers again.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import type { IDisconnectPacket, MqttClient } from 'mqtt'
import { issue, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness, type LogLine } from '../support/harness.js'
import { closed, connectDevice, roundTrip } from '../support/device.js'
import { adminCall } from '../support/admin.js'
import { startOpensslOcsp, type OcspResponder } from '../support/openssl-ocsp.js'
import { startMosquitto, type Mosquitto } from '../support/mosquitto.js'

let h: Harness
let broker: Mosquitto
const responders: OcspResponder[] = []

before(async () => {
  // Mosquitto speaks MQTT 5 (the embedded broker does not), for the DISCONNECT reason code.
  broker = await startMosquitto()
  h = await startHarness({ CERTGATE_REFUSAL_MEMORY_S: '0', CERTGATE_UPSTREAM: `127.0.0.1:${broker.port}`, CERTGATE_PROTOCOL: 'mqtt' },
    { ocsp: { timeoutMs: 1000, defaultValidityMs: 4000, refreshTickMs: 100, unreachableMs: 1500 } })
})
after(async () => {
  await h.close()
  await broker.stop()
  for (const r of responders) await r.close()
})

interface Ocsp { root: Issued, int: Issued, responder: OcspResponder }

/** A root registered as `name` with OCSP settings, an intermediate under it, and a responder for the intermediate's certificates. */
async function ocspCa (name: string, policy: 'open' | 'closed'): Promise<Ocsp> {
  const root = await issue({ cn: `certgate ${name} root`, ca: true })
  const int = await issue({ cn: `certgate ${name} issuing`, ca: true, issuer: root })
  const responder = await startOpensslOcsp({ ca: int })
  responders.push(responder)
  await h.registerCa(name, root)
  const put = await adminCall(h, 'PUT', `/certificates/${name}`, { certificate: root.pem, ocsp: { responders: [responder.url], policy } })
  assert.equal(put.status, 200, JSON.stringify(put.body))
  return { root, int, responder }
}

async function leafUnder (o: Ocsp, id: string): Promise<Issued> {
  await h.addDevice(id)
  return await issue({ cn: id, issuer: o.int })
}

const dial = async (o: Ocsp, leaf: Issued, protocolVersion: 4 | 5 = 4): Promise<MqttClient> =>
  await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [o.int], protocolVersion })

const logTime = (l: LogLine): number => (l as { time?: number }).time ?? 0
const answer = (id: string, status: string, from = 0) => (l: LogLine): boolean =>
  h.logs.indexOf(l) >= from && l.event === 'ocsp_answer' && l.deviceId === id && (l as { status?: string }).status === status

async function responses (ca: string, status: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
  const m = new RegExp(`^certgate_ocsp_responses_total\\{ca="${ca}",status="${status}"\\} (\\d+)`, 'm').exec(text)
  return m === null ? 0 : Number(m[1])
}

test('a device the responder reports revoked is closed within a second of the answer (DISCONNECT 0x98) and refused while it is held; a good one stays', { timeout: 30_000 }, async (t) => {
  const o = await ocspCa('ocsp-closed', 'closed')
  const bad = await leafUnder(o, 'ocsp-bad')
  const good = await leafUnder(o, 'ocsp-good')
  o.responder.setIndex([bad, good], [])
  const b = await dial(o, bad, 5)
  const first = await dial(o, good)
  await h.waitForLog(answer('ocsp-bad', 'good'))
  await h.waitForLog(answer('ocsp-good', 'good'))
  await roundTrip(b, 'ocsp/bad')
  // The next connection of the same certificate while the answer is held is not asked about again
  // (one after the other: the broker would take a second session with the same clientId over).
  const before = o.responder.askedAbout(good)
  first.end(true)
  const g = await dial(o, good)
  await h.waitForLog((l) => l.event === 'ocsp_held' && l.deviceId === 'ocsp-good' && (l as { status?: string }).status === 'good')
  assert.equal(o.responder.askedAbout(good), before)

  const told = new Promise<IDisconnectPacket>((resolve) => b.once('disconnect', resolve))
  const gone = closed(b, 8000)
  const from = h.logs.length
  o.responder.setIndex([good], [bad])
  assert.equal((await told).reasonCode, 0x98)
  await gone
  const revoked = await h.waitForLog(answer('ocsp-bad', 'revoked', from))
  const close = await h.waitForLog((l) => h.logs.indexOf(l) >= from && l.event === 'closed' && l.deviceId === 'ocsp-bad')
  assert.equal(close.reason, 'cert_revoked')
  assert.match(close.detail ?? '', new RegExp(`revoked.*OCSP responder ${o.responder.url}`))
  assert.ok(logTime(close) - logTime(revoked) < 1000, `closed ${logTime(close) - logTime(revoked)} ms after the answer`)
  t.diagnostic(`closed ${logTime(close) - logTime(revoked)} ms after the revoked answer was logged`)

  // Held: a new connection is refused at once, without asking the responder again.
  const asked = o.responder.askedAbout(bad)
  await assert.rejects(dial(o, bad))
  const refused = await h.waitForLog((l) => l.event === 'refused' && l.deviceId === 'ocsp-bad')
  assert.equal(refused.reason, 'cert_revoked')
  assert.match(refused.detail ?? '', /OCSP responder http:\/\/127\.0\.0\.1:\d+\//)
  assert.equal(o.responder.askedAbout(bad), asked)

  // The good device was asked about again after the change, and stays.
  await h.waitForLog(answer('ocsp-good', 'good', from))
  assert.ok(g.connected)
  await roundTrip(g, 'ocsp/good')
  assert.ok(await responses('ocsp-closed', 'revoked') >= 1)
  g.end(true)
})

test('responder down: policy open keeps the device connected and counts it', { timeout: 20_000 }, async () => {
  const o = await ocspCa('ocsp-open', 'open')
  await o.responder.stop()
  const leaf = await leafUnder(o, 'ocsp-open-1')
  const c = await dial(o, leaf)
  const failed = await h.waitForLog((l) => l.event === 'ocsp_failed' && l.deviceId === 'ocsp-open-1')
  assert.equal((failed as { reason?: string }).reason, 'unreachable')
  await roundTrip(c, 'ocsp/open')
  assert.ok(c.connected)
  assert.ok(await responses('ocsp-open', 'failed') >= 1)
  c.end(true)
})

test('responder down: policy closed closes the device (ocsp_unavailable), refuses it while known down, lets it back when the responder answers', { timeout: 20_000 }, async () => {
  const o = await ocspCa('ocsp-shut', 'closed')
  const leaf = await leafUnder(o, 'ocsp-shut-1')
  o.responder.setIndex([leaf], [])
  await o.responder.stop()
  // The refused exchange is quick: the close may come before the broker's CONNACK does.
  const c = await dial(o, leaf).catch(() => undefined)
  if (c !== undefined) await closed(c, 5000)
  const line = await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'ocsp-shut-1')
  assert.equal(line.reason, 'ocsp_unavailable')
  assert.match(line.detail ?? '', /no OCSP responder of CA "ocsp-shut" answered/)

  await assert.rejects(dial(o, leaf))
  const refused = await h.waitForLog((l) => l.event === 'refused' && l.deviceId === 'ocsp-shut-1')
  assert.equal(refused.reason, 'ocsp_unavailable')

  await o.responder.start()
  // Once the known-down window (1.5 s here) passes, the next connection is let in and asked about.
  let back: MqttClient | undefined
  for (let i = 0; i < 40 && back === undefined; i++) {
    back = await dial(o, leaf).catch(async () => { await new Promise((resolve) => setTimeout(resolve, 100)); return undefined })
  }
  assert.ok(back !== undefined, 'the device got back in')
  await h.waitForLog(answer('ocsp-shut-1', 'good'))
  await roundTrip(back, 'ocsp/shut')
  back.end(true)
})
