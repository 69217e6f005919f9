// certgate's library entry: the same chain validator the gateway's workers run (documented in the
// README's Library section).
import { buildAnchorSet, ekuOid, validatePath } from './workers/validate-chain.js'
import { MAX_SUPPLIED_CRLS, readSuppliedCrls, type SuppliedCrls } from './workers/supplied-crls.js'

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
  /**
   * CRLs (DER bytes, or PEM as a string or bytes). When given, every certificate of the path but the
   * anchor must have its status decided by one of them (RFC 5280 §6.3): revoked → `cert_revoked`,
   * undecidable → `revocation_unknown` (docs/validation.md). Absent: no revocation checking.
   */
  readonly crls?: ReadonlyArray<Uint8Array | string>
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
      requiredEku?: unknown, crls?: unknown }
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
    let crls: SuppliedCrls | undefined
    if (given.crls !== undefined) {
      if (!Array.isArray(given.crls) || !Array.from(given.crls as unknown[]).every((c) => c instanceof Uint8Array || typeof c === 'string')) {
        return { ok: false, reason: 'invalid_input', detail: 'crls must be an array of CRLs: Uint8Array (DER or PEM) or string (PEM)' }
      }
      if (given.crls.length > MAX_SUPPLIED_CRLS) return { ok: false, reason: 'invalid_input',
        detail: `${given.crls.length} CRLs were supplied; at most ${MAX_SUPPLIED_CRLS} are taken` }
      const read = readSuppliedCrls(given.crls as ReadonlyArray<Uint8Array | string>)
      if (!read.ok) return { ok: false, reason: 'revocation_unknown', detail: read.detail }
      crls = read.crls
    }
    const { set } = buildAnchorSet(input.anchors)
    const { leaf, chain } = validatePath(input.leaf, input.intermediates, set, { at, requiredEku: eku, crls })
    if (!chain.ok) return { ok: false, reason: chain.reason, detail: chain.detail }
    const anchor = input.anchors[chain.anchorIndex] as Uint8Array
    const cns = leaf?.commonNames ?? []
    return cns.length === 1 ? { ok: true, deviceId: cns[0] as string, anchor } : { ok: true, anchor }
  } catch (err) {
    // A bug, not bad input: still an answer, never an exception.
    return { ok: false, reason: 'internal_error', detail: (err as Error).message }
  }
}
