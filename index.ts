// certgate's library entry: the same chain validator the gateway's workers run (documented in the
// README's Library section).
import { buildAnchorSet, ekuOid, validatePath } from './workers/validate-chain.js'

export interface ValidateChainInput {
  /** DER, as the device sent it. */
  readonly leaf: Uint8Array
  /** DER, unordered; may hold extra or stale certificates. */
  readonly intermediates: readonly Uint8Array[]
  /** DER of trusted CA certificates (root or intermediate). */
  readonly anchors: readonly Uint8Array[]
  /** Validation time; default now. */
  readonly at?: Date
  /** EKU the leaf must allow if it has an EKU extension: 'clientAuth' (default), 'serverAuth' or a dotted OID. */
  readonly requiredEku?: string
}

export type ValidateChainResult =
  | { ok: true, deviceId?: string, anchor: Uint8Array }
  | { ok: false, reason: string, detail: string }

/** Validates a device chain. Never throws for bad input; bounded in time whatever the input. */
export async function validateChain (input: ValidateChainInput): Promise<ValidateChainResult> {
  return validateChainSync(input)
}

function validateChainSync (input: ValidateChainInput): ValidateChainResult {
  try {
    const raw: unknown = input
    const given = (typeof raw === 'object' && raw !== null ? raw : {}) as { leaf?: unknown, intermediates?: unknown, anchors?: unknown, at?: unknown,
      requiredEku?: unknown }
    if (given.at !== undefined && !(given.at instanceof Date)) return { ok: false, reason: 'invalid_input', detail: 'at must be a Date' }
    if (given.requiredEku !== undefined && typeof given.requiredEku !== 'string') return { ok: false, reason: 'invalid_input',
      detail: 'requiredEku must be a string' }
    if (!(given.leaf instanceof Uint8Array) || !Array.isArray(given.intermediates) || !Array.isArray(given.anchors)) {
      return { ok: false, reason: 'invalid_input', detail: 'leaf must be a Uint8Array, intermediates and anchors arrays of Uint8Array' }
    }
    const certs: unknown[] = [...(given.intermediates as unknown[]), ...(given.anchors as unknown[])]
    // Array.from visits holes in sparse arrays too (every() would skip them).
    if (!Array.from(certs).every((c) => c instanceof Uint8Array)) return { ok: false, reason: 'invalid_input',
      detail: 'every certificate must be a Uint8Array of DER' }
    const eku = ekuOid(input.requiredEku ?? 'clientAuth')
    if (eku === undefined) return { ok: false, reason: 'invalid_input',
      detail: `requiredEku "${input.requiredEku ?? ''}" is not 'clientAuth', 'serverAuth' or a dotted OID` }
    const at = input.at === undefined ? Date.now() : input.at.getTime()
    if (Number.isNaN(at)) return { ok: false, reason: 'invalid_input', detail: 'at is an invalid Date' }
    const { set } = buildAnchorSet(input.anchors)
    const { leaf, chain } = validatePath(input.leaf, input.intermediates, set, { at, requiredEku: eku })
    if (!chain.ok) return { ok: false, reason: chain.reason, detail: chain.detail }
    const anchor = input.anchors[chain.anchorIndex] as Uint8Array
    const cns = leaf?.commonNames ?? []
    return cns.length === 1 ? { ok: true, deviceId: cns[0] as string, anchor } : { ok: true, anchor }
  } catch (err) {
    // A bug, not bad input: still an answer, never an exception.
    return { ok: false, reason: 'internal_error', detail: (err as Error).message }
  }
}
