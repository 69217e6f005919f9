// The keep-alive scenario's upstream: a plain node:http server answering every request 200 with a
// small body, keep-alive without limit. Its own process, so neither the load generator nor the
// proxies under test share its event loop. Prints "port=<n>" once listening; SIGTERM ends it.
import { createServer } from 'node:http'

const body = Buffer.from('{"ok":true}')
const server = createServer({ keepAliveTimeout: 300_000 }, (req, res) => {
  req.resume()
  req.once('end', () => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }).end(body) })
})
server.listen(0, '127.0.0.1', () => {
  const a = server.address()
  console.log(`port=${typeof a === 'object' && a !== null ? a.port : 0}`)
})
process.on('SIGTERM', () => { server.closeAllConnections(); server.close(() => process.exit(0)) })
