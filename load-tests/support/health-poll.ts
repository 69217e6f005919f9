// Polls certgate's admin /healthz on a fixed schedule, each probe on a new TCP connection (as a
// Kubernetes probe does), and keeps every latency. Probes are not skipped when one is slow: a
// stalled event loop shows up as a row of long ones.
import { get } from 'node:http'

export interface HealthPoll {
  stop: () => Promise<{ probes: number, failures: number, latenciesMs: number[], maxMs: number, p99Ms: number }>
}

export function pollHealth (adminPort: number, everyMs: number, timeoutMs = 5000): HealthPoll {
  const latenciesMs: number[] = []
  const inFlight = new Set<Promise<void>>()
  let failures = 0
  const probe = (): void => {
    const t0 = performance.now()
    const p = new Promise<void>((resolve) => {
      const req = get({ host: '127.0.0.1', port: adminPort, path: '/healthz', agent: false, timeout: timeoutMs }, (res) => {
        res.resume()
        res.once('end', () => {
          if (res.statusCode === 200) latenciesMs.push(performance.now() - t0)
          else failures++
          resolve()
        })
      })
      req.once('timeout', () => { req.destroy(new Error('timeout')) })
      req.once('error', () => { failures++; resolve() })
    })
    inFlight.add(p)
    void p.then(() => inFlight.delete(p))
  }
  const timer = setInterval(probe, everyMs)
  probe()
  return {
    stop: async () => {
      clearInterval(timer)
      await Promise.all(inFlight)
      const sorted = [...latenciesMs].sort((a, b) => a - b)
      return { probes: latenciesMs.length + failures, failures, latenciesMs, maxMs: sorted[sorted.length - 1] ?? NaN, p99Ms: sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))] ?? NaN }
    }
  }
}
