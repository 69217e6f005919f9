// What this proves: every device connection is a full TLS handshake, verified anew. A device
// that offers a saved session — a TLS 1.3 ticket or a TLS 1.2 session ID — is not resumed: the
// gateway issues no ticket (checked after a round trip of application data, by which time a
// ticket would have arrived), and a TLS 1.2 session ID offered again starts a new session, which
// certgate authenticates again. Removing SSL_OP_NO_TICKET, or a Node release that starts
// resuming by session ID, fails here.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type SecureVersion, type TLSSocket } from 'node:tls'
import { once } from 'node:events'
import mqttPacket from 'mqtt-packet'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'

let h: Harness
let pki: { root: Issued, int1: Issued, int2: Issued }
let leaf: Issued

before(async () => {
  h = await startHarness()
  pki = await issueHierarchy()
  await h.registerCa('root', pki.root)
  await h.addDevice('resume-1')
  leaf = await issue({ cn: 'resume-1', issuer: pki.int2 })
})
after(async () => { await h.close() })

interface Visit { readonly reused: boolean, readonly sessions: Buffer[], readonly connack: Buffer | undefined }

/** One MQTT session over raw TLS: handshake, CONNECT, CONNACK, close; what TLS said about sessions. */
async function visit (version: SecureVersion, session?: Buffer): Promise<Visit> {
  const sessions: Buffer[] = []
  const socket: TLSSocket = connect({
    host: '127.0.0.1',
    port: h.gw.device.port,
    ca: h.serverCa,
    servername: 'localhost',
    cert: leaf.pem + pki.int2.pem + pki.int1.pem,
    key: leaf.keyPem,
    minVersion: version,
    maxVersion: version,
    ...(session === undefined ? {} : { session })
  })
  // Tickets (TLS 1.3) and session IDs (TLS 1.2) both surface here.
  socket.on('session', (s: Buffer) => { sessions.push(s) })
  await once(socket, 'secureConnect')
  assert.equal(socket.getProtocol(), version)
  const reused = socket.isSessionReused()
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'resume-1', clean: true, keepalive: 30 }))
  // The server's application data comes after any ticket it sends (RFC 8446 §4.6.1: tickets
  // follow the server's Finished): once the CONNACK is here, a ticket would have been seen.
  // A refused device is closed instead (a resumed session carries the leaf alone: no chain).
  const closed = once(socket, 'close')
  const connack = await Promise.race([once(socket, 'data').then(([d]) => d as Buffer), closed.then(() => undefined)])
  socket.end()
  await closed
  return { reused, sessions, connack }
}

const authentications = (): number => h.logs.filter((l) => l.event === 'authenticated' && l.deviceId === 'resume-1').length

test('TLS 1.3: a ticket offered again is not resumed; the device is authenticated again', async () => {
  const before = authentications()
  const first = await visit('TLSv1.3')
  assert.deepEqual(first.connack, Buffer.from([0x20, 0x02, 0x00, 0x00]))
  const offered = first.sessions.at(-1)
  if (offered !== undefined) {
    const second = await visit('TLSv1.3', offered)
    assert.equal(second.reused, false, 'the gateway resumed a TLS 1.3 session')
  }
  await h.waitForLog(() => authentications() === before + (offered === undefined ? 1 : 2))
})

test('TLS 1.2: a session ID offered again is not resumed; the device is authenticated again', async () => {
  const before = authentications()
  const first = await visit('TLSv1.2')
  assert.deepEqual(first.connack, Buffer.from([0x20, 0x02, 0x00, 0x00]))
  const offered = first.sessions.at(-1)
  assert.ok(offered !== undefined, 'a TLS 1.2 client always has a session to offer')
  const second = await visit('TLSv1.2', offered)
  assert.equal(second.reused, false, 'the gateway resumed a TLS 1.2 session')
  assert.deepEqual(second.connack, Buffer.from([0x20, 0x02, 0x00, 0x00]))
  await h.waitForLog(() => authentications() === before + 2)
})
