// A real Mosquitto (Debian package) as the upstream broker of the reconnect and idle scenarios:
// anonymous, no persistence, unlimited connections, its open-files limit raised for big fleets.
// Installs nothing: mosquittoBinary() says what is missing. Stopped by PID.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnWithNofile, stopper, type ServerProcess } from './servers.js'
import { freePort, waitForPort } from './ports.js'

export function mosquittoBinary (): string | undefined {
  return ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'].find((p) => existsSync(p))
}

export const MOSQUITTO_MISSING = 'mosquitto is not installed: apt-get install -y mosquitto (Debian/Ubuntu)'

export async function startMosquitto (opts: { nofile: number }): Promise<ServerProcess> {
  const binary = mosquittoBinary()
  if (binary === undefined) throw new Error(MOSQUITTO_MISSING)
  const dir = mkdtempSync(join(tmpdir(), 'certgate-mosquitto-'))
  const port = await freePort()
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(conf, [
    `listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false',
    'max_connections -1', 'log_dest stderr', 'log_type error'
  ].join('\n') + '\n')
  const child = spawnWithNofile(opts.nofile, binary, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr?.on('data', (d: Buffer) => { log = (log + d.toString()).slice(-4000) })
  try {
    await waitForPort(port, () => child.exitCode !== null, 5000)
  } catch (err) {
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`mosquitto did not start: ${(err as Error).message}\n${log}`)
  }
  const pid = child.pid ?? 0
  const stop = stopper(child)
  return { pid, port, pids: () => [pid], stop: async () => { await stop(); rmSync(dir, { recursive: true, force: true }) } }
}
