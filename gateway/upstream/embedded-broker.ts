// The default upstream when none is configured: a real MQTT broker (aedes) on a loopback port,
// so a newcomer can connect a device end to end at once. Only importer of aedes.
import { createServer } from 'node:net'
import { Aedes } from 'aedes'
import type { HostPort } from './forwarder.js'

export interface EmbeddedBroker extends HostPort { close: () => Promise<void> }

export async function startEmbeddedBroker (): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker()
  const server = createServer((socket) => { broker.handle(socket) })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { resolve() })
  })
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('embedded broker has no TCP address')
  return {
    host: '127.0.0.1',
    port: address.port,
    close: async () => {
      const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
      await new Promise<void>((resolve) => { broker.close(() => { resolve() }) })
      await closed
    }
  }
}
