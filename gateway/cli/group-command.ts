// `certgate group`: enrollment groups of a running gateway (the admin API's /enrollmentGroups),
// and the bulk actions on the devices a group registered.
import { ADMIN_FLAGS, ADMIN_HELP, adminClient, ApiRefused, segment } from './admin-client.js'
import { dispatch, parseFlags, required } from './args.js'
import type { CliContext } from './context.js'
import { CommandFailed, UsageError } from './errors.js'
import { formatFields, formatTable } from './table.js'

const USAGE = `usage: certgate group <subcommand> [flags]

Enrollment groups: a device the registry does not know, whose certificate chains to a verified CA
a group references and whose CN matches the group's pattern, is registered on its first
connection and let in on it (see docs/enrollment.md).

subcommands:
  add              create (or with --replace, replace) an enrollment group
  get              show one group
  list             list the groups
  remove           delete a group (the devices it registered stay)
  disable-devices  disable every device the group registered, closing their live connections
  delete-devices   delete every device the group registered, closing their live connections

Run "certgate group <subcommand> --help" for its flags.
`

interface GroupResource {
  readonly enrollmentGroupId: string
  readonly attestation: { readonly x509: { readonly caReferences: { readonly primary: string, readonly secondary?: string } } }
  readonly provisioningStatus: string
  readonly deviceIdPattern?: string
  readonly initialStatus: string
  readonly etag: string
}

function asGroup (body: unknown): GroupResource {
  const g = body as { enrollmentGroupId?: unknown, attestation?: { x509?: { caReferences?: { primary?: unknown } } } } | null
  if (typeof g !== 'object' || g === null || typeof g.enrollmentGroupId !== 'string' || typeof g.attestation?.x509?.caReferences?.primary !== 'string') {
    throw new CommandFailed('the admin API answered with something that is not an enrollment group; is --admin a certgate gateway?')
  }
  return g as unknown as GroupResource
}

const groupPath = (id: string): string => `/enrollmentGroups/${segment(id)}`

function describe (g: GroupResource): string {
  return formatFields([
    ['enrollmentGroupId', g.enrollmentGroupId],
    ['ca', g.attestation.x509.caReferences.primary + (g.attestation.x509.caReferences.secondary === undefined ? '' : `, ${g.attestation.x509.caReferences.secondary}`)],
    ['provisioning', g.provisioningStatus],
    ['deviceIdPattern', g.deviceIdPattern ?? '(any CN)'],
    ['initialStatus', g.initialStatus],
    ['etag', g.etag]
  ])
}

const ADD_USAGE = `usage: certgate group add --id GROUP --ca CA_NAME [--secondary-ca CA_NAME] [--pattern REGEX] [--disabled] [--initial-disabled] [--replace] [--json] [--admin URL] [--token TOKEN]

Creates an enrollment group on a registered CA (it provisions nothing until the CA is verified).

  --id GROUP            the enrollmentGroupId: letters, digits, "-", "." or "_" (required)
  --ca CA_NAME          the registered CA certificate devices must chain to (required)
  --secondary-ca NAME   a second CA (for rolling the CA over)
  --pattern REGEX       a regular expression the whole CN must match (a linear-time subset)
  --disabled            create it with provisioning disabled (registers no one)
  --initial-disabled    register devices disabled (they are recorded, not let in)
  --replace             replace a group that exists already (refused otherwise)
  --json                print the API's JSON
${ADMIN_HELP}
`

async function add (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, {
    ...ADMIN_FLAGS, id: { type: 'string' }, ca: { type: 'string' }, 'secondary-ca': { type: 'string' }, pattern: { type: 'string' },
    disabled: { type: 'boolean' }, 'initial-disabled': { type: 'boolean' }, replace: { type: 'boolean' }, json: { type: 'boolean' }
  }, ADD_USAGE)
  if (v.help === true) { ctx.out(ADD_USAGE); return 0 }
  const id = required(v.id, '--id', ADD_USAGE)
  const ca = required(v.ca, '--ca', ADD_USAGE)
  if (v.pattern === '') throw new UsageError('--pattern must not be empty (omit it to accept any CN)', ADD_USAGE)
  const api = adminClient(v, ctx.env, ctx.cwd, ADD_USAGE)
  let before: GroupResource | undefined
  try {
    before = asGroup((await api.request('GET', groupPath(id))).body)
  } catch (err) {
    if (!(err instanceof ApiRefused && err.status === 404)) throw err
  }
  if (before !== undefined && v.replace !== true) {
    throw new CommandFailed(`enrollment group "${id}" already exists; nothing was changed. Use --replace to replace it`)
  }
  const body = {
    attestation: { type: 'x509', x509: { caReferences: { primary: ca, ...(v['secondary-ca'] === undefined ? {} : { secondary: v['secondary-ca'] }) } } },
    provisioningStatus: v.disabled === true ? 'disabled' : 'enabled',
    ...(v.pattern === undefined ? {} : { deviceIdPattern: v.pattern }),
    initialStatus: v['initial-disabled'] === true ? 'disabled' : 'enabled'
  }
  const reply = await api.request('PUT', groupPath(id), { body, ...(before === undefined ? {} : { headers: { 'if-match': `"${before.etag}"` } }) })
  const g = asGroup(reply.body)
  ctx.out(v.json === true ? JSON.stringify(g, null,
    2) + '\n' : `${reply.status === 201 ? 'added' : 'replaced'} enrollment group "${g.enrollmentGroupId}"\n${describe(g)}`)
  return 0
}

const GET_USAGE = `usage: certgate group get --id GROUP [--json] [--admin URL] [--token TOKEN]

Shows one enrollment group.
${ADMIN_HELP}
`

async function get (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...ADMIN_FLAGS, id: { type: 'string' }, json: { type: 'boolean' } }, GET_USAGE)
  if (v.help === true) { ctx.out(GET_USAGE); return 0 }
  const g = asGroup((await adminClient(v, ctx.env, ctx.cwd, GET_USAGE).request('GET', groupPath(required(v.id, '--id', GET_USAGE)))).body)
  ctx.out(v.json === true ? JSON.stringify(g, null, 2) + '\n' : describe(g))
  return 0
}

const LIST_USAGE = `usage: certgate group list [--json] [--admin URL] [--token TOKEN]

Lists the enrollment groups.
${ADMIN_HELP}
`

async function list (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...ADMIN_FLAGS, json: { type: 'boolean' } }, LIST_USAGE)
  if (v.help === true) { ctx.out(LIST_USAGE); return 0 }
  const body = (await adminClient(v, ctx.env, ctx.cwd, LIST_USAGE).request('GET', '/enrollmentGroups')).body
  if (!Array.isArray(body)) throw new CommandFailed('the admin API did not answer with a list of enrollment groups')
  const groups = body.map(asGroup)
  if (v.json === true) { ctx.out(JSON.stringify(groups, null, 2) + '\n'); return 0 }
  ctx.out(groups.length === 0
    ? 'no enrollment groups (certgate group add --help)\n'
    : formatTable(['GROUP', 'CA', 'PROVISIONING', 'PATTERN', 'INITIAL STATUS'], groups.map((g) => [g.enrollmentGroupId, g.attestation.x509.caReferences.primary, g.provisioningStatus, g.deviceIdPattern ?? '(any)', g.initialStatus])))
  return 0
}

const REMOVE_USAGE = `usage: certgate group remove --id GROUP [--admin URL] [--token TOKEN]

Deletes an enrollment group. Devices it registered stay registered (see disable-devices).
${ADMIN_HELP}
`

async function remove (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...ADMIN_FLAGS, id: { type: 'string' } }, REMOVE_USAGE)
  if (v.help === true) { ctx.out(REMOVE_USAGE); return 0 }
  const id = required(v.id, '--id', REMOVE_USAGE)
  await adminClient(v, ctx.env, ctx.cwd, REMOVE_USAGE).request('DELETE', groupPath(id))
  ctx.out(`removed enrollment group "${id}"; the devices it registered stay\n`)
  return 0
}

function bulk (action: 'disableDevices' | 'deleteDevices', verb: string) {
  const usage = `usage: certgate group ${action === 'disableDevices' ? 'disable-devices' : 'delete-devices'} --id GROUP [--admin URL] [--token TOKEN]

${verb[0]?.toUpperCase() ?? ''}${verb.slice(1)}s every device the group registered; their live connections close at once.
${ADMIN_HELP}
`
  return async (args: readonly string[], ctx: CliContext): Promise<number> => {
    const v = parseFlags(args, { ...ADMIN_FLAGS, id: { type: 'string' } }, usage)
    if (v.help === true) { ctx.out(usage); return 0 }
    const id = required(v.id, '--id', usage)
    const reply = await adminClient(v, ctx.env, ctx.cwd, usage).request('POST', `${groupPath(id)}:${action}`)
    const affected = (reply.body as { affected?: unknown } | null)?.affected
    ctx.out(`${verb}d ${typeof affected === 'number' ? affected : '?'} device(s) registered by enrollment group "${id}"; their live connections are closed\n`)
    return 0
  }
}

export async function groupCommand (args: readonly string[], ctx: CliContext): Promise<number> {
  return await dispatch(args, ctx, {
    name: 'group',
    usage: USAGE,
    commands: { add, get, list, remove, 'disable-devices': bulk('disableDevices', 'disable'), 'delete-devices': bulk('deleteDevices', 'delete') }
  })
}
