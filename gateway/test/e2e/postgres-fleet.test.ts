// What this proves: two gateways sharing one PostgreSQL registry (a real throwaway cluster) act
// as one fleet. A CA's proof of possession started through gateway A (upload, code) and finished
// through gateway B (verify) makes a device under it authenticate on both. A device disabled
// through A's admin API loses its live connection on B within one second, measured from A's
// answer, and so does a device chained to a CA deleted through A. B survives PostgreSQL going
// away: meanwhile it refuses new devices as registry_unavailable (and its /healthz says so, 503,
// for a balancer) while an already-connected
// device keeps working; a device disabled through A while B still cannot reach the database
// (A reconnects first, over the Unix socket; B uses TCP) stays connected on B until B reconnects
// by itself, catches up and closes it; then B admits devices again without being restarted.
// Admin changes are audited in the database's table.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import type { Harness } from '../support/harness.js'
import { closed, connectDevice, connectDeviceSoon, roundTrip, type DeviceOptions } from '../support/device.js'
import type { Postgres } from '../support/postgres.js'
import { startPostgresFleet, type PostgresFleet } from '../support/postgres-fleet.js'
import { adminCall, type AdminAnswer } from '../support/admin.js'

let fleet: PostgresFleet<'a' | 'b'> | undefined
let pg: Postgres
let a: Harness
let b: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  // A reaches PostgreSQL over its Unix socket, B over TCP: the outage test takes B's path away alone.
  fleet = await startPostgresFleet('fleet', { a: (pg) => ({ CERTGATE_REGISTRY_URL: pg.socketUrl('fleet') }), b: { CERTGATE_REFUSAL_MEMORY_S: '0' } })
  ;({ pg, gateways: { a, b } } = fleet)
  pki = await issueHierarchy()
})
after(async () => { await fleet?.close() })

type Answer = AdminAnswer
const call = adminCall

const enroll = async (h: Harness, id: string): Promise<Answer> => await call(h, 'PUT', `/devices/${id}`, { authentication: { type: 'certificateAuthority' }, status: 'enabled' })
const disable = async (h: Harness, id: string): Promise<Answer> => await call(h, 'PUT', `/devices/${id}`, { authentication: { type: 'certificateAuthority' }, status: 'disabled', statusReason: 'stolen' })

const deviceOn = async (h: Harness, id: string): Promise<DeviceOptions> =>
  ({ port: h.gw.device.port, serverCa: h.serverCa, leaf: await issue({ cn: id, issuer: pki.int2 }), chain: [pki.int2, pki.int1] })
const connect = async (h: Harness, id: string): Promise<MqttClient> => await connectDevice(await deviceOn(h, id))
/** A CA change reaches the other gateway's validator asynchronously. */
const connectSoon = async (h: Harness, id: string, withinMs: number): Promise<MqttClient> => await connectDeviceSoon(await deviceOn(h, id), withinMs)


test('proof of possession started on A and finished on B lets a device in on both', async () => {
  assert.equal((await call(a, 'PUT', '/certificates/acme', { certificate: pki.root.pem })).status, 201)
  const code = (await call(a, 'POST', '/certificates/acme/generateVerificationCode')).body.verificationCode
  assert.ok(typeof code === 'string')
  const proof = await issue({ cn: code, issuer: pki.root, eku: [] })
  const verified = await call(b, 'POST', '/certificates/acme/verify', { certificate: proof.pem })
  assert.equal(verified.status, 200, JSON.stringify(verified.body))
  assert.equal(verified.body.isVerified, true)
  assert.equal((await enroll(a, 'fleet-1')).status, 201)

  const onB = await connectSoon(b, 'fleet-1', 2000)
  const onA = await connectSoon(a, 'fleet-1', 2000)
  await b.waitForLog((l) => l.event === 'authenticated' && l.deviceId === 'fleet-1')
  await a.waitForLog((l) => l.event === 'authenticated' && l.deviceId === 'fleet-1')
  onA.end(true)
  onB.end(true)

  // The audit records of both gateways are in the database, not in files.
  const rows = await pg.query<{ action: string, status: number }>('fleet', 'SELECT action, status FROM audit_log ORDER BY id')
  // Written after each answer, by two gateways: their order in the table is not the requests' order.
  assert.deepEqual(rows.map((r) => r.action).sort(), ['PUT /certificates/{id}', 'POST /certificates/{id}/generateVerificationCode', 'POST /certificates/{id}/verify', 'PUT /devices/{id}'].sort())
  assert.ok(!existsSync(join(a.dataDir, 'audit.log')) && !existsSync(join(b.dataDir, 'audit.log')))
})

test('a device disabled through A loses its live connection on B within one second', async (t) => {
  assert.equal((await enroll(a, 'fleet-2')).status, 201)
  const c = await connect(b, 'fleet-2')
  let closedAt = 0
  c.once('close', () => { closedAt = performance.now() })
  const answer = await disable(a, 'fleet-2')
  const answeredAt = performance.now()
  assert.equal(answer.status, 200)
  await closed(c, 3000)
  // Measured from A's answer; the write is committed (and NOTIFYd) before A answers.
  const ms = Math.max(0, closedAt - answeredAt)
  t.diagnostic(`closed on B ${Math.round(ms)} ms after A answered`)
  assert.ok(ms <= 1000, `closed on B ${Math.round(ms)} ms after A answered`)
  await b.waitForLog((l) => l.event === 'closed' && l.deviceId === 'fleet-2' && l.reason === 'device_disabled')
  c.end(true)
})

test('a CA deleted through A closes the devices chained to it on B within one second', async (t) => {
  const other = await issueHierarchy()
  assert.equal((await call(a, 'PUT', '/certificates/beta', { certificate: other.root.pem })).status, 201)
  const code = (await call(a, 'POST', '/certificates/beta/generateVerificationCode')).body.verificationCode
  assert.ok(typeof code === 'string')
  assert.equal((await call(a, 'POST', '/certificates/beta/verify', { certificate: (await issue({ cn: code, issuer: other.root, eku: [] })).pem })).status, 200)
  assert.equal((await enroll(a, 'beta-1')).status, 201)
  const leaf = await issue({ cn: 'beta-1', issuer: other.int2 })
  const c = await connectDeviceSoon({ port: b.gw.device.port, serverCa: b.serverCa, leaf, chain: [other.int2, other.int1] }, 2000)
  let closedAt = 0
  c.once('close', () => { closedAt = performance.now() })
  assert.equal((await call(a, 'DELETE', '/certificates/beta')).status, 204)
  const answeredAt = performance.now()
  await closed(c, 3000)
  const ms = Math.max(0, closedAt - answeredAt)
  t.diagnostic(`closed on B ${Math.round(ms)} ms after A answered`)
  assert.ok(ms <= 1000, `closed on B ${Math.round(ms)} ms after A answered`)
  await b.waitForLog((l) => l.event === 'closed' && l.deviceId === 'beta-1' && l.reason === 'ca_removed')
  c.end(true)
})

test('B survives a PostgreSQL restart: fails closed meanwhile, keeps connected devices, catches up, recovers', async () => {
  for (const id of ['stay-1', 'late-1', 'new-1']) assert.equal((await enroll(a, id)).status, 201)
  const stays = await connect(b, 'stay-1')
  const late = await connect(b, 'late-1')

  await pg.stop()
  await b.waitForLog((l) => l.event === 'registry_lost', 5000)
  // New devices are refused with the specific reason; the connected one keeps working.
  await assert.rejects(connect(b, 'new-1'))
  const refused = await b.waitForLog((l) => l.event === 'refused' && l.deviceId === 'new-1')
  assert.equal(refused.reason, 'registry_unavailable')
  await roundTrip(stays, 'outage/stay-1')
  // A balancer's health check sends new devices to other gateways meanwhile.
  const health = await fetch(`http://127.0.0.1:${b.gw.admin.port}/healthz`)
  assert.equal(health.status, 503)
  assert.deepEqual(await health.json(), { status: 'registry_unavailable' })

  // The database comes back on its Unix socket only: A reconnects, B (TCP) cannot yet.
  await pg.start({ tcp: false })
  await a.waitForLog((l) => l.event === 'registry_restored', 20_000)
  const mark = b.logs.length
  assert.equal((await disable(a, 'late-1')).status, 200)
  // B has since tried the database again and failed (each failed reconnect logs registry_lost):
  // it got as far as it could without hearing the change, so the device must still be there.
  await b.waitForLog((l) => l.event === 'registry_lost' && b.logs.indexOf(l) >= mark, 15_000)
  assert.ok(!b.logs.some((l) => l.event === 'closed' && l.deviceId === 'late-1'), 'B could not hear the change: it closed nothing')
  assert.equal(late.connected, true, 'B could not hear the change: the device is still connected there')
  assert.ok(!b.logs.some((l) => l.event === 'registry_restored'))

  // TCP back: B reconnects by itself, rechecks its live devices and closes the one disabled meanwhile.
  const lateClosed = closed(late, 20_000)
  await pg.stop()
  await pg.start()
  await b.waitForLog((l) => l.event === 'registry_restored', 20_000)
  await lateClosed
  await b.waitForLog((l) => l.event === 'closed' && l.deviceId === 'late-1' && l.reason === 'device_disabled')
  assert.equal(stays.connected, true, 'a device that is still enabled stays connected through the outage')
  await roundTrip(stays, 'outage/stay-2')

  assert.equal((await fetch(`http://127.0.0.1:${b.gw.admin.port}/healthz`)).status, 200)
  const fresh = await connect(b, 'new-1')
  await b.waitForLog((l) => l.event === 'authenticated' && l.deviceId === 'new-1')
  fresh.end(true)
  stays.end(true)
  late.end(true)
})
