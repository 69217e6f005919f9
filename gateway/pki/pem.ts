// DER to PEM (RFC 7468), in its own file so that modules needing only this do not load
// @peculiar/x509 (issue.ts): a gateway that serves devices never issues certificates.
export function toPem (der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`
}
