// certgate counts its own microseconds per connection, item by item, when asked
// (CERTGATE_COST_REPORT_EVERY=N): the event loop's CPU time around each step of handleConnection,
// summed, and logged as one `connection_costs` line every N authenticated connections. This is
// how docs/benchmarks-performance.md's budget is measured: per-thread CPU inside the process
// running the real handshakes, so the load generator and the rest of a shared machine do not
// blur it the way a wall-clock profile does. Off (the default), every lap is a call to a shared
// object that does nothing.
import type { Logger } from 'pino'

/** The steps of an authenticated connection whose synchronous CPU is counted (DESIGN.md §2). */
export const COST_ITEMS = ['read_chain', 'validate', 'authorize', 'track', 'open_upstream', 'record', 'untrack'] as const
export type CostItem = typeof COST_ITEMS[number]

export interface Stopwatch {
  /** Charges the CPU since the last lap (or start) to `item`. */
  lap: (item: CostItem) => void
  /** Restarts the watch without charging anything (after an await: the wait is not certgate's CPU). */
  resume: () => void
  /** One authenticated connection is complete. */
  done: () => void
}

export interface ConnectionCosts { start: () => Stopwatch }

const OFF: Stopwatch = { lap: () => undefined, resume: () => undefined, done: () => undefined }

// The event loop's own CPU (Node ≥ 22.19); on older runtimes the process's (threads included).
const threadCpu = (process as { threadCpuUsage?: () => NodeJS.CpuUsage }).threadCpuUsage?.bind(process) ?? (() => process.cpuUsage())
const micros = (): number => { const u = threadCpu(); return u.user + u.system }

/** `cpu`: the CPU clock in µs (tests give their own). */
export function createConnectionCosts (every: number, log: Pick<Logger, 'info'>, cpu: () => number = micros): ConnectionCosts {
  if (every <= 0) return { start: () => OFF }
  // Each item is averaged over the connections that reached it (a refused device never opens an upstream).
  const spent = new Map<CostItem, { micros: number, times: number }>()
  const reset = (): void => { for (const i of COST_ITEMS) spent.set(i, { micros: 0, times: 0 }) }
  reset()
  let connections = 0
  const report = (): void => {
    const microseconds = Object.fromEntries(COST_ITEMS.map((i) => {
      const s = spent.get(i) as { micros: number, times: number }
      return [i, s.times === 0 ? 0 : Math.round(s.micros / s.times * 10) / 10]
    }))
    const total = Math.round(Object.values(microseconds).reduce((a, b) => a + b, 0) * 10) / 10
    log.info({ event: 'connection_costs', connections, microseconds, total }, 'certgate CPU per authenticated connection, µs by step (event loop)')
    reset()
    connections = 0
  }
  return {
    start: () => {
      let last = cpu()
      return {
        lap: (item) => {
          const t = cpu()
          const s = spent.get(item) as { micros: number, times: number }
          s.micros += t - last
          s.times++
          last = t
        },
        resume: () => { last = cpu() },
        done: () => { if (++connections >= every) report() }
      }
    }
  }
}
