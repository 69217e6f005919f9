// The Piscina pool that runs chain validation off the event loop. Owns the trust snapshot sent
// to workers (verified CAs and what is revoked, numbered by epoch). Only importer of piscina.
import { Piscina } from 'piscina'
import type { DoneReply, RevocationData, ValidationBatch, ValidationBatchReply, ValidationOutcome, ValidationReply, ValidationTask,
  WorkerConfig } from '../../workers/types.js'
import { EMPTY_REVOCATION, buildRevocationSet, withLeafDenial } from '../../workers/revocation.js'
import { buildAnchorSet, validatePath, type IntermediateCache } from '../../workers/validate-chain.js'
import { OID } from '../../workers/certificate.js'
import { createExpiringLru } from '../../cache/expiring-lru.js'
import { withWarmPath } from './warm-path.js'
import { errorMessage } from '../../workers/errors.js'

export interface TrustedCa { readonly name: string, readonly der: Uint8Array }

export type PoolVerdict =
  | { readonly kind: 'done', readonly outcome: ValidationOutcome, readonly anchorName: string | undefined }
  | { readonly kind: 'overloaded' }
  | { readonly kind: 'failed', readonly detail: string }

export interface PoolStats {
  readonly queueSize: number
  /** Busy share of the pool's threads (0-1) since the previous call: the time each had a message out, averaged. */
  readonly utilization: number
  readonly running: number
  readonly threads: number
}

export interface ValidatorPool {
  validate: (leaf: Uint8Array, intermediates: readonly Uint8Array[]) => Promise<PoolVerdict>
  /** Installs a new trust snapshot; later validations use it. */
  setTrusted: (cas: readonly TrustedCa[]) => void
  /** Installs a new revocation snapshot (deny-list and CRLs); later validations use it. */
  setRevocation: (data: RevocationData) => void
  stats: () => PoolStats
  close: () => Promise<void>
}

export interface ValidatorPoolOptions {
  readonly threads: number
  /** Validations waiting for a thread before new ones are refused as overloaded. */
  readonly maxQueue: number
  /** Verified-intermediate cache entries per worker; 0 turns the cache off. */
  readonly cacheEntries: number
  /** The worker module (default: workers/validate-worker.js). */
  readonly workerFile?: URL
  readonly now?: () => number
}

export interface ValidatorPoolHooks {
  /** Called once per finished validation with the worker's own timing and cache counts. */
  readonly onValidated?: (r: { micros: number, cacheHits: number, cacheMisses: number, cacheSize: number }) => void
}

interface Snapshot { readonly epoch: number, readonly cas: readonly TrustedCa[], readonly ders: readonly Uint8Array[], readonly revocation: RevocationData }

/**
 * threads = 0 validates everything on the event loop (cheaper per connection on 2-core machines);
 * otherwise a Piscina pool, with warm chains decided on the event loop (warm-path.ts) unless the
 * cache is off (cacheEntries = 0: every validation goes to the pool).
 */
export function createValidator (options: ValidatorPoolOptions, hooks: ValidatorPoolHooks = {}): ValidatorPool {
  if (options.threads === 0) return createInlineValidator(options, hooks)
  const pool = createValidatorPool(options, hooks)
  return options.cacheEntries > 0 ? withWarmPath(pool,
    { cacheEntries: options.cacheEntries, ...(options.now === undefined ? {} : { now: options.now }) }, hooks) : pool
}

/**
 * The same validation on the main thread, with the same cache: no thread hop, but every
 * validation blocks the event loop for its duration (~0.2 ms warm, ~0.8 ms cold here).
 */
function createInlineValidator (options: ValidatorPoolOptions, hooks: ValidatorPoolHooks): ValidatorPool {
  const now = options.now ?? Date.now
  const cache: IntermediateCache | undefined = options.cacheEntries > 0 ? createExpiringLru({ maxEntries: options.cacheEntries }) : undefined
  let snapshot = { cas: [] as readonly TrustedCa[], anchors: buildAnchorSet([]).set }
  let revocation = buildRevocationSet(EMPTY_REVOCATION)
  return {
    async validate (leaf, intermediates) {
      const started = performance.now()
      const outcome = withLeafDenial(validatePath(leaf, intermediates, snapshot.anchors,
        { at: now(), requiredEku: OID.clientAuth, cache, revocation }), revocation)
      const { hits, misses } = cache?.takeStats() ?? { hits: 0, misses: 0 }
      hooks.onValidated?.({ micros: (performance.now() - started) * 1000, cacheHits: hits, cacheMisses: misses, cacheSize: cache?.size ?? 0 })
      return { kind: 'done', outcome, anchorName: outcome.chain.ok ? snapshot.cas[outcome.chain.anchorIndex]?.name : undefined }
    },
    setTrusted (cas) {
      snapshot = { cas: [...cas], anchors: buildAnchorSet(cas.map((c) => c.der)).set }
      cache?.clear()
    },
    setRevocation (data) { revocation = buildRevocationSet(data) },
    stats: () => ({ queueSize: 0, utilization: 0, running: 0, threads: 0 }),
    close: async () => undefined
  }
}

/** Most validations sent to a thread in one message (bounds one message's work and latency). */
const BATCH_MAX = 32

interface Waiting { readonly leaf: Uint8Array, readonly intermediates: readonly Uint8Array[], readonly resolve: (v: PoolVerdict) => void }

/**
 * A Piscina pool with at most one message per thread in flight. A validation that finds a thread
 * free goes at once, alone; validations that arrive while every thread is busy wait here and go
 * together in the next message. Each message costs a structured clone and a thread wake-up each
 * way, so under a storm one hop serves many devices, while a quiet gateway adds no delay.
 * `maxQueue` bounds the validations waiting here; Piscina's own queue is left unbounded, since
 * with one message per thread in flight it never holds more than `threads` tasks.
 */
export function createValidatorPool (options: ValidatorPoolOptions, hooks: ValidatorPoolHooks = {}): ValidatorPool {
  const now = options.now ?? Date.now
  const pool = new Piscina<ValidationTask | ValidationBatch, ValidationReply | ValidationBatchReply>({
    filename: (options.workerFile ?? new URL('../../workers/validate-worker.js', import.meta.url)).href,
    minThreads: options.threads,
    maxThreads: options.threads,
    idleTimeout: 2 ** 31 - 1,
    workerData: { cacheEntries: options.cacheEntries } satisfies WorkerConfig,
    // Its run- and wait-time histograms are not read: utilization is counted here (busyTime).
    // Piscina's own is an average since the pool started, and each read summarises the run-time
    // histogram (mean, deviation, 15 percentiles): ~0.3 ms of the event loop.
    recordTiming: false
  })
  let snapshot: Snapshot = { epoch: 0, cas: [], ders: [], revocation: EMPTY_REVOCATION }
  const waiting: Waiting[] = []
  let busy = 0 // messages out at the threads
  const busyTime = busyShare(options.threads)
  let running = 0 // validations inside them
  let closed = false

  /** One message to a thread; sends the anchors again if the thread's snapshot is stale. */
  async function send (snap: Snapshot, items: readonly Waiting[]): Promise<readonly DoneReply[] | undefined> {
    const at = now()
    const message = (anchors: readonly Uint8Array[] | undefined): ValidationTask | ValidationBatch => {
      const base = { epoch: snap.epoch, at, ...(anchors === undefined ? {} : { anchors, revocation: snap.revocation }) }
      const [only] = items
      // A lone validation goes as a plain task: the common case on a quiet gateway.
      return items.length === 1 && only !== undefined
        ? { ...base, leaf: only.leaf, intermediates: only.intermediates }
        : { ...base, items: items.map((w) => ({ leaf: w.leaf, intermediates: w.intermediates })) }
    }
    let reply = await pool.run(message(undefined))
    if (reply.kind === 'stale') reply = await pool.run(message(snap.ders))
    if (reply.kind === 'stale') return undefined
    return reply.kind === 'batch' ? reply.replies : [reply]
  }

  async function validateNow (items: readonly Waiting[]): Promise<PoolVerdict[]> {
    const failed = (detail: string): PoolVerdict[] => items.map(() => ({ kind: 'failed', detail }))
    // A trust change during validation: validate again against the new snapshot, so a CA
    // removed meanwhile never authenticates anyone.
    for (let attempt = 0; attempt < 3; attempt++) {
      const snap = snapshot
      const replies = await send(snap, items)
      if (replies?.length !== items.length) return failed('worker kept reporting a stale trust snapshot')
      for (const r of replies) hooks.onValidated?.(r)
      if (snap === snapshot) {
        return replies.map(({ outcome }) => ({ kind: 'done', outcome, anchorName: outcome.chain.ok ? snap.cas[outcome.chain.anchorIndex]?.name : undefined }))
      }
    }
    return failed('trust changed repeatedly during validation')
  }

  function dispatch (): void {
    while (!closed && busy < options.threads && waiting.length > 0) {
      const items = waiting.splice(0, BATCH_MAX)
      busyTime.account(busy++)
      running += items.length
      validateNow(items).catch((err: unknown): PoolVerdict[] => {
        // A worker that threw, exited or crashed fails every validation it held, closed.
        const message = errorMessage(err)
        return items.map(() => ({ kind: 'failed', detail: message }))
      }).then((verdicts) => {
        busyTime.account(busy--)
        running -= items.length
        items.forEach((w, i) => { w.resolve(verdicts[i] ?? { kind: 'failed', detail: 'no verdict' }) })
        dispatch()
      }, () => undefined)
    }
  }

  return {
    async validate (leaf, intermediates) {
      if (closed) return { kind: 'failed', detail: 'the validator pool is closed' }
      if (waiting.length >= options.maxQueue) return { kind: 'overloaded' }
      return await new Promise<PoolVerdict>((resolve) => {
        waiting.push({ leaf, intermediates, resolve })
        dispatch()
      })
    },
    setTrusted (cas) {
      snapshot = { ...snapshot, epoch: snapshot.epoch + 1, cas: [...cas], ders: cas.map((c) => c.der) }
    },
    setRevocation (data) {
      snapshot = { ...snapshot, epoch: snapshot.epoch + 1, revocation: data }
    },
    stats: () => ({ queueSize: waiting.length, utilization: busyTime.read(busy), running, threads: options.threads }),
    close: async () => {
      closed = true
      for (const w of waiting.splice(0)) w.resolve({ kind: 'failed', detail: 'the validator pool is closed' })
      await pool.close({ force: true })
    }
  }
}

/**
 * Thread-time with a message out, as a share of all the threads' time since the previous read: a
 * thread holding a message is taken, whether it is computing or the message is on its way.
 */
export function busyShare (threads: number, clock: () => number = () => performance.now()): { account: (busy: number) => number, read: (busy: number) => number } {
  let since = clock() // the last change or read
  let readAt = since
  let busyMs = 0 // thread-milliseconds with a message out since readAt
  const account = (busy: number): number => {
    const now = clock()
    busyMs += busy * (now - since)
    since = now
    return now
  }
  return {
    /** Call with the count of messages out before it changes. */
    account,
    read: (busy) => {
      const now = account(busy)
      const share = now > readAt && threads > 0 ? busyMs / ((now - readAt) * threads) : 0
      readAt = now
      busyMs = 0
      return Math.min(1, share)
    }
  }
}
