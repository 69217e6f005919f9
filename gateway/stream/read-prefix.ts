// Reading what a peer sends first (a PROXY header, an MQTT CONNECT) before anyone else reads the
// stream: bytes are gathered until `examine` decides, the peer closes, or time runs out; whatever
// the decision did not consume is put back for the next reader.
import type { Duplex } from 'node:stream'

export type Examined<T> = { readonly result: T, /** bytes of the buffer taken; the rest is put back */ readonly consumed: number } | undefined

export interface ReadPrefixOptions<T> {
  readonly timeoutMs: number
  /** Looks at everything received so far: a decision, or undefined to wait for more. */
  readonly examine: (received: Buffer) => Examined<T>
  readonly closed: (received: Buffer) => T
  readonly timedOut: (received: Buffer) => T
}

export async function readPrefix<T> (stream: Duplex, opts: ReadPrefixOptions<T>): Promise<T> {
  return await new Promise((resolve) => {
    let received: Buffer = Buffer.alloc(0)
    const done = (result: T, consumed: number): void => {
      clearTimeout(timer)
      stream.off('data', onData)
      stream.off('close', onClose)
      stream.pause()
      if (consumed < received.length) stream.unshift(received.subarray(consumed))
      resolve(result)
    }
    const onClose = (): void => { done(opts.closed(received), received.length) }
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk])
      const decided = opts.examine(received)
      if (decided !== undefined) done(decided.result, decided.consumed)
    }
    const timer = setTimeout(() => { done(opts.timedOut(received), received.length) }, opts.timeoutMs)
    stream.on('data', onData)
    stream.on('close', onClose)
    stream.resume()
  })
}
