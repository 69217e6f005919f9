// A real HAProxy (Debian's package) in TCP mode, started by a test with its own config in the
// foreground, stopped by PID: the load balancer of the scale-out deployment (docs/operations.md).
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { waitForPort } from './ports.js'

export interface HaProxy { readonly log: () => string, stop: () => Promise<void> }

export function haproxyBinary (): string {
  for (const p of ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy']) if (existsSync(p)) return p
  throw new Error('haproxy is not installed (apt-get install haproxy); .ci/run installs it')
}

export async function startHaProxy (config: string, listenPort: number): Promise<HaProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-haproxy-'))
  const file = join(dir, 'haproxy.cfg')
  writeFileSync(file, config)
  const child = spawn(haproxyBinary(), ['-f', file, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  child.stdout.on('data', (d: Buffer) => { log += d.toString() })
  child.stderr.on('data', (d: Buffer) => { log += d.toString() })
  try {
    await waitForPort(listenPort, () => child.exitCode !== null, 10_000, 'haproxy')
  } catch (err) {
    child.kill('SIGKILL')
    throw new Error(`${(err as Error).message}\n${log}`)
  }
  return {
    log: () => log,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        await exited
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
