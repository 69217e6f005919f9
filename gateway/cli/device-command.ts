// `certgate device`: the device registry of a running gateway. Status changes read the device and
// write it back with If-Match, so a change someone made in between is never overwritten (the
// read-modify-write is retried on the fresh version instead).
import { ADMIN_FLAGS, ADMIN_HELP, adminClient, ApiRefused, segment, type AdminClient } from './admin-client.js'
import { dispatch, parseFlags, required } from './args.js'
import type { CliContext } from './context.js'
import { CommandFailed, UsageError } from './errors.js'
import { deviceImport } from './device-import.js'
import { asDevice, asDevices, type DeviceResource } from './resources.js'
import { formatFields, formatTable } from './table.js'

const USAGE = `usage: certgate device <subcommand> [flags]

Devices in a running gateway's registry. A device connects when its certificate's CN is its
deviceId, the device is enabled, and its chain reaches a verified CA (certificateAuthority) or its
certificate's SHA-256 thumbprint is registered (selfSigned).

subcommands:
  add       register a device
  get       show one device
  list      list all devices
  enable    let a device connect again
  disable   refuse a device and close its live connections
  remove    delete a device and close its live connections
  import    add or replace many devices from a CSV or JSON-lines file

Run "certgate device <subcommand> --help" for its flags.
`

const devicePath = (id: string): string => `/devices/${segment(id)}`

type Authentication = DeviceResource['authentication']

/** The authentication part of a PUT body, from a resource (only the fields PUT accepts). */
function authenticationOf (d: DeviceResource): Authentication {
  if (d.authentication.type !== 'selfSigned') return { type: 'certificateAuthority' }
  const tp = d.authentication.x509Thumbprint
  return { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: tp?.primaryThumbprint ?? null, secondaryThumbprint: tp?.secondaryThumbprint ?? null } }
}

function describe (d: DeviceResource): string {
  const tp = d.authentication.x509Thumbprint
  return formatFields([
    ['deviceId', d.deviceId],
    ['status', d.status + (d.statusReason === null ? '' : ` (${d.statusReason})`)],
    ['authentication', d.authentication.type],
    ...(d.authentication.type === 'selfSigned' ? [['primary', tp?.primaryThumbprint ?? '-'], ['secondary', tp?.secondaryThumbprint ?? '-']] as const : []),
    ['connection', d.connectionState ?? '-'],
    ['etag', d.etag],
    ['created', d.createdAt ?? '-'],
    ['updated', d.updatedAt ?? '-']
  ])
}

async function getDevice (api: AdminClient, id: string): Promise<DeviceResource | undefined> {
  try {
    return asDevice((await api.request('GET', devicePath(id))).body)
  } catch (err) {
    if (err instanceof ApiRefused && err.status === 404) return undefined
    throw err
  }
}

const ADD_USAGE = `usage: certgate device add --id DEVICEID [--self-signed --primary HEX [--secondary HEX]] [--disabled] [--reason TEXT] [--replace] [--json] [--admin URL] [--token TOKEN]

Registers a device. By default it is a certificateAuthority device: it authenticates with a
certificate (CN = DEVICEID) chaining to a verified CA. A selfSigned device is authenticated by
its certificate's SHA-256 thumbprint instead ("certgate pki device --self-signed" prints it).

  --id DEVICEID     the deviceId (required)
  --self-signed     a selfSigned device; needs --primary
  --primary HEX     SHA-256 thumbprint (64 hex characters) of its certificate
  --secondary HEX   a second accepted thumbprint (for rolling the certificate over)
  --disabled        register it disabled
  --reason TEXT     statusReason, e.g. why it is disabled (at most 128 characters)
  --replace         replace a device already registered under DEVICEID (refused otherwise)
  --json            print the API's JSON
${ADMIN_HELP}
`

async function add (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, {
    ...ADMIN_FLAGS, id: { type: 'string' }, 'self-signed': { type: 'boolean' }, primary: { type: 'string' }, secondary: { type: 'string' },
    disabled: { type: 'boolean' }, reason: { type: 'string' }, replace: { type: 'boolean' }, json: { type: 'boolean' }
  }, ADD_USAGE)
  if (v.help === true) { ctx.out(ADD_USAGE); return 0 }
  const id = required(v.id, '--id', ADD_USAGE)
  const selfSigned = v['self-signed'] === true
  if (!selfSigned && (v.primary !== undefined || v.secondary !== undefined)) {
    throw new UsageError('--primary and --secondary are for --self-signed devices', ADD_USAGE)
  }
  const authentication: Authentication = selfSigned
    ? { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: required(v.primary, '--primary (a --self-signed device needs its thumbprint)',
      ADD_USAGE), secondaryThumbprint: v.secondary ?? null } }
    : { type: 'certificateAuthority' }
  const api = adminClient(v, ctx.env, ctx.cwd, ADD_USAGE)
  // PUT creates or replaces; without --replace an existing device must not be replaced silently.
  const before = await getDevice(api, id)
  if (before !== undefined && v.replace !== true) {
    throw new CommandFailed(`device "${id}" already exists (${before.authentication.type}, ${before.status}); nothing was changed. Use --replace to replace it, or device enable/disable to change its status`)
  }
  const body = { authentication, status: v.disabled === true ? 'disabled' : 'enabled', statusReason: v.reason ?? null }
  const reply = await api.request('PUT', devicePath(id), { body, ...(before === undefined ? {} : { headers: { 'if-match': `"${before.etag}"` } }) })
  const d = asDevice(reply.body)
  if (v.json === true) { ctx.out(JSON.stringify(d, null, 2) + '\n'); return 0 }
  ctx.out(`${reply.status === 201 ? 'added' : 'replaced'} device "${d.deviceId}"\n${describe(d)}`)
  return 0
}

const GET_USAGE = `usage: certgate device get --id DEVICEID [--json] [--admin URL] [--token TOKEN]

Shows one device, including whether it is connected now.

  --id DEVICEID    the deviceId (required)
  --json           print the API's JSON
${ADMIN_HELP}
`

async function get (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...ADMIN_FLAGS, id: { type: 'string' }, json: { type: 'boolean' } }, GET_USAGE)
  if (v.help === true) { ctx.out(GET_USAGE); return 0 }
  const id = required(v.id, '--id', GET_USAGE)
  const d = asDevice((await adminClient(v, ctx.env, ctx.cwd, GET_USAGE).request('GET', devicePath(id))).body)
  ctx.out(v.json === true ? JSON.stringify(d, null, 2) + '\n' : describe(d))
  return 0
}

const LIST_USAGE = `usage: certgate device list [--json] [--admin URL] [--token TOKEN]

Lists every device, in deviceId order (all pages).

  --json           print a JSON array of the API's device resources, one per line
${ADMIN_HELP}
`

const PAGE = 1000

async function list (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...ADMIN_FLAGS, json: { type: 'boolean' } }, LIST_USAGE)
  if (v.help === true) { ctx.out(LIST_USAGE); return 0 }
  const api = adminClient(v, ctx.env, ctx.cwd, LIST_USAGE)
  const json = v.json === true
  const rows: string[][] = []
  let count = 0
  let continuation: string | undefined
  if (json) ctx.out('[')
  do {
    const reply = await api.request('GET', `/devices?top=${PAGE}`, continuation === undefined ? {} : { headers: { 'x-ms-continuation': continuation } })
    const page = asDevices(reply.body)
    // JSON is written page by page, so a large registry is never held whole.
    if (json) { if (page.length > 0) ctx.out((count === 0 ? '\n' : ',\n') + page.map((d) => JSON.stringify(d)).join(',\n')) } else {
      for (const d of page) rows.push([d.deviceId, d.authentication.type, d.status, d.connectionState ?? '-', d.statusReason ?? ''])
    }
    count += page.length
    const next = reply.headers.get('x-ms-continuation') ?? undefined
    if (next !== undefined && next === continuation) throw new CommandFailed('the admin API returned the same continuation token twice; stopping')
    continuation = next
  } while (continuation !== undefined && continuation !== '')
  if (json) { ctx.out(count === 0 ? ']\n' : '\n]\n'); return 0 }
  ctx.out(count === 0 ? 'no devices registered (certgate device add --help)\n' : formatTable(['DEVICE ID', 'AUTHENTICATION', 'STATUS', 'CONNECTION',
    'REASON'], rows) + `${count} device${count === 1 ? '' : 's'}\n`)
  return 0
}

/** GET, then PUT with If-Match; a concurrent change (412) is re-read and the change re-applied. */
async function setStatus (api: AdminClient, id: string, status: 'enabled' | 'disabled', reason: string | null): Promise<{ device: DeviceResource,
  changed: boolean }> {
  for (let attempt = 1; ; attempt++) {
    const current = asDevice((await api.request('GET', devicePath(id))).body)
    if (current.status === status && current.statusReason === reason) return { device: current, changed: false }
    const body = { authentication: authenticationOf(current), status, statusReason: reason }
    try {
      return { device: asDevice((await api.request('PUT', devicePath(id), { body, headers: { 'if-match': `"${current.etag}"` } })).body), changed: true }
    } catch (err) {
      if (!(err instanceof ApiRefused && err.status === 412) || attempt >= 5) throw err
    }
  }
}

const ENABLE_USAGE = `usage: certgate device enable --id DEVICEID [--reason TEXT] [--admin URL] [--token TOKEN]

Enables a device: it may connect again. Its statusReason is cleared unless --reason is given.

  --id DEVICEID    the deviceId (required)
  --reason TEXT    statusReason to record
${ADMIN_HELP}
`

const DISABLE_USAGE = `usage: certgate device disable --id DEVICEID [--reason TEXT] [--admin URL] [--token TOKEN]

Disables a device: its live connections are closed at once and it is refused until enabled.

  --id DEVICEID    the deviceId (required)
  --reason TEXT    why (recorded as statusReason and logged with each refusal), e.g. "reported stolen"
${ADMIN_HELP}
`

function statusCommand (status: 'enabled' | 'disabled', usage: string) {
  return async (args: readonly string[], ctx: CliContext): Promise<number> => {
    const v = parseFlags(args, { ...ADMIN_FLAGS, id: { type: 'string' }, reason: { type: 'string' } }, usage)
    if (v.help === true) { ctx.out(usage); return 0 }
    const id = required(v.id, '--id', usage)
    const { device, changed } = await setStatus(adminClient(v, ctx.env, ctx.cwd, usage), id, status, v.reason ?? null)
    const verb = status === 'enabled' ? 'enabled' : 'disabled'
    ctx.out(changed
      ? `${verb} device "${device.deviceId}"${status === 'disabled' ? '; its live connections are closed' : ''}\n`
      : `device "${device.deviceId}" is already ${verb}; nothing changed\n`)
    return 0
  }
}

const REMOVE_USAGE = `usage: certgate device remove --id DEVICEID [--admin URL] [--token TOKEN]

Deletes a device from the registry; its live connections are closed at once.

  --id DEVICEID    the deviceId (required)
${ADMIN_HELP}
`

async function remove (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...ADMIN_FLAGS, id: { type: 'string' } }, REMOVE_USAGE)
  if (v.help === true) { ctx.out(REMOVE_USAGE); return 0 }
  const id = required(v.id, '--id', REMOVE_USAGE)
  await adminClient(v, ctx.env, ctx.cwd, REMOVE_USAGE).request('DELETE', devicePath(id))
  ctx.out(`removed device "${id}"; its live connections are closed\n`)
  return 0
}

export async function deviceCommand (args: readonly string[], ctx: CliContext): Promise<number> {
  return await dispatch(args, ctx, {
    name: 'device',
    usage: USAGE,
    commands: { add, get, list, enable: statusCommand('enabled', ENABLE_USAGE), disable: statusCommand('disabled', DISABLE_USAGE), remove,
      import: deviceImport }
  })
}
