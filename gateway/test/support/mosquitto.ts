// A real Mosquitto broker (Debian package) on a free loopback port, configured by the test.
import { spawn } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForPort } from './ports.js'

export interface Mosquitto { readonly port: number, readonly log: () => string, stop: () => Promise<void> }

export function mosquittoBinary (): string {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) if (existsSync(p)) return p
  throw new Error('mosquitto is not installed (apt-get install mosquitto); .ci/run installs it')
}

/** Starts Mosquitto with extra config lines (an ACL, say); anonymous clients allowed. */
export async function startMosquitto (extraConfig: readonly string[] = [], files: Record<string, string> = {}, opts: { port?: number } = {}): Promise<Mosquitto> {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-mosquitto-'))
  // Started as root, mosquitto drops to its own user, which must still read its files.
  chmodSync(dir, 0o755)
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, { mode: 0o644 })
  const port = opts.port ?? await freePort()
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest stderr', 'log_type all', ...extraConfig.map((l) => l.replaceAll('$DIR', dir))].join('\n') + '\n')
  const child = spawn(mosquittoBinary(), ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr.on('data', (d: Buffer) => { log += d.toString() })
  try {
    await waitForPort(port, () => child.exitCode !== null, 5000, 'mosquitto')
  } catch (err) {
    child.kill('SIGKILL')
    throw new Error(`${(err as Error).message}\n${log}`)
  }
  return {
    port,
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
