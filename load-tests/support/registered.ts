// How many devices an enrollment group registered, read from a stopped gateway's SQLite registry.
import { openSqliteRegistry } from '../../gateway/registry/sqlite-registry.js'

export async function countRegistered (file: string, enrollmentGroupId = 'bench'): Promise<number> {
  const registry = openSqliteRegistry(file)
  try {
    let n = 0
    let after: string | undefined
    do {
      const page = await registry.listDevices({ limit: 1000, after, enrollmentGroupId })
      n += page.items.length
      after = page.next
    } while (after !== undefined)
    return n
  } finally {
    await registry.close()
  }
}
