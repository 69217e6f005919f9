// The HTTP headers certgate owns: an upstream may take any of them as the client's identity or
// address, so a device's copies are dropped before a request is forwarded, and certgate adds its
// own (x-certgate-device-id, x-forwarded-client-cert, x-forwarded-for, x-forwarded-proto).
// Drawn from what proxies in front of applications set and applications trust: Envoy (x-envoy-*,
// XFCC), nginx (X-Real-IP, X-SSL-*), RFC 7239 Forwarded, CDNs' client-address headers, Azure App
// Service's client certificate header, AWS ALB's mTLS headers, Kubernetes' authenticating proxy.

/** Owned outright. */
export const OWNED_HEADERS: ReadonlySet<string> = new Set([
  'forwarded', // RFC 7239
  'x-real-ip', // nginx
  'x-client-ip',
  'x-cluster-client-ip',
  'client-ip',
  'true-client-ip', // Akamai, Cloudflare
  'cf-connecting-ip',
  'fastly-client-ip',
  'x-original-forwarded-for',
  'x-proxyuser-ip',
  'x-arr-clientcert', // Azure App Service's client certificate
  'x-client-cert',
  'x-client-verify',
  'x-client-dn',
  'ssl-client-cert',
  'ssl-client-verify'
])

/** Owned with everything that follows. */
export const OWNED_HEADER_PREFIXES: readonly string[] = [
  'x-certgate-',
  'x-forwarded-', // -for, -proto, -host, -port, -client-cert, -user, -email …
  'x-envoy-',
  'x-ssl-', // nginx's conventional X-SSL-Client-Cert / -Verify / -DN
  'x-amzn-mtls-', // AWS ALB mTLS
  'x-remote-' // Kubernetes authenticating proxy (X-Remote-User, X-Remote-Group)
]

/** Is `name` (lowercase) a header only certgate may set? */
export function ownedHeader (name: string): boolean {
  return OWNED_HEADERS.has(name) || OWNED_HEADER_PREFIXES.some((p) => name.startsWith(p))
}
