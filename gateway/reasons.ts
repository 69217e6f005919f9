// Every reason a device is refused or a live connection is closed: one closed set each, used
// as-is for the metric label, the log field and docs/reasons.md (a drift test keeps them in step).
import { CHAIN_REASONS } from '../workers/types.js'

export const GATEWAY_REASONS = [
  'no_client_cert',
  'no_device_id',
  'ambiguous_device_id',
  'invalid_device_id',
  'device_unknown',
  'device_disabled',
  'thumbprint_mismatch',
  'overloaded',
  'validator_failed',
  'registry_unavailable',
  'mqtt_protocol_error',
  'mqtt_client_id_mismatch',
  'mqtt_version_unsupported',
  'upstream_unavailable',
  'ocsp_unavailable'
] as const

export const REFUSAL_REASONS = [...CHAIN_REASONS, ...GATEWAY_REASONS] as const
export type RefusalReason = typeof REFUSAL_REASONS[number]

/** Why an authenticated, live connection was closed by certgate. */
export const CLOSE_REASONS = [
  'device_disabled',
  'device_deleted',
  'device_changed',
  'ca_removed',
  'cert_expired',
  'cert_revoked',
  'ocsp_unavailable',
  'max_age',
  'idle',
  'upstream_closed',
  'upstream_refused',
  'mqtt_protocol_error',
  'shutdown'
] as const
export type CloseReason = typeof CLOSE_REASONS[number]

/** TLS handshake failures, bucketed (the OpenSSL code varies with key type and version), and connections closed before TLS. */
export const HANDSHAKE_FAILURES = ['timeout', 'bad_certificate_proof', 'bad_certificate', 'no_shared_cipher', 'protocol', 'not_tls', 'other', 'over_capacity', 'rate_limited', 'proxy_header_invalid', 'proxy_header_untrusted'] as const
export type HandshakeFailure = typeof HANDSHAKE_FAILURES[number]

/** How an http-mode request from a device ended: the upstream's status class, or why certgate answered itself. */
export const HTTP_OUTCOMES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'upstream_unavailable', 'upstream_timeout', 'upstream_failed_midway', 'device_aborted', 'upgraded', 'upgrade_refused'] as const
export type HttpOutcome = typeof HTTP_OUTCOMES[number]
