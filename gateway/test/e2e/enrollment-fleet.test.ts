// What this proves: two gateways sharing one PostgreSQL registry (a real throwaway cluster)
// register a new device exactly once when it reaches both at the same moment. 1,000 devices the
// registry has never seen, under an enrollment group on a CA registered with proof of possession,
// each open a TLS connection to gateway A and one to gateway B at once (raw MQTT CONNECT, wait
// for CONNACK): every connection is let in (zero refusals), the database holds 1,000 records, the
// gateways logged 1,000 `device_registered` events between them (only the inserter logs), and the
// audit table holds 1,000 `device_registered` rows. CERTGATE_ENROLL_FLEET_DEVICES shrinks it.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect as tlsConnect } from 'node:tls'
import { generateKeys, issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import type { Harness } from '../support/harness.js'
import type { Postgres } from '../support/postgres.js'
import { startPostgresFleet, type PostgresFleet } from '../support/postgres-fleet.js'

const DEVICES = Number(process.env.CERTGATE_ENROLL_FLEET_DEVICES ?? 1000)
const IN_FLIGHT = 16 // devices at a time, each with two connections

let fleet: PostgresFleet<'a' | 'b'> | undefined
let pg: Postgres
let a: Harness
let b: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  const env = { CERTGATE_HANDSHAKE_RATE_PER_ADDRESS: '0', CERTGATE_REFUSAL_MEMORY_S: '0' }
  fleet = await startPostgresFleet('fleet', { a: env, b: env })
  ;({ pg, gateways: { a, b } } = fleet)
  pki = await issueHierarchy({ rootCn: 'Fleet Enrollment Root' })
})
after(async () => { await fleet?.close() })

/** MQTT 3.1.1 CONNECT (§3.1): level 4, clean session, keepalive 0, the clientId. */
function connectPacket (clientId: string): Buffer {
  const id = Buffer.from(clientId, 'utf8')
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 0, id.length >> 8, id.length & 0xff]), id])
  return Buffer.concat([Buffer.from([0x10, body.length]), body])
}

/** Connects over TLS, sends CONNECT, resolves with the CONNACK return code (§3.2.2.3) or why there was none. */
async function mqttConnect (h: Harness, leaf: Issued, chain: readonly Issued[]): Promise<number | string> {
  return await new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: h.gw.device.port, ca: h.serverCa, servername: 'localhost', key: leaf.keyPem, cert: leaf.pem + chain.map((c) => c.pem).join('') })
    let got = Buffer.alloc(0)
    const timer = setTimeout(() => { finish('timeout') }, 20_000)
    const finish = (r: number | string): void => { clearTimeout(timer); socket.destroy(); resolve(r) }
    socket.once('secureConnect', () => { socket.write(connectPacket(leaf.subjectCn)) })
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d])
      if (got.length >= 4) finish(got[0] === 0x20 ? got[3] as number : `packet 0x${(got[0] as number).toString(16)}`)
    })
    socket.once('error', (err: Error) => { finish(err.message) })
    socket.once('close', () => { finish('closed before CONNACK') })
  })
}

async function admin (h: Harness, method: string, path: string, body?: unknown): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${h.gw.admin.port}${path}`, {
    method,
    headers: { authorization: `Bearer ${h.gw.adminToken}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await res.text()
  return { status: res.status, body: text === '' ? {} : JSON.parse(text) as Record<string, unknown> }
}

test(`${DEVICES} new devices connecting to two gateways at once are registered once each, none refused`, async (t) => {
  await a.registerCa('fleet-ca', pki.root)
  const put = await admin(a, 'PUT', '/enrollmentGroups/fleet', { attestation: { type: 'x509', x509: { caReferences: { primary: 'fleet-ca' } } }, provisioningStatus: 'enabled', deviceIdPattern: '(probe|storm)-\\d+', initialStatus: 'enabled' })
  assert.equal(put.status, 201, JSON.stringify(put.body))
  const keys = await generateKeys('P-256')
  const chain = [pki.int2, pki.int1]
  // B learns of the CA through NOTIFY: wait until a probe device gets in there (registering it).
  const probe = await issue({ cn: 'probe-1', issuer: pki.int2, keys })
  const end = Date.now() + 5000
  while (await mqttConnect(b, probe, chain) !== 0) {
    assert.ok(Date.now() < end, 'B never trusted the CA')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  assert.equal(await mqttConnect(a, probe, chain), 0)

  const leaves = await Promise.all(Array.from({ length: DEVICES }, async (_, i) => await issue({ cn: `storm-${i}`, issuer: pki.int2, keys })))
  const failures: string[] = []
  const started = performance.now()
  let next = 0
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < leaves.length) {
      const leaf = leaves[next++] as Issued
      const [onA, onB] = await Promise.all([mqttConnect(a, leaf, chain), mqttConnect(b, leaf, chain)])
      if (onA !== 0) failures.push(`${leaf.subjectCn} on A: ${onA}`)
      if (onB !== 0) failures.push(`${leaf.subjectCn} on B: ${onB}`)
    }
  }))
  t.diagnostic(`${DEVICES} devices × 2 gateways connected in ${Math.round(performance.now() - started)} ms`)
  assert.deepEqual(failures, [])

  const storm = (h: Harness): number => h.logs.filter((l) => l.event === 'device_registered' && l.deviceId?.startsWith('storm-') === true).length
  t.diagnostic(`registered by A: ${storm(a)}, by B: ${storm(b)}`)
  assert.equal(storm(a) + storm(b), DEVICES)
  assert.equal(a.logs.filter((l) => l.event === 'refused').length + b.logs.filter((l) => l.event === 'refused' && !(l.deviceId ?? '').startsWith('probe-')).length, 0)
  const [{ n }] = await pg.query<{ n: number }>('fleet', "SELECT count(*)::int AS n FROM devices WHERE device_id LIKE 'storm-%' AND enrollment_group_id = 'fleet'") as [{ n: number }]
  assert.equal(n, DEVICES)

  // Audit rows are written after the insert commits, asynchronously: wait for them to land.
  const audited = async (): Promise<number> => (await pg.query<{ n: number }>('fleet', "SELECT count(*)::int AS n FROM audit_log WHERE action = 'device_registered' AND resource LIKE '/devices/storm-%'"))[0]?.n ?? 0
  const until = Date.now() + 10_000
  while (await audited() < DEVICES && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100))
  assert.equal(await audited(), DEVICES)
})
