// Reads `perf script -F tid,ip,sym,dso` output: per thread, each sample's stack, innermost frame
// first. A sample is a header line (the thread id) followed by one tab-indented line per frame,
// "<address> <symbol>[+0x<offset>] (<dso>)". JS frames lose their tier mark.

/** One sample's stack, innermost frame first. */
export type Stack = readonly string[]

export function parsePerfScript (text: string): Map<string, Stack[]> {
  const byThread = new Map<string, Stack[]>()
  let frames: string[] | undefined
  for (const line of text.split('\n')) {
    const header = /^ *(?:\d+\/)?(\d+) *$/.exec(line)
    if (header !== null) {
      const tid = header[1] as string
      frames = []
      let samples = byThread.get(tid)
      if (samples === undefined) byThread.set(tid, samples = [])
      samples.push(frames)
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
 * Totals the samples of one thread, each worth `microsPerSample`. With `under`, only samples with a
 * frame matching it count, and "inclusive" is by the frame directly beneath the outermost match.
 */
export function frameTimes (samples: readonly Stack[], microsPerSample: number, under?: RegExp): FrameTimes {
  const inclusive = new Map<string, number>()
  const self = new Map<string, number>()
  const add = (m: Map<string, number>, k: string): void => { m.set(k, (m.get(k) ?? 0) + microsPerSample) }
  let total = 0
  for (const stack of samples) {
    let charged: readonly string[] = stack
    if (under !== undefined) {
      const at = stack.findLastIndex((f) => under.test(f))
      if (at < 0) continue
      const beneath = stack[at - 1]
      charged = [beneath ?? '(self)']
    }
    total += microsPerSample
    add(self, stack[0] ?? '(no frame)')
    for (const f of new Set(charged)) add(inclusive, f)
  }
  return { inclusive, self, total }
}
