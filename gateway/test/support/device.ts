// A device for tests: mqtt.js over real TLS with a client certificate (and its chain).
import mqtt, { type MqttClient } from 'mqtt'
import type { Issued } from '../../pki/issue.js'

export interface DeviceOptions {
  readonly port: number
  readonly serverCa: string
  readonly leaf?: Issued
  /** Intermediates sent after the leaf, in this order. */
  readonly chain?: readonly Issued[]
  /** Defaults to the leaf's CN. */
  readonly clientId?: string
  readonly protocolVersion?: 4 | 5
  readonly username?: string
}

/** Connects and waits for CONNACK; rejects with the error or close that came instead. */
export async function connectDevice (opts: DeviceOptions): Promise<MqttClient> {
  const client = mqtt.connect({
    protocol: 'mqtts',
    host: '127.0.0.1',
    port: opts.port,
    ca: opts.serverCa,
    servername: 'localhost',
    ...(opts.leaf === undefined ? {} : { key: opts.leaf.keyPem, cert: opts.leaf.pem + (opts.chain ?? []).map((c) => c.pem).join('') }),
    clientId: opts.clientId ?? opts.leaf?.subjectCn ?? 'anonymous',
    protocolVersion: opts.protocolVersion ?? 4,
    ...(opts.username === undefined ? {} : { username: opts.username }),
    reconnectPeriod: 0,
    connectTimeout: 5000
  })
  return await new Promise((resolve, reject) => {
    const onError = (err: Error): void => { done(); client.end(true); reject(err) }
    const onClose = (): void => { onError(new Error('connection closed before CONNACK')) }
    // Remove only our own listeners: mqtt.js keeps its own 'close' handling.
    const done = (): void => { client.off('error', onError); client.off('close', onClose) }
    client.once('connect', () => { done(); resolve(client) })
    client.once('error', onError)
    client.once('close', onClose)
  })
}

/** Resolves with the first message on `topic`. */
/**
 * Connects, retrying every 100 ms for a bounded while: a change made through another gateway (a
 * CA registered, a device enrolled) reaches this one's validator asynchronously.
 */
export async function connectDeviceSoon (opts: DeviceOptions, withinMs: number): Promise<MqttClient> {
  const end = Date.now() + withinMs
  for (;;) {
    try {
      return await connectDevice(opts)
    } catch (err) {
      if (Date.now() > end) throw err
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

export async function nextMessage (client: MqttClient, topic: string, timeoutMs = 5000): Promise<string> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no message on ${topic} within ${timeoutMs} ms`)) }, timeoutMs)
    client.on('message', (t, payload) => { if (t === topic) { clearTimeout(timer); resolve(payload.toString()) } })
  })
}

export async function closed (client: MqttClient, timeoutMs = 3000): Promise<number> {
  const started = Date.now()
  return await new Promise((resolve, reject) => {
    if (!client.connected) { resolve(0); return }
    const timer = setTimeout(() => { reject(new Error(`client still connected after ${timeoutMs} ms`)) }, timeoutMs)
    client.once('close', () => { clearTimeout(timer); resolve(Date.now() - started) })
  })
}

/** Subscribes to `topic`, publishes to it and waits for the message: the connection still carries traffic. */
export async function roundTrip (client: MqttClient, topic: string): Promise<void> {
  await client.subscribeAsync(topic)
  const got = nextMessage(client, topic, 3000)
  await client.publishAsync(topic, 'still here')
  const message = await got
  if (message !== 'still here') throw new Error(`round trip on ${topic} returned ${JSON.stringify(message)}`)
}
