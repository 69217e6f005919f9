// Server processes under test, each a child process so its CPU can be read from /proc:
// certgate itself (the CLI's `start`) and a bare Node TLS server as the same-run baseline.
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export interface ServerProcess { readonly pid: number, readonly port: number, stop: () => Promise<void> }

function statFields (pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces and parentheses): state is [0], ppid [1].
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** The process and all its live descendants (a certgate process group's gateway processes), from /proc. */
export function processTree (pid: number): number[] {
  const children = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let ppid: number
    try { ppid = Number(statFields(Number(name))[1]) } catch { continue } // gone meanwhile
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)])
  }
  const out: number[] = []
  const todo = [pid]
  while (todo.length > 0 && out.length < 10_000) {
    const p = todo.pop() as number
    out.push(p)
    todo.push(...(children.get(p) ?? []))
  }
  return out
}

/**
 * CPU time (user + system, all threads) so far, in ms, from /proc/<pid>/stat, of the process and
 * every live descendant: a group started with CERTGATE_PROCESSES is measured whole.
 */
export function cpuMs (pid: number): number {
  let total = 0
  for (const p of processTree(pid)) {
    let fields: string[]
    try { fields = statFields(p) } catch { continue }
    // Fields 14 and 15 of stat (utime, stime), counted from after the command name, in clock ticks (100/s on Linux).
    total += (Number(fields[11]) + Number(fields[12])) * 10
  }
  return total
}

/** Resident set size of a process in bytes. */
export function rssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? 0) * 1024
}

async function waitForLine (child: ChildProcess, re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return await new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => { reject(new Error(`server did not start within ${timeoutMs} ms:\n${out}`)) }, timeoutMs)
    const onData = (d: Buffer): void => {
      out += d.toString()
      const m = re.exec(out)
      if (m !== null) { clearTimeout(timer); child.stdout?.off('data', onData); resolve(m) }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${out}`)) })
  })
}

function stopper (child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await exited
  }
}

export async function startCertgate (env: Record<string, string>, nodeArgs: readonly string[] = []): Promise<ServerProcess> {
  const cli = fileURLToPath(new URL('../../gateway/cli.js', import.meta.url))
  const child = spawn(process.execPath, [...nodeArgs, cli, 'start'], {
    env: { ...process.env, CERTGATE_LISTEN: '127.0.0.1:0', CERTGATE_ADMIN_LISTEN: '127.0.0.1:0', CERTGATE_LOG_LEVEL: 'error', CERTGATE_DRAIN_TIMEOUT_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const m = await waitForLine(child, /certgate listening device=[^ ]+:(\d+) admin=/, 20_000)
  child.stdout.resume()
  return { pid: child.pid ?? 0, port: Number(m[1]), stop: stopper(child) }
}

export async function startBareTls (args: { certFile: string, keyFile: string, caFile: string }): Promise<ServerProcess> {
  const script = fileURLToPath(new URL('../bare-tls-server.js', import.meta.url))
  const child = spawn(process.execPath, [script, args.certFile, args.keyFile, args.caFile], { stdio: ['ignore', 'pipe', 'pipe'] })
  const m = await waitForLine(child, /listening (\d+)/, 10_000)
  return { pid: child.pid ?? 0, port: Number(m[1]), stop: stopper(child) }
}
