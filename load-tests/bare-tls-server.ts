// The same-run baseline: a bare Node TLS server that verifies client chains natively (OpenSSL,
// `ca` = the root), tickets off, and writes one byte to each authorized client. certgate's
// numbers are quoted as ratios to this. Usage: node bare-tls-server.js cert.pem key.pem ca.pem
import { readFileSync } from 'node:fs'
import { constants } from 'node:crypto'
import { createServer } from 'node:tls'

const [certFile, keyFile, caFile] = process.argv.slice(2)
if (certFile === undefined || keyFile === undefined || caFile === undefined) throw new Error('usage: bare-tls-server cert key ca')
const server = createServer({
  cert: readFileSync(certFile), key: readFileSync(keyFile), ca: readFileSync(caFile),
  requestCert: true, rejectUnauthorized: true, secureOptions: constants.SSL_OP_NO_TICKET
}, (socket) => {
  socket.on('error', () => undefined)
  if (socket.authorized) socket.write('A')
  else socket.destroy()
})
server.on('tlsClientError', () => undefined)
server.listen(0, '127.0.0.1', () => {
  const a = server.address()
  process.stdout.write(`listening ${typeof a === 'object' && a !== null ? a.port : 0}\n`)
})
process.on('SIGTERM', () => { process.exit(0) })
