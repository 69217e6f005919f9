// What this proves: `npm start`'s entry (the CLI's `start`) runs as its own process with the
// contract's environment variables, picks free ports when told port 0, prints the one listening
// line scripts rely on, answers /healthz on the admin port, writes the admin token 0600, refuses a
// bad configuration with a clear message and exit 1, and exits 0 on SIGTERM.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const CLI = fileURLToPath(new URL('../../cli.js', import.meta.url))

test('start prints the listening line, serves /healthz and exits 0 on SIGTERM', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'certgate-proc-'))
  const child = spawn(process.execPath, [CLI, 'start'], {
    env: { ...process.env, CERTGATE_DATA_DIR: dataDir, CERTGATE_LISTEN: '127.0.0.1:0', CERTGATE_ADMIN_LISTEN: '127.0.0.1:0', CERTGATE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => { reject(new Error(`no listening line in 15 s:\n${out}`)) }, 15_000)
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        const m = /^certgate listening device=\S+ admin=\S+$/m.exec(out)
        if (m !== null) { clearTimeout(timer); resolve(m[0]) }
      })
      child.once('exit', (code) => { reject(new Error(`exited ${code}:\n${out}`)) })
    })
    const m = /device=127\.0\.0\.1:(\d+) admin=127\.0\.0\.1:(\d+)/.exec(line)
    assert.ok(m !== null, line)
    assert.notEqual(Number(m[1]), 0)
    const res = await fetch(`http://127.0.0.1:${m[2]}/healthz`)
    assert.equal(res.status, 200)
    const unauthorized = await fetch(`http://127.0.0.1:${m[2]}/devices`)
    assert.equal(unauthorized.status, 401)
    assert.equal(statSync(join(dataDir, 'admin-token')).mode & 0o777, 0o600)
    const exit = new Promise<number | null>((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    assert.equal(await exit, 0)
  } finally {
    child.kill('SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  }
})

test('a bad configuration is refused with a clear message and exit code 1', async () => {
  const child = spawn(process.execPath, [CLI, 'start'], { env: { ...process.env, CERTGATE_LISTEN: 'nonsense' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  assert.equal(code, 1)
  assert.match(err, /CERTGATE_LISTEN="nonsense" is not host:port/)
})
