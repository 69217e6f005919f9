// Drives several fleet-client child processes as one fleet: splits the devices, builds their TLS
// contexts in parallel, starts them together, merges what they measured. Children are ended by
// PID (SIGKILL) if they do not close when told.
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ChildMessage, DoneMessage, SetupMessage } from '../fleet-client.js'
import { spawnWithNofile } from './servers.js'
import type { DeviceCert } from './fleet.js'

export interface FleetRun {
  readonly connected: number
  readonly failures: Record<string, number>
  readonly latenciesMs: number[]
  readonly perBin: number[]
  /** "go" → the last child finished, ms (the wall time until everyone is connected or failed). */
  readonly elapsedMs: number
}

export interface FleetClients {
  /** Starts every connection at once (bounded per child); resolves when all settled. */
  go: () => Promise<FleetRun>
  /** Closes every connection and ends the children. */
  close: () => Promise<void>
  readonly pids: readonly number[]
}

function next (child: ChildProcess, kind: ChildMessage['kind'], timeoutMs: number): Promise<ChildMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error(`fleet client ${child.pid}: no "${kind}" within ${timeoutMs} ms`)) }, timeoutMs)
    const onMessage = (m: ChildMessage): void => { if (m.kind === kind) { cleanup(); resolve(m) } }
    const onExit = (code: number | null): void => { cleanup(); reject(new Error(`fleet client ${child.pid} exited with ${code} while waiting for "${kind}"`)) }
    const cleanup = (): void => { clearTimeout(timer); child.off('message', onMessage); child.off('exit', onExit) }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

export async function startFleetClients (opts: {
  processes: number
  port: number
  devices: readonly DeviceCert[]
  chainPem: string
  serverCaPem: string
  /** In-flight connections per process. */
  concurrency: number
  sources: number
  timeoutMs: number
  hold: boolean
}): Promise<FleetClients> {
  const script = fileURLToPath(new URL('../fleet-client.js', import.meta.url))
  const n = Math.max(1, Math.min(opts.processes, opts.devices.length))
  const children: ChildProcess[] = []
  for (let k = 0; k < n; k++) {
    const child = spawnWithNofile(65536, process.execPath, [script], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.push(child)
  }
  const per = Math.ceil(opts.devices.length / n)
  const ready = children.map(async (child, k) => {
    const setup: SetupMessage = { kind: 'setup', port: opts.port, devices: opts.devices.slice(k * per, (k + 1) * per), chainPem: opts.chainPem, serverCaPem: opts.serverCaPem, concurrency: opts.concurrency, sources: opts.sources, timeoutMs: opts.timeoutMs, hold: opts.hold }
    const answer = next(child, 'ready', 300_000)
    child.send(setup)
    return await answer
  })
  try {
    await Promise.all(ready)
  } catch (err) {
    for (const c of children) c.kill('SIGKILL')
    throw err
  }
  return {
    pids: children.map((c) => c.pid ?? 0),
    go: async () => {
      const t0 = performance.now()
      const answers = children.map((c) => next(c, 'done', 30 * 60_000))
      for (const c of children) c.send({ kind: 'go' })
      const done = await Promise.all(answers) as DoneMessage[]
      const elapsedMs = performance.now() - t0
      const failures: Record<string, number> = {}
      const perBin: number[] = []
      for (const d of done) {
        for (const [k, v] of Object.entries(d.failures)) failures[k] = (failures[k] ?? 0) + v
        d.perBin.forEach((v, i) => { perBin[i] = (perBin[i] ?? 0) + v })
      }
      return { connected: done.reduce((a, d) => a + d.connected, 0), failures, latenciesMs: done.flatMap((d) => d.latenciesMs), perBin: Array.from(perBin, (v: number | undefined) => v ?? 0), elapsedMs }
    },
    close: async () => {
      await Promise.all(children.map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null) return
        const exited = new Promise((resolve) => c.once('exit', resolve))
        const timer = setTimeout(() => c.kill('SIGKILL'), 15_000)
        try { c.send({ kind: 'close' }) } catch { c.kill('SIGKILL') }
        await exited
        clearTimeout(timer)
      }))
    }
  }
}
