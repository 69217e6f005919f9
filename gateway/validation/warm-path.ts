// The fast path for warm chains (DESIGN.md §2 step 4). When every certificate the device sent
// beyond its leaf is already held on the event loop as part of a chain the pool accepted at this
// trust epoch, what is left is the leaf: parse it, verify its one signature, check its validity,
// keyUsage, EKU and the path's constraints. That is tens of microseconds, less than the thread hop
// it would take to send it to the pool, so it runs here, with the same validator (validatePath)
// and a cache of the same kind each worker keeps. Anything else (an intermediate never seen in an
// accepted chain, junk, the first chains after a trust change) goes to the pool; the chains it
// accepts are then validated once here, which fills this cache. Only accepted chains teach it, so
// a device sending junk never costs the event loop more than its leaf.
//
// What must not change does not: the leaf is parsed and its signature verified on every
// connection (the cache never holds a leaf link), a cache only memoizes parsed intermediates and
// verified intermediate links (every path is still built and checked in full, so no cache
// completes a chain), and a trust change empties this cache synchronously, before the next
// connection is decided.
import { OID } from '../../workers/certificate.js'
import { buildAnchorSet, sha256Hex, validatePath, type AnchorSet, type HeldIntermediate, type IntermediateCache } from '../../workers/validate-chain.js'
import { createExpiringLru } from '../../cache/expiring-lru.js'
import { EMPTY_REVOCATION, buildRevocationSet, withLeafDenial } from '../../workers/revocation.js'
import type { RevocationData } from '../../workers/types.js'
import type { PoolVerdict, TrustedCa, ValidatorPool, ValidatorPoolHooks } from './validator-pool.js'

export interface WarmPathOptions {
  /** Entries of the event loop's cache of parsed intermediates and verified links. */
  readonly cacheEntries: number
  /** EKU the leaf must allow (the gateway: clientAuth; tests: what the case asks). */
  readonly requiredEku?: string
  readonly now?: () => number
}

export interface WarmPath {
  /** The verdict, decided here, when the chain is warm; undefined: send it to the pool. */
  decide: (leaf: Uint8Array, intermediates: readonly Uint8Array[], at?: number) => PoolVerdict | undefined
  /** After the pool accepted a chain: validate it once here, so the next one like it is warm. */
  learn: (leaf: Uint8Array, intermediates: readonly Uint8Array[], at?: number) => void
  /** A new trust snapshot: forgets everything learned, at once. */
  setTrusted: (cas: readonly TrustedCa[]) => void
  /** A new revocation snapshot (deny-list, CRLs): applies to the next decision, and forgets what was learned. */
  setRevocation: (data: RevocationData) => void
}

interface Warm { readonly hashes: readonly string[], readonly held: ReadonlyArray<HeldIntermediate | undefined> }

export function createWarmPath (options: WarmPathOptions, hooks: ValidatorPoolHooks = {}): WarmPath {
  const now = options.now ?? Date.now
  const requiredEku = options.requiredEku ?? OID.clientAuth
  const cache: IntermediateCache = createExpiringLru({ maxEntries: Math.max(1, options.cacheEntries), now })
  let cas: readonly TrustedCa[] = []
  // Parsed when first needed after a trust change (the workers parse their own copy).
  let anchors: AnchorSet | undefined
  let revocation = buildRevocationSet(EMPTY_REVOCATION)

  const anchorSet = (): AnchorSet => (anchors ??= buildAnchorSet(cas.map((c) => c.der)).set)

  /** When every certificate sent beyond the leaf is an anchor or held from an accepted chain (warm): the SHA-256 of each and what the cache holds for it; else undefined. */
  const warm = (intermediates: readonly Uint8Array[], set: AnchorSet): Warm | undefined => {
    const hashes: string[] = []
    const held: Array<HeldIntermediate | undefined> = []
    for (const der of intermediates) {
      const hash = sha256Hex(der)
      if (set.hashes.has(hash)) {
        held.push(undefined) // an anchor the device also sent: the path search leaves it out
      } else {
        const entry = cache.get(hash)
        if (entry === undefined) return undefined
        held.push(entry)
      }
      hashes.push(hash)
    }
    return { hashes, held }
  }

  const validate = (leaf: Uint8Array, intermediates: readonly Uint8Array[], known: Warm | undefined, set: AnchorSet, at: number): PoolVerdict => {
    const started = performance.now()
    const outcome = withLeafDenial(validatePath(leaf, intermediates, set, { at, requiredEku, cache, revocation, sentHashes: known?.hashes, sentHeld: known?.held }), revocation)
    const { hits, misses } = cache.takeStats()
    hooks.onValidated?.({ micros: (performance.now() - started) * 1000, cacheHits: hits, cacheMisses: misses, cacheSize: cache.size })
    return { kind: 'done', outcome, anchorName: outcome.chain.ok ? cas[outcome.chain.anchorIndex]?.name : undefined }
  }

  return {
    decide (leaf, intermediates, at = now()) {
      const set = anchorSet()
      const known = warm(intermediates, set)
      return known === undefined ? undefined : validate(leaf, intermediates, known, set, at)
    },
    learn (leaf, intermediates, at = now()) {
      // Validated here even if another connection taught it meanwhile: then its look-ups all hit.
      const verdict = validate(leaf, intermediates, undefined, anchorSet(), at)
      // Not accepted here (the trust or the clock moved since the pool decided): hold nothing
      // this chain's intermediates put in the cache.
      if (verdict.kind === 'done' && !verdict.outcome.chain.ok) cache.clear()
    },
    setTrusted (next) {
      cas = [...next]
      anchors = undefined
      cache.clear()
    },
    setRevocation (data) {
      revocation = buildRevocationSet(data)
      cache.clear()
    }
  }
}

/** The pool behind the warm path: warm chains are decided on the event loop, the rest in the pool. */
export function withWarmPath (pool: ValidatorPool, options: WarmPathOptions, hooks: ValidatorPoolHooks = {}): ValidatorPool {
  const fast = createWarmPath(options, hooks)
  return {
    async validate (leaf, intermediates) {
      const decided = fast.decide(leaf, intermediates)
      if (decided !== undefined) return decided
      const verdict = await pool.validate(leaf, intermediates)
      if (verdict.kind === 'done' && verdict.outcome.chain.ok) fast.learn(leaf, intermediates)
      return verdict
    },
    setTrusted (cas) {
      fast.setTrusted(cas)
      pool.setTrusted(cas)
    },
    setRevocation (data) {
      fast.setRevocation(data)
      pool.setRevocation(data)
    },
    stats: () => pool.stats(),
    close: async () => { await pool.close() }
  }
}
