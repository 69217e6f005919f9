// What this proves, on SQLite and on a real PostgreSQL cluster alike: enrollment groups are stored
// with ETags (If-Match honoured) and announced as `enrollmentGroup` changes; insertDeviceIfAbsent
// writes a device with its registration once — racing callers (on PostgreSQL, two registries on
// one database) get the same record and exactly one `inserted: true`; a device replaced by PUT
// keeps its registration; listing by group, and the bulk disable and delete touch only the group's
// devices and announce a `bulk` change.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSqliteRegistry } from '../sqlite-registry.js'
import { openPostgresRegistry } from '../postgres-registry.js'
import { PreconditionFailed, type DeviceInput, type DeviceRecord, type EnrollmentGroupInput, type Registry, type RegistryChange } from '../types.js'
import { startPostgres, type Postgres } from '../../test/support/postgres.js'

let pg: Postgres
let dir: string
before(async () => {
  pg = await startPostgres()
  dir = mkdtempSync(join(tmpdir(), 'certgate-enroll-reg-'))
})
after(async () => {
  await pg.destroy()
  rmSync(dir, { recursive: true, force: true })
})

const device = (deviceId: string): DeviceInput => ({ deviceId, authType: 'certificateAuthority', primaryThumbprint: null, secondaryThumbprint: null, status: 'enabled', statusReason: null })
const group = (id: string, extra: Partial<EnrollmentGroupInput> = {}): EnrollmentGroupInput =>
  ({ enrollmentGroupId: id, primaryCa: 'root', secondaryCa: null, provisioningStatus: 'enabled', deviceIdPattern: 'dev-\\d+', initialStatus: 'enabled', ...extra })
const registration = (g: string) => ({ enrollmentGroupId: g, registeredAt: new Date().toISOString(), via: 'gateway' as const })

let n = 0
const backends: Array<{ name: string, pair: () => Promise<[Registry, Registry]> }> = [
  {
    name: 'sqlite',
    pair: async () => { const file = join(dir, `r${++n}.db`); return [openSqliteRegistry(file), openSqliteRegistry(file)] }
  },
  {
    name: 'postgres',
    pair: async () => { const url = await pg.createDatabase(`enroll_${++n}`); return [await openPostgresRegistry({ url }), await openPostgresRegistry({ url })] }
  }
]

for (const backend of backends) {
  test(`${backend.name}: groups with ETags, insert-if-absent once under a race, bulk actions by group`, async (t) => {
    const [r1, r2] = await backend.pair()
    t.after(async () => { await r1.close(); await r2.close() })
    const seen: RegistryChange[] = []
    r1.onChange((c) => { seen.push(c) })

    const { record, created } = await r1.putEnrollmentGroup(group('g1'))
    assert.equal(created, true)
    assert.deepEqual({ ...record, etag: '', createdAt: '', updatedAt: '' }, { ...group('g1'), etag: '', createdAt: '', updatedAt: '' })
    await assert.rejects(r1.putEnrollmentGroup(group('g1', { provisioningStatus: 'disabled' }), 'stale'), PreconditionFailed)
    const replaced = await r1.putEnrollmentGroup(group('g1', { provisioningStatus: 'disabled' }), record.etag)
    assert.equal(replaced.created, false)
    assert.equal((await r2.getEnrollmentGroup('g1'))?.provisioningStatus, 'disabled')
    await r1.putEnrollmentGroup(group('g2'))
    assert.deepEqual((await r1.listEnrollmentGroups()).map((g) => g.enrollmentGroupId), ['g1', 'g2'])
    assert.deepEqual(seen.slice(0, 3), [
      { kind: 'enrollmentGroup', enrollmentGroupId: 'g1' }, { kind: 'enrollmentGroup', enrollmentGroupId: 'g1' }, { kind: 'enrollmentGroup', enrollmentGroupId: 'g2' }
    ])

    // 40 devices, each inserted by both registries at once, three times over (5 devices at a
    // time: 30 racing transactions, within the pools' size and connect timeout on a busy machine).
    const ids = Array.from({ length: 40 }, (_, i) => `dev-${i}`)
    const results: Array<{ id: string, record: DeviceRecord, inserted: boolean }> = []
    for (let i = 0; i < ids.length; i += 5) {
      results.push(...await Promise.all(ids.slice(i, i + 5).flatMap((id) => [r1, r2, r1, r2, r1, r2].map(async (r) => ({ id, ...await r.insertDeviceIfAbsent(device(id), registration('g1')) })))))
    }
    for (const id of ids) {
      const mine = results.filter((x) => x.id === id)
      assert.equal(mine.filter((x) => x.inserted).length, 1, `${id} inserted once`)
      assert.equal(new Set(mine.map((x) => x.record.etag)).size, 1, `${id}: every caller got the stored record`)
      assert.equal(mine[0]?.record.registration?.enrollmentGroupId, 'g1')
    }
    await r1.putDevice(device('manual-1'))
    await r1.insertDeviceIfAbsent(device('dev-g2'), registration('g2'))

    // Replaced by PUT (disabled by an operator): still the group's.
    const put = await r2.putDevice({ ...device('dev-0'), status: 'disabled', statusReason: 'returned' })
    assert.equal(put.record.registration?.enrollmentGroupId, 'g1')
    assert.equal((await r1.getDevice('dev-0'))?.registration?.enrollmentGroupId, 'g1')
    assert.equal((await r1.getDevice('manual-1'))?.registration, undefined)

    const page = await r1.listDevices({ limit: 25, enrollmentGroupId: 'g1' })
    assert.equal(page.items.length, 25)
    const rest = await r1.listDevices({ limit: 25, enrollmentGroupId: 'g1', after: page.next })
    assert.deepEqual([...page.items, ...rest.items].map((d) => d.deviceId).sort(), [...ids].sort())

    seen.length = 0
    assert.equal(await r1.setGroupDevicesStatus('g1', 'disabled', 'bulk'), 40)
    assert.deepEqual(seen, [{ kind: 'bulk' }])
    assert.equal((await r2.getDevice('dev-5'))?.status, 'disabled')
    assert.equal((await r2.getDevice('dev-g2'))?.status, 'enabled')
    assert.equal((await r2.getDevice('manual-1'))?.status, 'enabled')
    assert.equal(await r1.deleteGroupDevices('g1'), 40)
    assert.equal(await r1.getDevice('dev-5'), undefined)
    assert.notEqual(await r1.getDevice('dev-g2'), undefined)
    assert.equal(await r1.deleteEnrollmentGroup('g1'), true)
    assert.equal(await r1.deleteEnrollmentGroup('g1'), false)
  })
}
