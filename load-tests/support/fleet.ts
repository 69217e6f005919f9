// A benchmark fleet: a root, two intermediates, N devices under the second, and a data
// directory whose registry holds the CA (registered through the real proof-of-possession flow)
// and every device. Shared by the load tests.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSecureContext, type SecureContext } from 'node:tls'
import { issue, issueHierarchy, type Issued } from '../../gateway/pki/issue.js'
import { openSqliteRegistry } from '../../gateway/registry/sqlite-registry.js'
import { createCaService } from '../../gateway/control/ca-service.js'

export interface Fleet {
  readonly dataDir: string
  readonly root: Issued
  readonly int1: Issued
  readonly int2: Issued
  readonly devices: ReadonlyArray<{ readonly id: string, readonly leaf: Issued }>
  /** One client TLS context per device (leaf + intermediates + the server CA), built once. */
  contexts: (serverCaPem: string) => SecureContext[]
}

export async function createFleet (count: number): Promise<Fleet> {
  const dataDir = mkdtempSync(join(tmpdir(), 'certgate-bench-'))
  const { root, int1, int2 } = await issueHierarchy()
  const devices: Array<{ id: string, leaf: Issued }> = []
  for (let i = 0; i < count; i++) {
    const id = `bench-${String(i).padStart(6, '0')}`
    devices.push({ id, leaf: await issue({ cn: id, issuer: int2 }) })
  }
  const registry = openSqliteRegistry(join(dataDir, 'registry.sqlite'))
  const cas = createCaService(registry, { verificationCodeTtlMs: 3_600_000 })
  await cas.upload('bench-root', root.pem)
  const { verificationCode } = await cas.generateVerificationCode('bench-root')
  await cas.verify('bench-root', (await issue({ cn: verificationCode ?? '', issuer: root, eku: [] })).pem)
  await registry.importDevices(devices.map((d) => ({ deviceId: d.id, authType: 'certificateAuthority', primaryThumbprint: null, secondaryThumbprint: null, status: 'enabled', statusReason: null })))
  await registry.close()
  return {
    dataDir, root, int1, int2, devices,
    contexts: (serverCaPem) => devices.map((d) => createSecureContext({ key: d.leaf.keyPem, cert: d.leaf.pem + int2.pem + int1.pem, ca: serverCaPem }))
  }
}
