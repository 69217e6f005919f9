// What this proves: the OCSP checker spares a responder that is down or slow. After no responder
// of a CA answered, its connections get "no answer" at once for the known-down window (policy
// `closed` closes them with `ocsp_unavailable`) without another request; and however many
// connections arrive together, at most `maxInflight` exchanges run at once. Uses a plain node HTTP
// server as the responder (it never needs to answer well here) and an in-memory registry.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { issue } from '../../pki/issue.js'
import { sha256Hex } from '../../../workers/validate-chain.js'
import { createOcspChecker, type OcspTiming } from '../ocsp-checker.js'
import type { CaRecord, Registry } from '../../registry/types.js'
import type { LiveConnections, LiveEntry } from '../../live/live-connections.js'
import type { CloseReason } from '../../reasons.js'

async function responder (handle: (res: http.ServerResponse) => void): Promise<{ url: string, requests: () => number, close: () => Promise<void> }> {
  let n = 0
  const server = http.createServer((req, res) => { n++; req.resume(); req.on('end', () => { handle(res) }) })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    requests: () => n,
    close: async () => { server.closeAllConnections(); await new Promise((resolve) => { server.close(resolve) }) }
  }
}

async function setup (url: string, timing: Partial<OcspTiming>) {
  const ca = await issue({ cn: 'certgate checker CA', ca: true })
  const record = { name: 'ca', certificateDer: ca.der, thumbprint: sha256Hex(ca.der), isVerified: true, settings: { crlUrls: [], ocsp: { responders: [url], policy: 'closed' } } }
  const registry = { listCas: async () => [record as unknown as CaRecord], onChange: () => () => undefined } as unknown as Registry
  const entries: LiveEntry[] = []
  const live = { byDevice: (id: string) => entries.filter((e) => e.identity.deviceId === id) } as unknown as LiveConnections
  const checker = createOcspChecker({ registry, live, onExchange: () => undefined, onError: (err) => { throw err }, timing: { refreshTickMs: 60_000, ...timing } })
  const closes: Array<{ id: string, reason: CloseReason, detail: string }> = []
  const closedOne = (): Promise<void> => new Promise((resolve) => { waiters.push(resolve) })
  const waiters: Array<() => void> = []
  const connect = (i: number): void => {
    const id = `dev-${i}`
    const entry: LiveEntry = {
      identity: {
        deviceId: id, authType: 'certificateAuthority', caName: 'ca', thumbprint: `leaf-${i}`, notAfter: Date.now() + 3_600_000, leafNotAfter: Date.now() + 3_600_000,
        path: [{ thumbprint: `leaf-${i}`, issuer: '', serial: (0x1000 + i).toString(16) }, { thumbprint: record.thumbprint, issuer: '', serial: '' }]
      },
      listener: 'device',
      openedAt: Date.now(),
      close: (reason, detail) => { closes.push({ id, reason, detail }); waiters.shift()?.() },
      flushBytes: () => undefined
    }
    entries.push(entry)
    checker.watch(entry, { intermediates: [] })
  }
  return { checker, closes, closedOne, connect }
}

test('a CA whose responders failed is not asked again in the known-down window; policy closed closes at once', async (t) => {
  const r = await responder((res) => { res.writeHead(500).end() })
  const s = await setup(r.url, { unreachableMs: 60_000 })
  t.after(async () => { s.checker.stop(); await r.close() })
  const first = s.closedOne()
  s.connect(1)
  await first
  assert.equal(r.requests(), 1)
  const [c1] = s.closes
  assert.ok(c1 !== undefined)
  assert.equal(c1.reason, 'ocsp_unavailable')
  assert.match(c1.detail, /answered HTTP 500/)

  const more = [s.closedOne(), s.closedOne(), s.closedOne()]
  for (const i of [2, 3, 4]) s.connect(i)
  await Promise.all(more)
  assert.deepEqual(s.closes.map((c) => c.reason), ['ocsp_unavailable', 'ocsp_unavailable', 'ocsp_unavailable', 'ocsp_unavailable'])
  assert.match(s.closes[3]?.detail ?? '', /known down/)
  assert.equal(r.requests(), 1, 'no request while the CA is known down')
})

test('at most maxInflight exchanges run at once', async (t) => {
  let inFlight = 0
  let most = 0
  const held: http.ServerResponse[] = []
  const r = await responder((res) => { inFlight++; most = Math.max(most, inFlight); held.push(res) })
  const s = await setup(r.url, { maxInflight: 2, unreachableMs: 1 })
  t.after(async () => { s.checker.stop(); await r.close() })
  const all = Array.from({ length: 6 }, () => s.closedOne())
  for (let i = 1; i <= 6; i++) s.connect(i)
  // Answer (badly) whatever is waiting, one batch at a time, until every connection is decided.
  while (s.closes.length < 6) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    for (const res of held.splice(0)) { inFlight--; res.writeHead(503).end() }
  }
  await Promise.all(all)
  assert.ok(most <= 2, `${most} exchanges at once`)
  assert.ok(r.requests() >= 2)
})
