// The http(s) URLs in a certificate's cRLDistributionPoints extension (RFC 5280 §4.2.1.13).
// Used only on CA certificates an operator registered (never on a certificate a device sent):
// they are the addresses certgate fetches CRLs from.
import { children, expect, oidString, TAG, value, type Tlv } from './der.js'

const CDP_OID = '2.5.29.31'
/** At most this many URLs per certificate: a CA names one or two. */
const MAX_URLS = 8

/** http(s) URIs of the full names of distribution points that have no cRLIssuer (§4.2.1.13: an indirect CRL is another issuer's). */
export function crlDistributionPointUrls (der: Uint8Array): string[] {
  const cert = expect(der, 0, der.length, TAG.SEQUENCE, 'Certificate')
  const [tbs] = children(der, cert, 4)
  if (tbs === undefined) return []
  const extWrap = children(der, tbs, 10).find((t) => t.tag === 0xa3)
  if (extWrap === undefined) return []
  const [extList] = children(der, extWrap, 1)
  if (extList === undefined) return []
  for (const ext of children(der, extList)) {
    const parts = children(der, ext, 3)
    if (parts[0] === undefined || oidString(der, parts[0]) !== CDP_OID) continue
    const octets = parts.find((p, i) => i > 0 && p.tag === TAG.OCTET_STRING)
    if (octets === undefined) return []
    return urlsIn(value(der, octets))
  }
  return []
}

function urlsIn (v: Uint8Array): string[] {
  const urls: string[] = []
  const points = expect(v, 0, v.length, TAG.SEQUENCE, 'CRLDistributionPoints')
  for (const dp of children(v, points, 64)) {
    const fields = children(v, dp, 3)
    if (fields.some((f) => f.tag === 0xa2)) continue // cRLIssuer: an indirect CRL
    const name = fields.find((f) => f.tag === 0xa0) // distributionPoint [0]
    if (name === undefined) continue
    const full = children(v, name, 1).find((f) => f.tag === 0xa0) // fullName [0] GeneralNames
    if (full === undefined) continue
    for (const gn of children(v, full, 16)) {
      if (gn.tag !== 0x86) continue // uniformResourceIdentifier [6] IA5String
      const url = ascii(v, gn)
      if (/^https?:\/\//i.test(url) && !urls.includes(url)) urls.push(url)
      if (urls.length >= MAX_URLS) return urls
    }
  }
  return urls
}

function ascii (bytes: Uint8Array, tlv: Tlv): string {
  const b = value(bytes, tlv)
  for (const c of b) if (c < 0x21 || c > 0x7e) return ''
  return Buffer.from(b).toString('latin1')
}
