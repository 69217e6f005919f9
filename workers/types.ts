// The thread boundary: everything that crosses into a validation worker and back is declared
// here and nowhere else. Only plain data (structured-clone safe), never classes or errors.

/** Certificates a device may send besides its leaf: the gateway reads at most one more (so "too many" stays visible) and the validator refuses beyond it. */
export const MAX_SENT_CERTIFICATES = 10

/** Why a chain was refused. One closed set; the gateway adds its own reasons on top. */
export const CHAIN_REASONS = [
  'malformed_certificate',
  'chain_too_long',
  'chain_untrusted',
  'bad_signature',
  'cert_expired',
  'cert_not_yet_valid',
  'issuer_not_ca',
  'path_length_exceeded',
  'leaf_is_ca',
  'leaf_key_usage',
  'eku_not_allowed',
  'unknown_critical_extension',
  'name_constraints_violated',
  'name_constraints_unsupported',
  'nonconforming_certificate',
  'policy_constraints_violated',
  'weak_key',
  'weak_algorithm',
  'unsupported_algorithm',
  'work_limit_exceeded',
  'cert_revoked',
  // Library only (validateChain with `crls`): no supplied CRL decides a certificate's status.
  'revocation_unknown'
] as const
export type ChainReason = typeof CHAIN_REASONS[number]

export interface Refusal<R extends string = ChainReason> {
  readonly ok: false
  readonly reason: R
  /** A sentence a person can act on (which certificate, what is wrong). */
  readonly detail: string
}

/** One certificate of a validated path, as revocation needs it (live rechecks happen on the main thread). */
export interface PathCert {
  /** SHA-256 of the DER, lowercase hex: what the deny-list holds. */
  readonly thumbprint: string
  /** The issuer Name's comparison key (Certificate.issuerKey), and the serial's bytes as hex: what a CRL lists. */
  readonly issuer: string
  readonly serial: string
}

export type ChainVerdict =
  | { readonly ok: true, readonly anchorIndex: number, readonly pathNotAfter: number, /** Leaf first, the anchor last. */ readonly path: readonly PathCert[] }
  | Refusal

/**
 * What is revoked, as plain data: the deny-list's thumbprints, and per CRL its issuer Name (DER,
 * its comparison key) with the serials it lists (hex of the INTEGER's bytes). Each side builds its look-up
 * structure once per snapshot (workers/revocation.ts).
 */
/** `source` names the CRL's signer for refusal details: `CA "name"` or `intermediate "CN" (thumbprint …) under CA "name"`. */
export interface RevocationData {
  readonly denied: readonly string[]
  readonly crls: ReadonlyArray<{ readonly source: string, readonly issuer: string, readonly serials: readonly string[] }>
}

/** What the worker learned about the leaf, whatever the chain's fate. */
export interface LeafFacts {
  /** SHA-256 of the leaf DER, lowercase hex (the IoT Hub x509 thumbprint, SHA-256 flavour). */
  readonly thumbprint: string
  readonly commonNames: readonly string[]
  readonly notBefore: number
  readonly notAfter: number
  /** Why the leaf alone is unacceptable (validity, key, usage), for self-signed authentication. */
  readonly ownProblem: Refusal | undefined
}

export interface ValidationOutcome {
  /** Undefined when the leaf itself could not be parsed. */
  readonly leaf: LeafFacts | undefined
  readonly chain: ChainVerdict
}

/** One device's certificates, as sent. */
export interface ValidationItem {
  readonly leaf: Uint8Array
  readonly intermediates: readonly Uint8Array[]
}

/** One validation task. `anchors` and `revocation` are sent only when the worker reported a stale trust epoch. */
export interface ValidationTask extends ValidationItem {
  readonly epoch: number
  readonly at: number
  readonly anchors?: readonly Uint8Array[]
  readonly revocation?: RevocationData
}

/**
 * Several validations in one message: the pool sends whatever queued up while every thread was
 * busy, so one thread wake-up and one message each way serve them all. Same epoch rule as a task.
 */
export interface ValidationBatch {
  readonly epoch: number
  readonly at: number
  readonly anchors?: readonly Uint8Array[]
  readonly revocation?: RevocationData
  readonly items: readonly ValidationItem[]
}

export type DoneReply = { readonly kind: 'done', readonly outcome: ValidationOutcome, readonly cacheHits: number, readonly cacheMisses: number,
  readonly cacheSize: number, readonly micros: number }

export type ValidationReply =
  | { readonly kind: 'stale', readonly workerEpoch: number }
  | DoneReply

/** The answer to a batch: one reply per item, in order. */
export type ValidationBatchReply =
  | { readonly kind: 'stale', readonly workerEpoch: number }
  | { readonly kind: 'batch', readonly replies: readonly DoneReply[] }

/** Fixed per-thread settings, passed as Piscina workerData. */
export interface WorkerConfig {
  /** Capacity of the verified-intermediate cache; 0 turns it off. */
  readonly cacheEntries: number
}
