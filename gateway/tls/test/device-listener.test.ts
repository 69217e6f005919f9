// What this proves: the device listener finds the TCP socket under each TLS socket (through
// Node's `_parent`, which Node does not document), so that on every Node version CI runs:
// a finished handshake stops counting against the handshake cap while its connection stays open
// (else every device past the cap would be refused as over_capacity), and the address a trusted
// balancer's PROXY header names is the one certgate sees (else it would silently be the balancer's).
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { BlockList, connect as tcpConnect } from 'node:net'
import { connect, type TLSSocket } from 'node:tls'
import { once } from 'node:events'
import { issue, type Issued } from '../../pki/issue.js'
import { startDeviceListener, type DeviceListener, type Peer } from '../device-listener.js'

interface Started { readonly listener: DeviceListener, readonly secured: Array<{ socket: TLSSocket, peer: Peer }>, readonly refused: string[] }

async function start (t: TestContext, server: Issued, opts: { maxHandshakes: number, trustedProxies?: BlockList }): Promise<Started> {
  const secured: Started['secured'] = []
  const refused: string[] = []
  const listener = await startDeviceListener(
    { host: '127.0.0.1', port: 0, certPem: server.pem, keyPem: server.keyPem, handshakeTimeoutMs: 5000, maxHandshakes: opts.maxHandshakes, handshakeRatePerAddress: 0, trustedProxies: opts.trustedProxies },
    { onAccepted: () => undefined, onHandshakeFailed: (bucket) => { refused.push(bucket) }, onSecure: (socket, peer) => { secured.push({ socket, peer }) } }
  )
  t.after(() => {
    listener.stopAccepting()
    for (const s of secured) s.socket.destroy()
  })
  return { listener, secured, refused }
}

async function handshake (port: number, device: Issued, server: Issued, over?: ReturnType<typeof tcpConnect>): Promise<TLSSocket> {
  const socket = connect({ ...(over === undefined ? { host: '127.0.0.1', port } : { socket: over }), ca: server.pem, servername: 'localhost', cert: device.pem, key: device.keyPem })
  await once(socket, 'secureConnect')
  return socket
}

/** Resolves once the listener has handed over `n` secured connections. */
async function securedCount (s: Started, n: number): Promise<void> {
  const until = Date.now() + 5000
  while (s.secured.length < n) {
    assert.ok(Date.now() < until, `only ${s.secured.length} of ${n} connections were handed over; refused: ${s.refused.join(', ')}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
}

test('finished handshakes leave the cap while their connections stay open', async (t) => {
  const server = await issue({ cn: 'localhost', sanDns: ['localhost'], eku: ['1.3.6.1.5.5.7.3.1'] })
  const device = await issue({ cn: 'dev-1' })
  const s = await start(t, server, { maxHandshakes: 2 })
  const clients: TLSSocket[] = []
  t.after(() => { for (const c of clients) c.destroy() })
  for (let i = 0; i < 5; i++) {
    clients.push(await handshake(s.listener.address.port, device, server))
    await securedCount(s, i + 1)
  }
  assert.deepEqual(s.refused, [])
  assert.ok(clients.every((c) => !c.destroyed), 'all five stay connected')
})

test('a trusted balancer\'s PROXY header names the address certgate sees', async (t) => {
  const server = await issue({ cn: 'localhost', sanDns: ['localhost'], eku: ['1.3.6.1.5.5.7.3.1'] })
  const device = await issue({ cn: 'dev-1' })
  const balancers = new BlockList()
  balancers.addAddress('127.0.0.1')
  const s = await start(t, server, { maxHandshakes: 0, trustedProxies: balancers })
  const raw = tcpConnect(s.listener.address.port, '127.0.0.1')
  await once(raw, 'connect')
  raw.write(`PROXY TCP4 198.51.100.7 127.0.0.1 4242 ${s.listener.address.port}\r\n`)
  const tls = await handshake(s.listener.address.port, device, server, raw)
  t.after(() => { tls.destroy() })
  await securedCount(s, 1)
  assert.deepEqual(s.secured[0]?.peer.source, { address: '198.51.100.7', port: 4242 })
})
