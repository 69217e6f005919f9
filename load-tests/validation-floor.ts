// The floor of certgate's decision, for `FLOOR=1 npm run load:own-cost`: the handshake bench's bare
// Node mTLS proxy (../shared/tools/handshake-bench/bare-proxy.js, the same options and the same pump)
// plus only the work certgate may not skip on a warm chain: read the DER of what the device sent and
// decide it with certgate's own warm path (the leaf's parse, its one signature verify, the path's
// checks), compiled as `certgate start` compiles it (v8-tiering.ts). No registry, logs, metrics,
// tracking, refusal memory or promises. Its CPU per connection minus the bare proxy's is what the
// decision costs in place, between real handshakes; certgate minus it is everything else certgate
// does per connection.
//
//   node dist/load-tests/validation-floor.js PKI_DIR PORT UPSTREAM_PORT   (trusts PKI_DIR/root.crt)
import { constants, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { createServer } from 'node:tls'
import { createWarmPath } from '../gateway/validation/warm-path.js'
import { readPeerChain } from '../gateway/tls/peer-chain.js'
import { tierUpSooner } from '../gateway/cli/v8-tiering.js'

tierUpSooner()

const [pki, port, upstream] = process.argv.slice(2)
if (pki === undefined || port === undefined || upstream === undefined) {
  console.error('usage: node dist/load-tests/validation-floor.js PKI_DIR PORT UPSTREAM_PORT')
  process.exit(2)
}
const warm = createWarmPath({ cacheEntries: 1024 })
warm.setTrusted([{ name: 'root', der: new X509Certificate(readFileSync(`${pki}/root.crt`)).raw }])

const server = createServer({
  cert: readFileSync(`${pki}/server-fullchain.pem`),
  key: readFileSync(`${pki}/server.key`),
  requestCert: true,
  rejectUnauthorized: false,
  minVersion: 'TLSv1.2',
  secureOptions: constants.SSL_OP_NO_TICKET,
  noDelay: true
}, (device) => {
  const sent = readPeerChain(device)
  // Cold (the first chains): learned as certgate learns from its pool, then decided warm.
  let verdict = sent === undefined ? undefined : warm.decide(sent.leaf, sent.intermediates)
  if (sent !== undefined && verdict === undefined) {
    warm.learn(sent.leaf, sent.intermediates)
    verdict = warm.decide(sent.leaf, sent.intermediates)
  }
  if (verdict?.kind !== 'done' || !verdict.outcome.chain.ok) {
    console.error(`refused: ${JSON.stringify(verdict?.kind === 'done' ? verdict.outcome.chain : verdict)}`)
    device.destroy()
    return
  }
  const up = connect(Number(upstream), '127.0.0.1')
  up.setNoDelay(true)
  device.pipe(up)
  up.pipe(device)
  device.on('error', () => up.destroy())
  up.on('error', () => device.destroy())
  device.on('close', () => up.destroy())
  up.on('close', () => device.destroy())
})
server.listen(Number(port), '127.0.0.1')
