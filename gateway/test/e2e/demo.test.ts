// What this proves: `npm run demo`'s program runs to completion on its own: it starts certgate as
// a child process, builds a PKI, registers the CA and enrolls a device with the real CLI commands,
// connects the device with mqtt.js, publishes and receives its own message, disables the device
// and sees the live connection closed and the reconnection refused, stops the gateway with
// SIGTERM, and exits 0 within its 30-second budget.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

const DEMO = fileURLToPath(new URL('../../demo.js', import.meta.url))

test('the demo runs to completion with exit 0', { timeout: 45_000 }, async () => {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CERTGATE_')) env[k] = v
  const child = spawn(process.execPath, [DEMO], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString('utf8') })
  child.stderr.on('data', (d: Buffer) => { out += d.toString('utf8') })
  const started = Date.now()
  const [code] = await once(child, 'exit') as [number | null]
  assert.equal(code, 0, out)
  assert.ok(Date.now() - started < 30_000, `the demo took ${Date.now() - started} ms`)
  for (const step of [
    /certgate listening device=127\.0\.0\.1:\d+ admin=127\.0\.0\.1:\d+/,
    /\$ npx certgate ca register --name demo-root --cert pki\/root\.pem --key pki\/root\.key\n.*\n.*\n\s+CA "demo-root" is verified/,
    /published "21\.5" .* received "21\.5" back/,
    /\$ npx certgate device disable --id demo-sensor-1/,
    /"event":"closed","reason":"device_disabled"/,
    /"event":"refused","reason":"device_disabled"/,
    /exited 0\n/
  ]) assert.match(out, step)
})
