// certgate's log: JSON lines (pino) on stdout, written by the event loop itself, in batches.
// pino's default destination hands every line to libuv's thread pool (one fs.write per line, a
// thread woken to do it and the event loop woken again to hear it finished): on the handshake
// path that cost more than any other step once the cores were busy
// (docs/benchmarks-performance.md). Here lines gather in memory and go out in one write(2) once
// 4 KB have gathered, 50 ms after the first line of a batch, and at exit: a refusal's line
// reaches the log within 50 ms. Only a SIGKILL can lose what was gathered.
import { writeSync } from 'node:fs'
import { pino, type Logger, type DestinationStream } from 'pino'

export type { Logger }

/**
 * A batch is written at this size, or this long after its first line, whichever comes first. At
 * most PIPE_BUF: the processes of a group share one stdout, and POSIX keeps a pipe write of up to
 * PIPE_BUF bytes whole, so their lines never interleave mid-line.
 */
export const LOG_BATCH_BYTES = 4096
export const LOG_BATCH_MS = 50

/** What a write to a full pipe waits on (5 ms at a time). */
const FULL_PIPE_PAUSE = new Int32Array(new SharedArrayBuffer(4))

/** Writes all of `text` to `fd`, waiting out a full pipe; gives up on other errors (nowhere left to say so). */
function writeFully (fd: number, text: string): void {
  let buf = Buffer.from(text)
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(fd, buf))
    } catch (err) {
      if ((err as { code?: string }).code !== 'EAGAIN') return
      Atomics.wait(FULL_PIPE_PAUSE, 0, 0, 5)
    }
  }
}

/** Lines for `fd`, gathered and written in batches (see above). */
export function batchedDestination (fd: number): DestinationStream & { flush: () => void } {
  let pending = ''
  let pendingBytes = 0
  let timer: NodeJS.Timeout | undefined
  const flush = (): void => {
    if (timer !== undefined) { clearTimeout(timer); timer = undefined }
    if (pending === '') return
    const text = pending
    pending = ''
    pendingBytes = 0
    writeFully(fd, text)
  }
  return {
    flush,
    write (line: string) {
      const bytes = Buffer.byteLength(line)
      // Whole lines only: a batch that this line would take past the limit goes out first.
      if (pendingBytes + bytes > LOG_BATCH_BYTES) flush()
      pending += line
      pendingBytes += bytes
      if (pendingBytes >= LOG_BATCH_BYTES) flush()
      else if (timer === undefined) {
        timer = setTimeout(flush, LOG_BATCH_MS)
        timer.unref()
      }
    }
  }
}

/**
 * pino's `"time"` (epoch milliseconds), the same text as its default: a 13-digit count of
 * milliseconds is a heap number, which V8 turns into text through its shortest-double algorithm
 * (~3.5 µs a line between handshakes, perf on Node 22); written as two small integers it takes
 * V8's integer path.
 */
export function epochTime (now = Date.now()): string {
  const high = Math.floor(now / 1e6)
  return `,"time":${high}${String(now - high * 1e6).padStart(6, '0')}`
}

let stdout: ReturnType<typeof batchedDestination> | undefined

/** A logger on stdout. One batch per process: every gateway in it (tests start several) shares it. */
export function createLog (level: string, base: Record<string, unknown>): Logger {
  if (stdout === undefined) {
    const out = batchedDestination(1)
    process.on('exit', out.flush)
    stdout = out
  }
  return pino({ level, base, timestamp: () => epochTime() }, stdout)
}
