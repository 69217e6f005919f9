// The gateway decides a chain one of two ways: in the pool (validatePath in a worker, what the
// library's validateChain runs) or, when the chain is warm, on the event loop
// (gateway/validation/warm-path.ts). The validator's table tests and the fuzzer call validateChain
// through this: every input is validated as the library does, and, whenever the warm path would
// decide it, the warm path's verdict must be the same case by case (same ok, reason and detail,
// same anchor and deviceId). Accepted inputs teach the warm path, as the pool's verdicts do in the
// gateway, so later inputs that reuse their intermediates (mutated or different leaves) go warm.
import assert from 'node:assert/strict'
import { validateChain, type ValidateChainInput, type ValidateChainResult } from '../../../index.js'
import { createWarmPath, type WarmPath } from '../../../gateway/validation/warm-path.js'
import { ekuOid, sha256Hex } from '../../validate-chain.js'
import type { PoolVerdict } from '../../../gateway/validation/validator-pool.js'

export interface BothWays {
  validate: (input: ValidateChainInput) => Promise<ValidateChainResult>
  /** Inputs the warm path decided (and that agreed). */
  readonly warmDecided: number
}

/** Plain inputs only (the hostile shapes are the library's own business): a warm path per anchor set and EKU. */
function usable (input: ValidateChainInput): boolean {
  const i = input as { leaf?: unknown, intermediates?: unknown, anchors?: unknown, at?: unknown, requiredEku?: unknown } | null | undefined
  return typeof i === 'object' && i !== null && i.leaf instanceof Uint8Array && Array.isArray(i.intermediates) && Array.isArray(i.anchors) &&
    Array.from(i.intermediates as unknown[]).concat(Array.from(i.anchors as unknown[])).every((c) => c instanceof Uint8Array) && (i.at === undefined || (i.at instanceof Date && !Number.isNaN(i.at.getTime()))) &&
    (i.requiredEku === undefined || (typeof i.requiredEku === 'string' && ekuOid(i.requiredEku) !== undefined))
}

/** The library's answer for the warm path's verdict, mapped exactly as index.ts maps validatePath's. */
function asResult (v: PoolVerdict, input: ValidateChainInput): ValidateChainResult {
  if (v.kind !== 'done') assert.fail(`the warm path answered ${v.kind}`)
  const { leaf, chain } = v.outcome
  if (!chain.ok) return { ok: false, reason: chain.reason, detail: chain.detail }
  const anchor = input.anchors[chain.anchorIndex] as Uint8Array
  assert.equal(v.anchorName, String(chain.anchorIndex))
  const cns = leaf?.commonNames ?? []
  return cns.length === 1 ? { ok: true, deviceId: cns[0] as string, anchor } : { ok: true, anchor }
}

export function bothWays (): BothWays {
  const paths = new Map<string, WarmPath>()
  let warmDecided = 0
  const pathFor = (input: ValidateChainInput): WarmPath => {
    const key = `${input.requiredEku ?? 'clientAuth'}|${input.anchors.map((a) => sha256Hex(a)).join(',')}`
    let path = paths.get(key)
    if (path === undefined) {
      if (paths.size > 64) paths.clear() // the fuzzer swaps anchors: stay bounded
      path = createWarmPath({ cacheEntries: 1000, requiredEku: ekuOid(input.requiredEku ?? 'clientAuth') as string })
      path.setTrusted(input.anchors.map((der, i) => ({ name: String(i), der })))
      paths.set(key, path)
    }
    return path
  }
  return {
    async validate (input) {
      const cold = await validateChain(input)
      if (!usable(input) || (!cold.ok && cold.reason === 'internal_error')) return cold
      const path = pathFor(input)
      const at = input.at?.getTime() ?? Date.now()
      const warm = path.decide(input.leaf, input.intermediates, at)
      if (warm !== undefined) {
        warmDecided++
        assert.deepEqual(asResult(warm, input), cold, 'the event loop\'s warm path and the pool disagree')
      }
      if (cold.ok) path.learn(input.leaf, input.intermediates, at)
      return cold
    },
    get warmDecided () { return warmDecided }
  }
}
