// Loopback port helpers for the servers tests and load tests start as child processes
// (Mosquitto, HAProxy, nginx, PostgreSQL).
import { connect, createServer } from 'node:net'

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      s.close(() => { resolve(typeof a === 'object' && a !== null ? a.port : 0) })
    })
  })
}

/** Waits until something accepts on 127.0.0.1:port; gives up when `exited()` or after the timeout. */
export async function waitForPort (port: number, exited: () => boolean, timeoutMs: number, name = 'the process'): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (exited()) throw new Error(`${name} exited`)
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1')
      c.once('connect', () => { c.destroy(); resolve(true) })
      c.once('error', () => { resolve(false) })
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`${name} did not listen on ${port} within ${timeoutMs} ms`)
}
