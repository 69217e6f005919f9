// A test HTTP upstream (node:http) recording every request's headers, with routes for the http-mode
// tests: /echo streams the request body back, /stream sends a first chunk and holds the rest until
// released, /slow never answers, anything else answers 200 "hi". Upgrades are WebSocket echoes
// (the ws package) that also record their headers.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { WebSocketServer } from 'ws'

export interface HttpUpstream {
  readonly port: number
  readonly requests: Array<{ method: string, url: string, headers: IncomingHttpHeaders }>
  readonly upgrades: Array<{ url: string, headers: IncomingHttpHeaders }>
  /** Lets a /stream response finish. */
  release: () => void
  /** Resolves when the first chunk of an /echo-upload request body has arrived. */
  uploadStarted: Promise<void>
  close: () => Promise<void>
}

export async function startHttpUpstream (port = 0): Promise<HttpUpstream> {
  const requests: HttpUpstream['requests'] = []
  const upgrades: HttpUpstream['upgrades'] = []
  let release = (): void => undefined
  const held = new Promise<void>((resolve) => { release = resolve })
  let uploadStarted = (): void => undefined
  const started = new Promise<void>((resolve) => { uploadStarted = resolve })
  const sockets = new Set<Socket>()
  const server = createServer((req, res: ServerResponse) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    if (req.url === '/echo') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      req.once('data', () => { uploadStarted() })
      req.pipe(res)
    } else if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('first;')
      void held.then(() => { res.end('second') })
    } else if (req.url === '/slow') {
      // never answers
    } else {
      req.resume()
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes' }).end('hi')
    }
  })
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  const wss = new WebSocketServer({ noServer: true })
  server.on('upgrade', (req, socket, head) => {
    upgrades.push({ url: req.url ?? '', headers: req.headers })
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => { ws.send(data, { binary: isBinary }) })
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no address')
  return {
    port: addr.port,
    requests,
    upgrades,
    release: () => { release() },
    uploadStarted: started,
    close: async () => {
      for (const c of wss.clients) c.terminate()
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}
