// Plain-text tables for people; scripts use --json.
export function formatTable (headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string => cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)).join('  ').trimEnd() + '\n'
  return line(headers) + rows.map(line).join('')
}

/** Name/value lines for one resource. */
export function formatFields (fields: readonly (readonly [string, string])[]): string {
  const width = Math.max(...fields.map(([k]) => k.length))
  return fields.map(([k, v]) => `${(k + ':').padEnd(width + 1)}  ${v}\n`).join('')
}
