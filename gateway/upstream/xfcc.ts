// x-forwarded-client-cert in Envoy's format (envoyproxy.io, "x-forwarded-client-cert"): semicolon-
// separated key=value pairs; Hash is the SHA-256 of the certificate DER in hex, Subject the
// RFC 2253 subject (always double-quoted), Cert and Chain URL-encoded PEM (Chain includes the leaf).
import { X509Certificate } from 'node:crypto'
import { sanitize } from '../proxy-protocol/v2-header.js'

const quoted = (value: string): string => `"${sanitize(value).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`

function pem (der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')
  return `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`
}

/** RFC 2253 order (most specific first), from Node's one-attribute-per-line, RFC 2253-escaped form. */
export function rfc2253Subject (leaf: X509Certificate): string {
  return leaf.subject.split('\n').reverse().join(',')
}

export function xfccValue (opts: { leaf: Uint8Array, intermediates: readonly Uint8Array[], thumbprint: string, withChain: boolean }): string {
  const parts = [`Hash=${opts.thumbprint}`, `Subject=${quoted(rfc2253Subject(new X509Certificate(opts.leaf)))}`]
  if (opts.withChain) {
    parts.push(`Cert=${quoted(encodeURIComponent(pem(opts.leaf)))}`)
    parts.push(`Chain=${quoted(encodeURIComponent([opts.leaf, ...opts.intermediates].map(pem).join('')))}`)
  }
  return parts.join(';')
}
