// Reads `perf script -F tid,period,ip,sym,dso` output: per thread, each sample's stack, innermost
// frame first, and the CPU time it stands for. A sample is a header line ("<tid> <period>", the
// period in ns for cpu-clock) followed by one tab-indented line per frame,
// "<address> <symbol>[+0x<offset>] (<dso>)". JS frames lose their tier mark.

/** One sample: its stack, innermost frame first, and the nanoseconds of CPU it stands for. */
export interface Sample { readonly frames: readonly string[], readonly ns: number }

export function parsePerfScript (text: string): Map<string, Sample[]> {
  const byThread = new Map<string, Sample[]>()
  let frames: string[] | undefined
  for (const line of text.split('\n')) {
    const header = /^ *(?:\d+\/)?(\d+) +(\d+) *$/.exec(line)
    if (header !== null) {
      const tid = header[1] as string
      frames = []
      let samples = byThread.get(tid)
      if (samples === undefined) byThread.set(tid, samples = [])
      samples.push({ frames, ns: Number(header[2]) })
      continue
    }
    const frame = /^\t\s*[0-9a-f]+\s+(.*?)(?:\+0x[0-9a-f]+)?(?: \([^()]*\))?\s*$/.exec(line)
    // V8 marks a JS frame's tier (JS:* TurboFan, + Maglev, ^ Sparkplug, ~ interpreted; Node 24 adds
    // a ' after some): one name per function.
    if (frame !== null && frames !== undefined) frames.push((frame[1] as string).replace(/^JS:[*^+~']*/, 'JS:'))
  }
  return byThread
}

/** µs per connection by frame: inclusive (each frame once per sample) and self (the innermost frame). */
export interface FrameTimes { readonly inclusive: Map<string, number>, readonly self: Map<string, number>, readonly total: number }

/**
 * Totals the samples of one thread per connection. With `under`, only samples with a frame matching
 * it count, and "inclusive" is by the frame directly beneath the outermost match.
 */
export function frameTimes (samples: readonly Sample[], conns: number, under?: RegExp): FrameTimes {
  const inclusive = new Map<string, number>()
  const self = new Map<string, number>()
  let total = 0
  for (const { frames: stack, ns } of samples) {
    const micros = ns / 1000 / conns
    const add = (m: Map<string, number>, k: string): void => { m.set(k, (m.get(k) ?? 0) + micros) }
    let charged: readonly string[] = stack
    if (under !== undefined) {
      const at = stack.findLastIndex((f) => under.test(f))
      if (at < 0) continue
      const beneath = stack[at - 1]
      charged = [beneath ?? '(self)']
    }
    total += micros
    add(self, stack[0] ?? '(no frame)')
    for (const f of new Set(charged)) add(inclusive, f)
  }
  return { inclusive, self, total }
}
