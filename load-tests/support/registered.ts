// How many devices an enrollment group registered, asked of a running gateway through its admin
// API (GET /devices?enrollmentGroupId=…, page by page): load tests are black boxes over ports.
import type { AdminApi } from './fleet.js'

export async function countRegistered (admin: AdminApi, enrollmentGroupId = 'bench'): Promise<number> {
  let n = 0
  let continuation: string | null = null
  do {
    const res: Response = await fetch(`${admin.url}/devices?top=1000&enrollmentGroupId=${encodeURIComponent(enrollmentGroupId)}`, {
      headers: { authorization: `Bearer ${admin.token}`, ...(continuation === null ? {} : { 'x-ms-continuation': continuation }) }
    })
    if (res.status !== 200) throw new Error(`GET /devices answered ${res.status}: ${await res.text()}`)
    n += (await res.json() as unknown[]).length
    continuation = res.headers.get('x-ms-continuation')
  } while (continuation !== null)
  return n
}
