// What this proves, with real TLS, a real gateway in mqtt mode and a real Mosquitto upstream: a
// CA registered with proof of possession through the admin API and an enrollment group on it let
// 100 devices the registry has never seen connect — and reach Mosquitto — on their first attempt;
// each is registered once (record with its registration, one `device_registered` audit line, the
// metric), even when the same new device connects five times at once. The admin API validates
// groups with specific codes (missing CA, unsupported pattern, If-Match). A device under an
// unregistered or an unverified CA, or whose CN is outside the pattern, is refused as
// device_unknown with a detail naming why (and the group). Disabling the group stops new
// registrations while registered devices keep working; a registered device disabled on its own is
// refused though its group is enabled; the bulk disable closes the group's live devices within
// one second and the bulk delete removes their records. `certgate group` drives the same API.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { generateKeys, issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { closed, connectDevice, nextMessage } from '../support/device.js'
import { startMosquitto, type Mosquitto } from '../support/mosquitto.js'
import { groupCommand } from '../../cli/group-command.js'
import type { CliContext } from '../../cli/context.js'
import { adminCall, type AdminAnswer } from '../support/admin.js'

let broker: Mosquitto
let h: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }
let deviceKeys: Issued['keys']

before(async () => {
  broker = await startMosquitto()
  h = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${broker.port}`, CERTGATE_PROTOCOL: 'mqtt', CERTGATE_WORKERS: '2' })
  pki = await issueHierarchy({ rootCn: 'Enrollment Root' })
  // One key pair for every device: issuing stays cheap; each device still has its own certificate.
  deviceKeys = await generateKeys('P-256')
})
after(async () => {
  await (h as Harness | undefined)?.close()
  await (broker as Mosquitto | undefined)?.stop()
})

type Answer = AdminAnswer
const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> =>
  await adminCall(h, method, path, body, headers)

const group = (primary: string, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ attestation: { type: 'x509', x509: { caReferences: { primary } } }, provisioningStatus: 'enabled', initialStatus: 'enabled', ...extra })
const errorCode = (a: Answer): unknown => (a.body.error as { code?: unknown } | undefined)?.code

async function registerWithProof (name: string, ca: Issued): Promise<void> {
  assert.equal((await call('PUT', `/certificates/${name}`, { certificate: ca.pem })).status, 201)
  const code = (await call('POST', `/certificates/${name}/generateVerificationCode`)).body.verificationCode
  assert.ok(typeof code === 'string')
  const proof = await issue({ cn: code, issuer: ca, eku: [] })
  assert.equal((await call('POST', `/certificates/${name}/verify`, { certificate: proof.pem })).body.isVerified, true)
}

async function device (id: string, under: { leafIssuer: Issued, chain: readonly Issued[] } = { leafIssuer: pki.int2, chain: [pki.int2, pki.int1] }): Promise<{ leaf: Issued, chain: readonly Issued[] }> {
  return { leaf: await issue({ cn: id, issuer: under.leafIssuer, keys: deviceKeys }), chain: under.chain }
}

async function connect (id: string): Promise<MqttClient> {
  return await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, ...await device(id) })
}

async function refusedWith (id: string, detail: RegExp, connectWith: () => Promise<MqttClient> = async () => await connect(id)): Promise<void> {
  await assert.rejects(connectWith(), `${id} must be refused`)
  const line = await h.waitForLog((l) => l.event === 'refused' && l.deviceId === id)
  assert.equal(line.reason, 'device_unknown', JSON.stringify(line))
  assert.match(line.detail ?? '', detail)
}

const auditLines = (): Array<{ action: string, resource: string, caller: string }> =>
  readFileSync(join(h.dataDir, 'audit.log'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { action: string, resource: string, caller: string })

test('enrollment groups through the admin API: validation, ETag and If-Match, list', async () => {
  await registerWithProof('factory', pki.root)
  assert.equal(errorCode(await call('PUT', '/enrollmentGroups/line1', group('nope'))), 'ca_not_found')
  assert.equal(errorCode(await call('PUT', '/enrollmentGroups/line1', group('factory', { deviceIdPattern: '(s)\\1' }))), 'invalid_device_id_pattern')
  assert.equal(errorCode(await call('PUT', '/enrollmentGroups/line1', group('factory', { deviceIdPattern: 'a(?=b)' }))), 'invalid_device_id_pattern')
  assert.equal(errorCode(await call('PUT', '/enrollmentGroups/line1', { ...group('factory'), attestation: { type: 'tpm' } })), 'invalid_attestation')
  assert.equal(errorCode(await call('PUT', '/enrollmentGroups/line1', group('factory', { initialStatus: 'on' }))), 'invalid_initial_status')
  assert.equal(errorCode(await call('PUT', '/enrollmentGroups/line1', group('factory', { provisioningStatus: 'yes' }))), 'invalid_provisioning_status')
  assert.equal(errorCode(await call('PUT', '/enrollmentGroups/bad%20id', group('factory'))), 'invalid_enrollment_group_id')
  assert.equal(errorCode(await call('PUT', '/enrollmentGroups/line1', { ...group('factory'), extra: 1 })), 'unknown_field')

  const created = await call('PUT', '/enrollmentGroups/line1', group('factory', { deviceIdPattern: 'sensor-\\d{3}' }))
  assert.equal(created.status, 201, JSON.stringify(created.body))
  assert.equal(created.etag, `"${String(created.body.etag)}"`)
  assert.deepEqual(created.body.attestation, { type: 'x509', x509: { caReferences: { primary: 'factory' } } })
  const stale = await call('PUT', '/enrollmentGroups/line1', group('factory', { deviceIdPattern: 'sensor-\\d{3}' }), { 'if-match': '"not-the-etag"' })
  assert.equal(stale.status, 412)
  const replaced = await call('PUT', '/enrollmentGroups/line1', group('factory', { deviceIdPattern: 'sensor-\\d{3}' }), { 'if-match': created.etag })
  assert.equal(replaced.status, 200)
  assert.notEqual(replaced.body.etag, created.body.etag)
  assert.equal((await call('GET', '/enrollmentGroups/line1')).body.deviceIdPattern, 'sensor-\\d{3}')
  const list = await fetch(`http://127.0.0.1:${h.gw.admin.port}/enrollmentGroups`, { headers: { authorization: `Bearer ${h.gw.adminToken}` } })
  assert.deepEqual((await list.json() as Array<{ enrollmentGroupId: string }>).map((g) => g.enrollmentGroupId), ['line1'])
  assert.equal((await call('GET', '/enrollmentGroups/missing')).status, 404)
  assert.equal(errorCode(await call('POST', '/enrollmentGroups/line1:reboot')), 'unknown_action')
})

test('100 never-seen devices under the group reach Mosquitto on their first attempt, each registered once', async () => {
  const ids = Array.from({ length: 100 }, (_, i) => `sensor-${String(i).padStart(3, '0')}`)
  const clients: MqttClient[] = []
  // Ten at a time: bounded, and still concurrent registrations.
  for (let i = 0; i < ids.length; i += 10) clients.push(...await Promise.all(ids.slice(i, i + 10).map(async (id) => await connect(id))))
  try {
    // Through to Mosquitto and back for a few of them.
    for (const c of clients.slice(0, 3)) {
      await c.subscribeAsync(`t/${c.options.clientId ?? ''}`)
      const got = nextMessage(c, `t/${c.options.clientId ?? ''}`)
      await c.publishAsync(`t/${c.options.clientId ?? ''}`, 'via mosquitto')
      assert.equal(await got, 'via mosquitto')
    }
  } finally {
    for (const c of clients) c.end(true)
  }
  const page = await call('GET', '/devices?enrollmentGroupId=line1&top=1000')
  const devices = page.body as unknown as Array<{ deviceId: string, status: string, authentication: { type: string }, registration: { enrollmentGroupId: string, via: string } }>
  assert.deepEqual(devices.map((d) => d.deviceId), ids)
  for (const d of devices) {
    assert.equal(d.status, 'enabled')
    assert.equal(d.authentication.type, 'certificateAuthority')
    assert.equal(d.registration.enrollmentGroupId, 'line1')
    assert.equal(d.registration.via, 'gateway')
  }
  const registered = auditLines().filter((l) => l.action === 'device_registered')
  assert.equal(registered.length, 100)
  assert.deepEqual(new Set(registered.map((l) => l.resource)), new Set(ids.map((id) => `/devices/${id}`)))
  assert.equal(registered[0]?.caller, 'enrollmentGroup:line1')
  const metrics = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
  assert.match(metrics, /^certgate_devices_registered_total\{group="line1"\} 100$/m)
})

test('the same new device connecting five times at once is registered once', async () => {
  const creds = await device('sensor-900')
  const clients = await Promise.all(Array.from({ length: 5 }, async () => await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, ...creds, protocolVersion: 5 }).catch((err: unknown) => err as Error)))
  // Mosquitto keeps one session per clientId (the newest), but every connection was let in.
  assert.ok(clients.every((c) => !(c instanceof Error)), String(clients.find((c) => c instanceof Error)))
  for (const c of clients) if (!(c instanceof Error)) c.end(true)
  assert.equal(auditLines().filter((l) => l.resource === '/devices/sensor-900').length, 1)
  assert.equal(h.logs.filter((l) => l.event === 'device_registered' && l.deviceId === 'sensor-900').length, 1)
})

test('refused as device_unknown, with why: unregistered CA, unverified CA, CN outside the pattern', async () => {
  const stranger = await issueHierarchy({ rootCn: 'Stranger Root' })
  const strangerDevice = async (): Promise<MqttClient> => await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, ...await device('sensor-701', { leafIssuer: stranger.int2, chain: [stranger.int2, stranger.int1] }) })
  await refusedWith('sensor-701', /chain does not validate to a verified registered CA/, strangerDevice)

  // Uploaded, with a group on it, but no proof of possession: provisions nothing.
  const unverified = await issue({ cn: 'Unverified Root', ca: true })
  assert.equal((await call('PUT', '/certificates/unverified', { certificate: unverified.pem })).status, 201)
  assert.equal((await call('PUT', '/enrollmentGroups/limbo', group('unverified'))).status, 201)
  await refusedWith('sensor-702', /chain does not validate to a verified registered CA/,
    async () => await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, ...await device('sensor-702', { leafIssuer: unverified, chain: [] }) }))

  await refusedWith('gadget-1', /does not match the deviceIdPattern of enrollment group "line1"/)
  assert.equal((await call('GET', '/devices/gadget-1')).status, 404)
  assert.equal((await call('GET', '/devices/sensor-701')).status, 404)
})

test('a disabled group registers no one; devices it registered keep working and are governed by their own records', async () => {
  const current = await call('GET', '/enrollmentGroups/line1')
  assert.equal((await call('PUT', '/enrollmentGroups/line1', group('factory', { deviceIdPattern: 'sensor-\\d{3}', provisioningStatus: 'disabled' }), { 'if-match': current.etag ?? '' })).status, 200)
  await refusedWith('sensor-500', /enrollment group "line1" on its CA "factory" is disabled/)
  const registered = await connect('sensor-001')
  registered.end(true)

  assert.equal((await call('PUT', '/enrollmentGroups/line1', group('factory', { deviceIdPattern: 'sensor-\\d{3}' }))).status, 200)
  const own = await call('PUT', '/devices/sensor-002', { authentication: { type: 'certificateAuthority' }, status: 'disabled', statusReason: 'returned' })
  assert.equal(own.status, 200)
  assert.equal((own.body.registration as { enrollmentGroupId: string }).enrollmentGroupId, 'line1', 'a replaced device stays its group\'s')
  await assert.rejects(connect('sensor-002'))
  const line = await h.waitForLog((l) => l.event === 'refused' && l.deviceId === 'sensor-002')
  assert.equal(line.reason, 'device_disabled')
})

test('the bulk disable closes the group\'s live devices within one second; the bulk delete removes them', async (t) => {
  const ids = Array.from({ length: 10 }, (_, i) => `sensor-${String(i + 10).padStart(3, '0')}`)
  const clients = await Promise.all(ids.map(async (id) => await connect(id)))
  const closedAt: number[] = []
  for (const c of clients) c.once('close', () => { closedAt.push(performance.now()) })
  const answer = await call('POST', '/enrollmentGroups/line1:disableDevices')
  const answeredAt = performance.now()
  assert.equal(answer.status, 200, JSON.stringify(answer.body))
  assert.ok(Number(answer.body.affected) >= 10)
  await Promise.all(clients.map(async (c) => await closed(c, 3000)))
  const ms = Math.max(0, ...closedAt.map((at) => at - answeredAt))
  t.diagnostic(`all 10 closed ${Math.round(ms)} ms after the answer`)
  assert.ok(ms <= 1000, `closed ${Math.round(ms)} ms after the answer`)
  for (const id of ids) await h.waitForLog((l) => l.event === 'closed' && l.deviceId === id && l.reason === 'device_disabled')
  await assert.rejects(connect('sensor-010'))

  const deleted = await call('POST', '/enrollmentGroups/line1:deleteDevices')
  assert.equal(deleted.status, 200)
  assert.ok(Number(deleted.body.affected) >= 100)
  assert.deepEqual((await call('GET', '/devices?enrollmentGroupId=line1')).body, [])
  // Deleting the group leaves its devices' records alone; here there are none left.
  assert.equal((await call('DELETE', '/enrollmentGroups/limbo')).status, 204)
  assert.equal((await call('GET', '/enrollmentGroups/limbo')).status, 404)
})

test('certgate group add|get|list|disable-devices|remove, in process', async () => {
  const out: string[] = []
  const ctx: CliContext = { out: (s) => { out.push(s) }, err: (s) => { out.push(s) }, env: { adminUrl: `http://127.0.0.1:${h.gw.admin.port}`, adminToken: h.gw.adminToken, dataDir: undefined }, cwd: process.cwd() }
  const run = async (...args: string[]): Promise<string> => { out.length = 0; assert.equal(await groupCommand(args, ctx), 0, out.join('')); return out.join('') }
  assert.match(await run('add', '--id', 'cli-line', '--ca', 'factory', '--pattern', 'cli-[a-z]+'), /added enrollment group "cli-line"/)
  await assert.rejects(run('add', '--id', 'cli-line', '--ca', 'factory'), /already exists/)
  await assert.rejects(run('add', '--id', 'bad', '--ca', 'factory', '--pattern', '(x)\\1'), /backreference/)
  assert.match(await run('get', '--id', 'cli-line'), /cli-\[a-z\]\+/)
  assert.match(await run('list'), /cli-line\s+factory\s+enabled/)
  const c = await connect('cli-one')
  const gone = closed(c, 3000)
  assert.match(await run('disable-devices', '--id', 'cli-line'), /disabled 1 device/)
  await gone
  assert.match(await run('remove', '--id', 'cli-line'), /removed enrollment group "cli-line"/)
  assert.equal((await call('GET', '/devices/cli-one')).body.status, 'disabled')
})
