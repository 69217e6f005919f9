// Server processes under test, each a child process so its CPU and memory can be read from
// /proc: certgate itself (the CLI's `start`), a bare Node TLS server as the same-run baseline,
// and helpers shared with nginx and Mosquitto (support/nginx.ts, support/mosquitto.ts).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface ServerProcess {
  readonly pid: number
  readonly port: number
  /** The admin listener (certgate only): /healthz and /metrics. */
  readonly adminPort?: number
  /** Every process whose CPU counts as the server's (nginx: master and workers). */
  readonly pids: () => number[]
  stop: () => Promise<void>
}

/** CPU time (user + system, all threads) of a process so far, in ms, from /proc/<pid>/stat. */
export function cpuMs (pid: number): number {
  return statCpuMs(readFileSync(`/proc/${pid}/stat`, 'utf8'))
}

function statCpuMs (stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // Fields 14 and 15 of stat (utime, stime), counted from after the command name, in clock ticks (100/s on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/** Summed CPU ms of several processes (a process that is gone counts 0). */
export function cpuMsOf (pids: readonly number[]): number {
  let sum = 0
  for (const pid of pids) {
    try { sum += cpuMs(pid) } catch { /* exited */ }
  }
  return sum
}

/** CPU ms per thread of one process, keyed "comm/tid" (thread names tell main, workers, libuv apart). */
export function threadCpuMs (pid: number): Map<string, number> {
  const out = new Map<string, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      out.set(`${comm}/${tid}`, statCpuMs(stat))
    } catch { /* thread ended */ }
  }
  return out
}

/** The process and all its live descendants (a certgate process group's gateway processes), from /proc. */
export function processTree (pid: number): number[] {
  const out: number[] = []
  const todo = [pid]
  while (todo.length > 0 && out.length < 10_000) {
    const p = todo.pop() as number
    out.push(p)
    todo.push(...childPids(p))
  }
  return out
}

/** Direct children of a process (nginx workers), from /proc/<pid>/stat's ppid field. */
export function childPids (ppid: number): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === ppid) out.push(Number(name))
    } catch { /* exited */ }
  }
  return out
}

/** Resident set size of a process in bytes. */
export function rssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? 0) * 1024
}

/** The soft open-files limit a process really runs with. */
export function openFilesLimit (pid: number): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1] ?? 0)
}

/**
 * Runs `command` with its open-files limit raised to `nofile` where the shell may (root may raise
 * the hard limit; others up to it). The child's real limit is checked by the caller with
 * openFilesLimit(), which then says what to do if it is too low.
 */
export function spawnWithNofile (nofile: number, command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const script = `ulimit -Hn ${nofile} 2>/dev/null; ulimit -n ${nofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`
  return spawn('/bin/sh', ['-c', script, command, ...args], options)
}

export async function waitForLine (child: ChildProcess, re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return await new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => { reject(new Error(`server did not start within ${timeoutMs} ms:\n${out}`)) }, timeoutMs)
    const onData = (d: Buffer): void => {
      out += d.toString()
      const m = re.exec(out)
      if (m !== null) { clearTimeout(timer); child.stdout?.off('data', onData); child.off('exit', onExit); resolve(m) }
    }
    const onExit = (code: number | null): void => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${out}`)) }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
    child.once('exit', onExit)
  })
}

/** SIGTERM, then SIGKILL if the process is still there after `graceMs`. By PID only. */
export function stopper (child: ChildProcess, graceMs = 10_000): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }
}

export interface CertgateOptions {
  readonly env: Record<string, string>
  /** Extra node flags (--cpu-prof ...). */
  readonly nodeArgs?: readonly string[]
  /** Open-files limit for the gateway (two per forwarded connection, plus the pool and listeners). */
  readonly nofile?: number
  /** Another build's dist/gateway/cli.js (before/after comparisons in one run); default this build's. */
  readonly cli?: string
  /** Run once it listens, before this resolves: enrolls the fleet through the admin API (token from the data directory). */
  readonly enroll?: (admin: { url: string, token: string }) => Promise<void>
}

export async function startCertgate (opts: CertgateOptions): Promise<ServerProcess> {
  const cli = opts.cli ?? fileURLToPath(new URL('../../gateway/cli.js', import.meta.url))
  const args = [...(opts.nodeArgs ?? []), cli, 'start']
  const options: SpawnOptions = {
    env: { ...process.env, CERTGATE_LISTEN: '127.0.0.1:0', CERTGATE_ADMIN_LISTEN: '127.0.0.1:0', CERTGATE_LOG_LEVEL: 'error', CERTGATE_DRAIN_TIMEOUT_MS: '0', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe']
  }
  const child = opts.nofile === undefined ? spawn(process.execPath, args, options) : spawnWithNofile(opts.nofile, process.execPath, args, options)
  const m = await waitForLine(child, /certgate listening device=[^ ]+:(\d+) admin=[^ ]+:(\d+)/, 30_000)
  child.stdout?.resume()
  child.stderr?.resume()
  const pid = child.pid ?? 0
  // With CERTGATE_PROCESSES > 1 the group's gateway processes count too.
  const server = { pid, port: Number(m[1]), adminPort: Number(m[2]), pids: () => processTree(pid), stop: stopper(child) }
  if (opts.enroll !== undefined) {
    const dataDir = opts.env.CERTGATE_DATA_DIR ?? './data'
    const token = opts.env.CERTGATE_ADMIN_TOKEN ?? readFileSync(join(dataDir, 'admin-token'), 'utf8').trim()
    try {
      await opts.enroll({ url: `http://127.0.0.1:${server.adminPort}`, token })
    } catch (err) {
      await server.stop()
      throw err
    }
  }
  return server
}

export async function startBareTls (args: { certFile: string, keyFile: string, caFile: string }): Promise<ServerProcess> {
  const script = fileURLToPath(new URL('../bare-tls-server.js', import.meta.url))
  const child = spawn(process.execPath, [script, args.certFile, args.keyFile, args.caFile], { stdio: ['ignore', 'pipe', 'pipe'] })
  const m = await waitForLine(child, /listening (\d+)/, 10_000)
  const pid = child.pid ?? 0
  return { pid, port: Number(m[1]), pids: () => [pid], stop: stopper(child) }
}
