// The one error class certificate parsing throws for malformed input (besides DerError).
export class CertificateError extends Error {
  override name = 'CertificateError'
}
