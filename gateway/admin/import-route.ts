// Admin API: POST /devices:import {"devices": [{deviceId, authentication, status, statusReason}, ...]}
// adds or replaces up to 10,000 devices in one transaction (the CLI's `device import`). Every
// device is checked with PUT's rules first; one invalid device refuses the whole request, naming
// it by index, so a request is applied entirely or not at all. Answers 200 {"imported": n}.
import type { DeviceInput, Registry } from '../registry/types.js'
import { ApiError, type AdminRoute } from './admin-server.js'
import { parseDeviceBody } from './device-routes.js'
import { objectBody } from './http-helpers.js'

export const MAX_IMPORT_DEVICES = 10_000

export function createImportRoute (deps: { readonly registry: Registry }): AdminRoute {
  return async (req) => {
    if (req.path !== '/devices:import') return undefined
    if (req.method !== 'POST') throw new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /devices:import; use POST`)
    const body = objectBody(req.body, ['devices'])
    if (!Array.isArray(body.devices)) throw new ApiError(400, 'invalid_body',
      'send {"devices": [{"deviceId": "...", "authentication": {...}, "status": "..."}, ...]}')
    const list: unknown[] = body.devices
    if (list.length > MAX_IMPORT_DEVICES) throw new ApiError(400, 'too_many_devices',
      `${list.length} devices in one request; send at most ${MAX_IMPORT_DEVICES} per request`)
    const seen = new Map<string, number>()
    const devices: DeviceInput[] = list.map((item, i) => {
      const id: unknown = typeof item === 'object' && item !== null && !Array.isArray(item) ? (item as Record<string, unknown>).deviceId : undefined
      if (typeof id !== 'string') throw new ApiError(400, 'invalid_device_id', `devices[${i}] needs a "deviceId" string`)
      let device: DeviceInput
      try {
        device = parseDeviceBody(id, item)
      } catch (err) {
        if (err instanceof ApiError) throw new ApiError(err.status, err.code, `devices[${i}] ("${id}"): ${err.message}`)
        throw err
      }
      const first = seen.get(id)
      if (first !== undefined) throw new ApiError(400, 'duplicate_device_id',
        `devices[${i}]: deviceId "${id}" is also devices[${first}]; send each device once`)
      seen.set(id, i)
      return device
    })
    return { status: 200, body: { imported: await deps.registry.importDevices(devices) } }
  }
}
