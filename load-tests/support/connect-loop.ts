// Closed-loop connect storm: `concurrency` loops, each opening a new TLS connection (a full
// handshake: the server has tickets off and no session is offered), waiting for the server's
// first byte (= authenticated), closing, and going again, until the time is up. Bounded in time.
import { connect, type SecureContext } from 'node:tls'

export interface LoopResult {
  readonly completed: number
  readonly failed: number
  /** Time from connect() to the first byte from upstream, ms, per completed connection. */
  readonly latenciesMs: number[]
  /** Completed connections per whole second since the start. */
  readonly perSecond: number[]
  readonly elapsedMs: number
}

export async function runConnectLoop (opts: { port: number, contexts: readonly SecureContext[], concurrency: number, durationMs: number, timeoutMs?: number }): Promise<LoopResult> {
  const started = performance.now()
  const deadline = started + opts.durationMs
  const latenciesMs: number[] = []
  const perSecond: number[] = []
  let failed = 0
  let next = 0

  const once = async (ctx: SecureContext): Promise<void> => {
    const t0 = performance.now()
    await new Promise<void>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: opts.port, secureContext: ctx, servername: 'localhost' })
      const timer = setTimeout(() => { failed++; s.destroy(); resolve() }, opts.timeoutMs ?? 10_000)
      s.once('data', () => {
        const t = performance.now()
        latenciesMs.push(t - t0)
        const sec = Math.floor((t - started) / 1000)
        perSecond[sec] = (perSecond[sec] ?? 0) + 1
        clearTimeout(timer)
        s.destroy()
        resolve()
      })
      s.once('error', () => { clearTimeout(timer); failed++; resolve() })
      s.once('close', () => { clearTimeout(timer); resolve() })
    })
  }
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const ctx = opts.contexts[next++ % opts.contexts.length]
      if (ctx !== undefined) await once(ctx)
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, loop))
  return { completed: latenciesMs.length, failed, latenciesMs, perSecond: Array.from(perSecond, (v: number | undefined) => v ?? 0), elapsedMs: performance.now() - started }
}

export function percentile (values: readonly number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

export function median (values: readonly number[]): number {
  return percentile(values, 50)
}
