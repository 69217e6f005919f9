// The Piscina pool that runs chain validation off the event loop. Owns the trust snapshot sent
// to workers (verified CAs, numbered by epoch). Only importer of piscina.
import { Piscina } from 'piscina'
import type { ValidationOutcome, ValidationReply, ValidationTask, WorkerConfig } from '../../workers/types.js'
import { buildAnchorSet, validatePath, type IntermediateCache } from '../../workers/validate-chain.js'
import { OID } from '../../workers/certificate.js'
import { createExpiringLru } from '../../cache/expiring-lru.js'

export interface TrustedCa { readonly name: string, readonly der: Uint8Array }

export type PoolVerdict =
  | { readonly kind: 'done', readonly outcome: ValidationOutcome, readonly anchorName: string | undefined }
  | { readonly kind: 'overloaded' }
  | { readonly kind: 'failed', readonly detail: string }

export interface PoolStats { readonly queueSize: number, readonly utilization: number, readonly running: number, readonly threads: number }

export interface ValidatorPool {
  validate: (leaf: Uint8Array, intermediates: readonly Uint8Array[]) => Promise<PoolVerdict>
  /** Installs a new trust snapshot; later validations use it. */
  setTrusted: (cas: readonly TrustedCa[]) => void
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

interface Snapshot { readonly epoch: number, readonly cas: readonly TrustedCa[], readonly ders: readonly Uint8Array[] }

/** threads = 0 validates on the event loop (cheaper per connection on 2-core machines); otherwise a Piscina pool. */
export function createValidator (options: ValidatorPoolOptions, hooks: ValidatorPoolHooks = {}): ValidatorPool {
  return options.threads === 0 ? createInlineValidator(options, hooks) : createValidatorPool(options, hooks)
}

/**
 * The same validation on the main thread, with the same cache: no thread hop, but every
 * validation blocks the event loop for its duration (~0.2 ms warm, ~0.8 ms cold here).
 */
function createInlineValidator (options: ValidatorPoolOptions, hooks: ValidatorPoolHooks): ValidatorPool {
  const now = options.now ?? Date.now
  const cache: IntermediateCache | undefined = options.cacheEntries > 0 ? createExpiringLru({ maxEntries: options.cacheEntries }) : undefined
  let snapshot = { cas: [] as readonly TrustedCa[], anchors: buildAnchorSet([]).set }
  return {
    async validate (leaf, intermediates) {
      const started = process.hrtime.bigint()
      const outcome = validatePath(leaf, intermediates, snapshot.anchors, { at: now(), requiredEku: OID.clientAuth, cache })
      const { hits, misses } = cache?.takeStats() ?? { hits: 0, misses: 0 }
      hooks.onValidated?.({ micros: Number(process.hrtime.bigint() - started) / 1000, cacheHits: hits, cacheMisses: misses, cacheSize: cache?.size ?? 0 })
      return { kind: 'done', outcome, anchorName: outcome.chain.ok ? snapshot.cas[outcome.chain.anchorIndex]?.name : undefined }
    },
    setTrusted (cas) {
      snapshot = { cas: [...cas], anchors: buildAnchorSet(cas.map((c) => c.der)).set }
      cache?.clear()
    },
    stats: () => ({ queueSize: 0, utilization: 0, running: 0, threads: 0 }),
    close: async () => undefined
  }
}

export function createValidatorPool (options: ValidatorPoolOptions, hooks: ValidatorPoolHooks = {}): ValidatorPool {
  const now = options.now ?? Date.now
  const pool = new Piscina<ValidationTask, ValidationReply>({
    filename: (options.workerFile ?? new URL('../../workers/validate-worker.js', import.meta.url)).href,
    minThreads: options.threads,
    maxThreads: options.threads,
    maxQueue: options.maxQueue,
    idleTimeout: 2 ** 31 - 1,
    workerData: { cacheEntries: options.cacheEntries } satisfies WorkerConfig
  })
  let snapshot: Snapshot = { epoch: 0, cas: [], ders: [] }
  let running = 0

  async function runOnce (snap: Snapshot, leaf: Uint8Array, intermediates: readonly Uint8Array[]): Promise<PoolVerdict> {
    const base = { epoch: snap.epoch, leaf, intermediates, at: now() }
    let reply = await pool.run(base)
    if (reply.kind === 'stale') reply = await pool.run({ ...base, anchors: snap.ders })
    if (reply.kind !== 'done') return { kind: 'failed', detail: 'worker kept reporting a stale trust snapshot' }
    hooks.onValidated?.(reply)
    const { outcome } = reply
    return { kind: 'done', outcome, anchorName: outcome.chain.ok ? snap.cas[outcome.chain.anchorIndex]?.name : undefined }
  }

  return {
    async validate (leaf, intermediates) {
      if (pool.queueSize >= options.maxQueue) return { kind: 'overloaded' }
      running++
      try {
        // A trust change during validation: validate again against the new snapshot, so a
        // CA removed meanwhile never authenticates anyone.
        for (let attempt = 0; attempt < 3; attempt++) {
          const snap = snapshot
          const verdict = await runOnce(snap, leaf, intermediates)
          if (snap === snapshot) return verdict
        }
        return { kind: 'failed', detail: 'trust changed repeatedly during validation' }
      } catch (err) {
        const message = (err as Error).message
        if (/queue is at limit/i.test(message)) return { kind: 'overloaded' }
        return { kind: 'failed', detail: message }
      } finally {
        running--
      }
    },
    setTrusted (cas) {
      snapshot = { epoch: snapshot.epoch + 1, cas: [...cas], ders: cas.map((c) => c.der) }
    },
    stats: () => ({ queueSize: pool.queueSize, utilization: pool.utilization, running, threads: options.threads }),
    close: async () => { await pool.close({ force: true }) }
  }
}
