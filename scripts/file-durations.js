// A node:test reporter that prints, at the end of a run, how long each test file took and the
// total. Files run one at a time (--test-concurrency=1), so a file's time is from the previous
// file's last event to its own last one: its process start, hooks and tests.
import { relative } from 'node:path'

export default async function * fileDurations (source) {
  const files = new Map()
  const started = Date.now()
  for await (const event of source) {
    const file = event.data?.file
    if (file === undefined) continue
    const now = Date.now()
    const seen = files.get(file) ?? { last: now, tests: 0, failed: 0 }
    seen.last = now
    if (event.data.nesting === 0 && (event.type === 'test:pass' || event.type === 'test:fail')) {
      seen.tests++
      if (event.type === 'test:fail') seen.failed++
    }
    files.set(file, seen)
  }
  let previous = started
  const rows = [...files].sort(([, a], [, b]) => a.last - b.last).map(([file, s]) => {
    const row = { file: relative(process.cwd(), file), s: (s.last - previous) / 1000, tests: s.tests, failed: s.failed }
    previous = s.last
    return row
  })
  yield '\nper-file durations (longest first):\n'
  for (const r of rows.sort((a, b) => b.s - a.s)) {
    yield `${r.s.toFixed(1).padStart(7)} s  ${String(r.tests).padStart(3)} tests${r.failed > 0 ? ` (${r.failed} failed)` : ''}  ${r.file}\n`
  }
  yield `total ${((Date.now() - started) / 1000).toFixed(1)} s for ${rows.length} files\n`
}
