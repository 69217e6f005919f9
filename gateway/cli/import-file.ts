// Reads a bulk-import file into devices, checked line by line with the admin API's own rules
// (parseDeviceBody, what PUT /devices/{id} runs), so every problem is found and named by line
// number before anything is sent. Two formats:
//   CSV: a header line naming the columns (deviceId required; authType, primaryThumbprint,
//        secondaryThumbprint, status, statusReason optional, any order), then one device a line;
//        fields may be quoted ("a, b" and "" for a quote) but not span lines.
//   JSON lines: one object a line, the API's device body plus deviceId; authentication defaults
//        to certificateAuthority, as an empty authType does in CSV.
// Blank lines are skipped; a deviceId appearing twice is an error (which line would win?).
import { ApiError } from '../admin/admin-server.js'
import { parseDeviceBody } from '../admin/device-routes.js'
import type { DeviceInput } from '../registry/types.js'
import { errorMessage } from '../../workers/errors.js'

export type ImportFormat = 'csv' | 'jsonl'
export interface ImportProblem { readonly line: number, readonly message: string }
export interface ImportedLine { readonly line: number, readonly device: DeviceInput }
export interface ImportParse { readonly devices: readonly ImportedLine[], readonly problems: readonly ImportProblem[] }

export const CSV_COLUMNS = ['deviceId', 'authType', 'primaryThumbprint', 'secondaryThumbprint', 'status', 'statusReason'] as const
type Column = typeof CSV_COLUMNS[number]

/** By extension, else by content: a first line starting with "{" is JSON lines. */
export function detectFormat (path: string, text: string): ImportFormat {
  if (/\.csv$/i.test(path)) return 'csv'
  if (/\.(jsonl|ndjson)$/i.test(path)) return 'jsonl'
  return /^\s*\{/.test(text.replace(/^\uFEFF/, '')) ? 'jsonl' : 'csv'
}

/** The fields of one CSV line, or a sentence saying why it is not one. */
export function csvFields (line: string): string[] | string {
  const fields: string[] = []
  let i = 0
  while (true) {
    if (line[i] === '"') {
      let value = ''
      let j = i + 1
      while (true) {
        const k = line.indexOf('"', j)
        if (k < 0) return 'a quoted field is not closed (fields cannot span lines)'
        value += line.slice(j, k)
        if (line[k + 1] === '"') { value += '"'; j = k + 2; continue }
        i = k + 1
        break
      }
      while (line[i] === ' ' || line[i] === '\t') i++
      fields.push(value)
      if (i >= line.length) return fields
      if (line[i] !== ',') return `unexpected "${line[i] ?? ''}" after a quoted field`
      i++
    } else {
      const k = line.indexOf(',', i)
      fields.push((k < 0 ? line.slice(i) : line.slice(i, k)).trim())
      if (k < 0) return fields
      i = k + 1
    }
    if (i >= line.length) { fields.push(''); return fields }
  }
}

function problemOf (err: unknown): string {
  if (err instanceof ApiError) return err.message
  throw err
}

function csvHeader (fields: string[]): Map<Column, number> | string {
  const columns = new Map<Column, number>()
  for (const [i, raw] of fields.entries()) {
    const column = CSV_COLUMNS.find((c) => c.toLowerCase() === raw.toLowerCase())
    if (column === undefined) return `unknown column "${raw}" in the header; columns are ${CSV_COLUMNS.join(', ')} (deviceId required)`
    if (columns.has(column)) return `column ${column} appears twice in the header`
    columns.set(column, i)
  }
  if (!columns.has('deviceId')) return `the header has no deviceId column; the first line must name the columns, e.g. ${CSV_COLUMNS.join(',')}`
  return columns
}

function csvDevice (fields: string[], columns: Map<Column, number>): DeviceInput {
  const get = (c: Column): string => { const i = columns.get(c); return i === undefined ? '' : fields[i] ?? '' }
  const primary = get('primaryThumbprint')
  const secondary = get('secondaryThumbprint')
  const type = get('authType') === '' ? 'certificateAuthority' : get('authType')
  // selfSigned always gets the thumbprint object, so a missing one is named as such.
  const authentication = primary === '' && secondary === '' && type !== 'selfSigned'
    ? { type }
    : { type, x509Thumbprint: { primaryThumbprint: primary === '' ? null : primary, secondaryThumbprint: secondary === '' ? null : secondary } }
  return parseDeviceBody(get('deviceId'),
    { authentication, status: get('status') === '' ? 'enabled' : get('status'), statusReason: get('statusReason') === '' ? null : get('statusReason') })
}

function jsonDevice (line: string): DeviceInput | string {
  let body: unknown
  try {
    body = JSON.parse(line)
  } catch (err) {
    return `not valid JSON: ${errorMessage(err)}`
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return 'each line must be a JSON object: {"deviceId": "...", "authentication": {...}, "status": "..."}'
  }
  const fields = body as Record<string, unknown>
  if (typeof fields.deviceId !== 'string') return 'the object has no "deviceId" string'
  return parseDeviceBody(fields.deviceId, { authentication: { type: 'certificateAuthority' }, ...fields })
}

export function parseImportFile (text: string, format: ImportFormat): ImportParse {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/)
  const devices: ImportedLine[] = []
  const problems: ImportProblem[] = []
  const firstLine = new Map<string, number>()
  let columns: Map<Column, number> | undefined
  for (const [index, line] of lines.entries()) {
    const n = index + 1
    if (line.trim() === '') continue
    let device: DeviceInput | string
    if (format === 'csv') {
      const fields = csvFields(line)
      if (typeof fields === 'string') { problems.push({ line: n, message: fields }); if (columns === undefined) break; continue }
      if (columns === undefined) {
        const header = csvHeader(fields)
        // Without a usable header no line can be read: one problem says so, not one a line.
        if (typeof header === 'string') { problems.push({ line: n, message: header }); break }
        columns = header
        continue
      }
      if (fields.length > columns.size) { problems.push({ line: n,
        message: `${fields.length} fields, but the header names ${columns.size} columns` }); continue }
      try { device = csvDevice(fields, columns) } catch (err) { device = problemOf(err) }
    } else {
      try { device = jsonDevice(line) } catch (err) { device = problemOf(err) }
    }
    if (typeof device === 'string') { problems.push({ line: n, message: device }); continue }
    const seen = firstLine.get(device.deviceId)
    if (seen !== undefined) { problems.push({ line: n, message: `deviceId "${device.deviceId}" is already on line ${seen}` }); continue }
    firstLine.set(device.deviceId, n)
    devices.push({ line: n, device })
  }
  return { devices, problems }
}
