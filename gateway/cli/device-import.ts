// `certgate device import`: many devices from a file, through POST /devices:import (up to 10,000
// devices a request, each request applied in one transaction). The whole file is checked first:
// one invalid line and nothing is sent. Requests carry up to --batch-size devices and stay under
// the admin API's request body limit (256 KiB by default), whichever is smaller; a server with a
// lower limit (413) gets the batch in halves. Importing replaces devices by deviceId, so running
// the same file again after a failure is safe.
import { resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { DeviceInput } from '../registry/types.js'
import { ADMIN_FLAGS, ADMIN_HELP, adminClient, ApiRefused, type AdminClient } from './admin-client.js'
import { intFlag, parseFlags, required } from './args.js'
import type { CliContext } from './context.js'
import { CommandFailed, UsageError } from './errors.js'
import { CSV_COLUMNS, detectFormat, parseImportFile, type ImportedLine, type ImportFormat } from './import-file.js'
import { readText, shown } from './pem-files.js'

const USAGE = `usage: certgate device import --file FILE [--format csv|jsonl] [--dry-run] [--batch-size N] [--admin URL] [--token TOKEN]

Adds or replaces many devices at once. Every line is checked first with the same rules as
"device add"; if any line is invalid, each problem is reported with its line number and nothing
is imported. Devices already registered are replaced by the file's version.

  --file FILE      the devices (required), one of:
                     CSV with a header line, only deviceId required:
                       ${CSV_COLUMNS.join(',')}
                       sensor-1,,,,,
                       cam-7,selfSigned,<sha-256 hex>,,disabled,"returned, to be wiped"
                     JSON lines, the API's device body plus deviceId:
                       {"deviceId":"sensor-1","authentication":{"type":"certificateAuthority"},"status":"enabled"}
  --format F       csv or jsonl (default: from the extension, else from the first line)
  --dry-run        check the file and report, send nothing
  --batch-size N   devices per request, 1 to 10000 (default 5000)
${ADMIN_HELP}
`

/** The admin API's default request body limit (AdminServerOptions.maxBodyBytes in gateway.ts). */
const MAX_REQUEST_BYTES = 256 * 1024
const ENVELOPE = '{"devices":[]}'.length

const MAX_PROBLEMS_SHOWN = 100

function importItem (d: DeviceInput): string {
  const authentication = d.authType === 'selfSigned'
    ? { type: d.authType, x509Thumbprint: { primaryThumbprint: d.primaryThumbprint, secondaryThumbprint: d.secondaryThumbprint } }
    : { type: d.authType }
  return JSON.stringify({ deviceId: d.deviceId, authentication, status: d.status, statusReason: d.statusReason })
}

interface Item { readonly line: number, readonly json: string, readonly bytes: number }

/** Consecutive runs of at most `size` devices and MAX_REQUEST_BYTES of JSON. */
function batches (items: readonly Item[], size: number): Item[][] {
  const out: Item[][] = []
  let current: Item[] = []
  let bytes = ENVELOPE
  for (const item of items) {
    if (current.length > 0 && (current.length >= size || bytes + item.bytes + 1 > MAX_REQUEST_BYTES)) { out.push(current); current = []; bytes = ENVELOPE }
    current.push(item)
    bytes += item.bytes + 1
  }
  if (current.length > 0) out.push(current)
  return out
}

/** Sends one batch; on 413 (a smaller server limit) sends it in halves. Returns requests made. */
async function send (api: AdminClient, batch: readonly Item[]): Promise<number> {
  try {
    await api.request('POST', '/devices:import', { json: `{"devices":[${batch.map((i) => i.json).join(',')}]}` })
    return 1
  } catch (err) {
    if (!(err instanceof ApiRefused && err.status === 413 && batch.length > 1)) throw err
    const half = Math.ceil(batch.length / 2)
    return 1 + await send(api, batch.slice(0, half)) + await send(api, batch.slice(half))
  }
}

export async function deviceImport (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...ADMIN_FLAGS, file: { type: 'string' }, format: { type: 'string' }, 'dry-run': { type: 'boolean' },
    'batch-size': { type: 'string' } }, USAGE)
  if (v.help === true) { ctx.out(USAGE); return 0 }
  const file = required(v.file, '--file', USAGE)
  if (v.format !== undefined && v.format !== 'csv' && v.format !== 'jsonl') throw new UsageError(`--format must be csv or jsonl, not "${v.format}"`, USAGE)
  const batchSize = intFlag(v['batch-size'], '--batch-size', 1, 10_000, USAGE) ?? 5000
  const api = v['dry-run'] === true ? undefined : adminClient(v, ctx.env, ctx.cwd, USAGE)
  const path = resolve(ctx.cwd, file)
  const name = shown(path, ctx.cwd)

  const started = performance.now()
  const text = readText(path, 'the import file')
  const format: ImportFormat = v.format ?? detectFormat(path, text)
  const { devices, problems } = parseImportFile(text, format)
  if (problems.length > 0) {
    const lines = problems.slice(0, MAX_PROBLEMS_SHOWN).map((p) => `${name}:${p.line}: ${p.message}\n`).join('')
    const more = problems.length > MAX_PROBLEMS_SHOWN ? `... and ${problems.length - MAX_PROBLEMS_SHOWN} more\n` : ''
    ctx.err(lines + more)
    throw new CommandFailed(`${problems.length} invalid line${problems.length === 1 ? '' : 's'} in ${name} (${format}); nothing was imported`)
  }
  if (devices.length === 0) { ctx.out(`no devices in ${name}; nothing to import\n`); return 0 }
  if (api === undefined) { ctx.out(
    `${name}: ${devices.length} valid device${devices.length === 1 ? '' : 's'} (${format}); --dry-run: nothing sent\n`); return 0 }

  const items = devices.map(({ line, device }: ImportedLine): Item => { const json = importItem(device); return { line, json,
    bytes: Buffer.byteLength(json) } })
  let imported = 0
  let requests = 0
  for (const batch of batches(items, batchSize)) {
    try {
      requests += await send(api, batch)
    } catch (err) {
      if (!(err instanceof CommandFailed)) throw err
      const first = batch[0]?.line ?? 0
      throw new CommandFailed(`${err.message}\n${imported} of ${devices.length} devices were imported before the batch starting at ${name}:${first} failed; importing replaces devices by deviceId, so run the same file again once the cause is fixed`)
    }
    imported += batch.length
  }
  const seconds = (performance.now() - started) / 1000
  ctx.out(`imported ${imported} device${imported === 1 ? '' : 's'} from ${name} in ${requests} request${requests === 1 ? '' : 's'}, ${seconds.toFixed(1)} s\n`)
  return 0
}
