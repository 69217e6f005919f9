// What this proves: certgate fetches CRLs by itself from the CRL distribution point of a registered
// CA certificate (a plain node http server on loopback), with no admin call: a CRL revoking a
// connected device closes it. A distribution point answering garbage, never answering (timeout)
// or sending more than the size cap changes nothing (the held CRL stays, the device stays
// connected) and counts `failed`; re-fetching the held CRL, or an older one, counts `unchanged`.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { issue, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness, type LogLine } from '../support/harness.js'
import { closed, connectDevice, nextMessage } from '../support/device.js'
import { opensslCrl } from '../support/openssl-crl.js'
import { crlDer } from '../../control/crl-service.js'

let h: Harness
let ca: Issued
let server: http.Server
let serve: (res: http.ServerResponse) => void = (res) => { res.writeHead(404).end() }

before(async () => {
  server = http.createServer((_req, res) => { serve(res) })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  const port = (server.address() as AddressInfo).port
  h = await startHarness({ CERTGATE_REFUSAL_MEMORY_S: '0' }, { crlFetch: { tickMs: 50, minRefreshMs: 100, maxRefreshMs: 300, timeoutMs: 400, maxBytes: 64 * 1024 } })
  ca = await issue({ cn: 'certgate Fetched CA', ca: true, crlUrls: [`http://127.0.0.1:${port}/ca.crl`] })
})
after(async () => {
  await h.close()
  server.closeAllConnections()
  await new Promise((resolve) => { server.close(resolve) })
})

/** Waits for a log line written after `from` (an index into the harness's log). */
async function logAfter (from: number, pred: (l: LogLine) => boolean, timeoutMs = 5000): Promise<LogLine> {
  return await h.waitForLog((l) => h.logs.indexOf(l) >= from && pred(l), timeoutMs)
}

async function fetchCount (outcome: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${h.gw.admin.port}/metrics`)).text()
  const m = new RegExp(`^certgate_crl_fetches_total\\{ca="fetched",outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)
  return m === null ? 0 : Number(m[1])
}

test('a CRL fetched from the CA certificate\'s distribution point closes a revoked device; garbage, timeouts and oversize change nothing', async () => {
  serve = (res) => { res.writeHead(404).end() }
  const empty = await opensslCrl({ ca, crlNumber: 1 })
  serve = (res) => { res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(empty) }
  let from = h.logs.length
  await h.registerCa('fetched', ca)
  await logAfter(from, (l) => l.event === 'crl_fetched' && (l as { outcome?: string }).outcome === 'updated')
  await logAfter(from, (l) => l.event === 'crl_fetched' && (l as { outcome?: string }).outcome === 'unchanged')
  assert.equal((await h.gw.registry.getCrl('fetched'))?.crlNumber, '1')

  await h.addDevice('fetch-1')
  const leaf = await issue({ cn: 'fetch-1', issuer: ca })
  const c = await connectDevice({ port: h.gw.device.port, serverCa: h.serverCa, leaf, chain: [] })

  const tooBig = Buffer.alloc(65 * 1024, 0x41)
  const bad: Array<[string, (res: http.ServerResponse) => void, RegExp]> = [
    ['garbage', (res) => { res.writeHead(200).end('not a CRL at all') }, /malformed|parse|base64|neither/i],
    ['silence', () => { /* never answers */ }, /within|silent/],
    ['oversize', (res) => { res.writeHead(200).end(tooBig) }, /more than 65536 bytes/],
    ['redirect', (res) => { res.writeHead(302, { location: 'file:///etc/passwd' }).end() }, /answered 302/]
  ]
  for (const [what, handler, message] of bad) {
    const failedBefore = await fetchCount('failed')
    serve = handler
    from = h.logs.length
    const line = await logAfter(from, (l) => l.event === 'crl_fetch_failed')
    assert.match(String((line as { err?: { message?: string } }).err?.message), message, what)
    assert.ok(await fetchCount('failed') > failedBefore, what)
    assert.equal((await h.gw.registry.getCrl('fetched'))?.crlNumber, '1', what)
    assert.ok(c.connected, what)
  }
  // Still forwarding: the failures touched nothing live.
  await c.subscribeAsync('fetch/t')
  const got = nextMessage(c, 'fetch/t', 3000)
  await c.publishAsync('fetch/t', 'still here')
  assert.equal(await got, 'still here')

  const revoking = crlDer(await opensslCrl({ ca, revoked: [leaf], crlNumber: 2 }))
  const updatedBefore = await fetchCount('updated')
  const gone = closed(c, 5000)
  serve = (res) => { res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(Buffer.from(revoking)) }
  await gone
  const line = await h.waitForLog((l) => l.event === 'closed' && l.deviceId === 'fetch-1' && l.reason === 'cert_revoked')
  assert.match(line.detail ?? '', /CRL/)
  assert.equal((await h.gw.registry.getCrl('fetched'))?.crlNumber, '2')
  assert.ok(await fetchCount('updated') > updatedBefore)
  c.end(true)

  // An older CRL than the one held (say a stale mirror) is refused by the service as
  // crl_older_than_held, which the fetcher counts as unchanged, not failed; the held one stays.
  const [unchangedBefore, failedBefore] = [await fetchCount('unchanged'), await fetchCount('failed')]
  let servedOld = (): void => {}
  const served = new Promise<void>((resolve) => { servedOld = resolve })
  serve = (res) => { res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(empty); servedOld() }
  await served
  // Set before the fetcher reads the answer (the continuation runs before the socket's next read),
  // so the next fetch outcome logged is this fetch's.
  from = h.logs.length
  const outcome = await logAfter(from, (l) => l.event === 'crl_fetched' || l.event === 'crl_fetch_failed')
  assert.equal((outcome as { outcome?: string }).outcome, 'unchanged', JSON.stringify(outcome))
  assert.ok(await fetchCount('unchanged') > unchangedBefore)
  assert.equal(await fetchCount('failed'), failedBefore)
  assert.equal((await h.gw.registry.getCrl('fetched'))?.crlNumber, '2')
})
