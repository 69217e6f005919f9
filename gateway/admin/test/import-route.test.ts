// What this proves: POST /devices:import applies a request entirely or not at all. Valid devices
// (both authentication types) are stored and counted; an invalid device, a repeated deviceId or a
// device without a deviceId refuses the whole request with a 400 naming its index, and nothing of
// it is stored; more than 10,000 devices are refused; other methods get 405 and other paths are
// left to the other routes.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSqliteRegistry } from '../../registry/sqlite-registry.js'
import type { Registry } from '../../registry/types.js'
import { ApiError, type AdminRequest, type AdminRoute } from '../admin-server.js'
import { createImportRoute, MAX_IMPORT_DEVICES } from '../import-route.js'

let dir: string
let registry: Registry
let route: AdminRoute

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'certgate-import-'))
  registry = openSqliteRegistry(join(dir, 'registry.sqlite'))
  route = createImportRoute({ registry })
})
after(async () => {
  await registry.close()
  rmSync(dir, { recursive: true, force: true })
})

const request = (body: unknown, method = 'POST', path = '/devices:import'): AdminRequest => ({ method, path, query: new URLSearchParams(), headers: {}, body })

async function refusal (body: unknown, method?: string): Promise<ApiError> {
  try {
    await route(request(body, method))
  } catch (err) {
    if (err instanceof ApiError) return err
    throw err
  }
  throw new Error('the request was not refused')
}

test('valid devices are stored and counted', async () => {
  const answer = await route(request({
    devices: [
      { deviceId: 'imp-1', authentication: { type: 'certificateAuthority' }, status: 'enabled', statusReason: null },
      { deviceId: 'imp-2', authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: 'AB'.repeat(32) } }, status: 'disabled', statusReason: 'spare' }
    ]
  }))
  assert.deepEqual(answer, { status: 200, body: { imported: 2 } })
  assert.equal((await registry.getDevice('imp-2'))?.primaryThumbprint, 'ab'.repeat(32))
  assert.equal((await registry.getDevice('imp-2'))?.status, 'disabled')
})

test('one invalid device, a repeated deviceId or a missing deviceId refuses the whole request', async () => {
  const ok = { authentication: { type: 'certificateAuthority' }, status: 'enabled' }
  const bad = await refusal({ devices: [{ deviceId: 'imp-3', ...ok }, { deviceId: 'imp-4', ...ok }, { deviceId: 'imp-5', ...ok, status: 'on' }] })
  assert.deepEqual([bad.status, bad.code], [400, 'invalid_status'])
  assert.match(bad.message, /^devices\[2\] \("imp-5"\): status must be/)
  const twice = await refusal({ devices: [{ deviceId: 'imp-3', ...ok }, { deviceId: 'imp-3', ...ok }] })
  assert.deepEqual([twice.code, twice.message], ['duplicate_device_id', 'devices[1]: deviceId "imp-3" is also devices[0]; send each device once'])
  const anonymous = await refusal({ devices: [{ deviceId: 'imp-3', ...ok }, ok] })
  assert.deepEqual([anonymous.code, anonymous.message], ['invalid_device_id', 'devices[1] needs a "deviceId" string'])
  assert.equal(await registry.getDevice('imp-3'), undefined)
  assert.equal(await registry.getDevice('imp-4'), undefined)
})

test('too many devices, a wrong body or method are refused; other paths pass through', async () => {
  const many = Array.from({ length: MAX_IMPORT_DEVICES + 1 }, (_, i) => ({ deviceId: `many-${i}`, authentication: { type: 'certificateAuthority' } }))
  assert.equal((await refusal({ devices: many })).code, 'too_many_devices')
  assert.equal((await refusal({ devices: {} })).code, 'invalid_body')
  assert.equal((await refusal({ device: [] })).code, 'unknown_field')
  assert.equal((await refusal(undefined, 'GET')).status, 405)
  assert.equal(await route(request({}, 'GET', '/devices')), undefined)
  assert.deepEqual(await route(request({ devices: [] })), { status: 200, body: { imported: 0 } })
})
