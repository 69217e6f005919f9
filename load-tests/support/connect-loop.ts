// Connect storms: every attempt is a new TLS connection (a full handshake: the servers have
// tickets off and no session is offered), waiting for the first byte from upstream
// (= authenticated and forwarded), then closing. Two shapes, both bounded in time:
// - closed loop: `concurrency` loops going again as soon as one finishes (the maximum rate);
// - open loop (paced): attempts start at a fixed rate whatever happens (latency at a given load).
import { connect, type SecureContext } from 'node:tls'

export interface LoopResult {
  readonly completed: number
  readonly failed: number
  /** Time from connect() to the first byte from upstream, ms, per completed connection. */
  readonly latenciesMs: number[]
  /** Completed connections per BIN_MS bin since the start. */
  readonly perBin: number[]
  readonly elapsedMs: number
}

export const BIN_MS = 250

interface Tally { latenciesMs: number[], perBin: number[], failed: number }

function attempt (port: number, ctx: SecureContext, started: number, tally: Tally, timeoutMs: number): Promise<void> {
  const t0 = performance.now()
  return new Promise<void>((resolve) => {
    const s = connect({ host: '127.0.0.1', port, secureContext: ctx, servername: 'localhost' })
    const timer = setTimeout(() => { tally.failed++; s.destroy(); resolve() }, timeoutMs)
    s.once('data', () => {
      const t = performance.now()
      tally.latenciesMs.push(t - t0)
      const bin = Math.floor((t - started) / BIN_MS)
      tally.perBin[bin] = (tally.perBin[bin] ?? 0) + 1
      clearTimeout(timer)
      s.destroy()
      resolve()
    })
    s.once('error', () => { clearTimeout(timer); tally.failed++; resolve() })
    // Closed before any byte: refused.
    s.once('close', () => { if (s.bytesRead === 0) { clearTimeout(timer); tally.failed++ } resolve() })
  })
}

function result (tally: Tally, started: number): LoopResult {
  return { completed: tally.latenciesMs.length, failed: tally.failed, latenciesMs: tally.latenciesMs, perBin: Array.from(tally.perBin, (v: number | undefined) => v ?? 0), elapsedMs: performance.now() - started }
}

export async function runConnectLoop (opts: { port: number, contexts: readonly SecureContext[], concurrency: number, durationMs: number, timeoutMs?: number }): Promise<LoopResult> {
  const started = performance.now()
  const deadline = started + opts.durationMs
  const tally: Tally = { latenciesMs: [], perBin: [], failed: 0 }
  let next = 0
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const ctx = opts.contexts[next++ % opts.contexts.length]
      if (ctx !== undefined) await attempt(opts.port, ctx, started, tally, opts.timeoutMs ?? 10_000)
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, loop))
  return result(tally, started)
}

/** Starts `ratePerSec` attempts per second for `durationMs`, whatever their fate, then waits for them. */
export async function runPaced (opts: { port: number, contexts: readonly SecureContext[], ratePerSec: number, durationMs: number, timeoutMs?: number }): Promise<LoopResult> {
  const started = performance.now()
  const tally: Tally = { latenciesMs: [], perBin: [], failed: 0 }
  const pending: Array<Promise<void>> = []
  const total = Math.max(1, Math.floor(opts.ratePerSec * opts.durationMs / 1000))
  for (let i = 0; i < total; i++) {
    // Catch up on the schedule rather than drift: timers fire late under load.
    const due = started + (i * 1000) / opts.ratePerSec
    const wait = due - performance.now()
    if (wait > 1) await new Promise((r) => setTimeout(r, wait))
    const ctx = opts.contexts[i % opts.contexts.length]
    if (ctx !== undefined) pending.push(attempt(opts.port, ctx, started, tally, opts.timeoutMs ?? 10_000))
  }
  await Promise.all(pending)
  return result(tally, started)
}

export function percentile (values: readonly number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

export function median (values: readonly number[]): number {
  return percentile(values, 50)
}
