// RFC 5280 §7.1 name comparison, as a key: two Names whose keys are equal are the same name.
// A CA that re-encodes its name (PrintableString to UTF8String, other capitalisation, extra
// spaces) still chains (PKITS 4.3.3-4.3.11). The keys are map keys for path building, so the
// comparison is done once per certificate, not per candidate pair.
import { DerError, TAG, children, oidString, readString, value, type Tlv } from './der.js'

/** String types RFC 4518 prepares (DirectoryString, and IA5String for emailAddress and dc). */
export const STRING_TAGS = new Set<number>([TAG.UTF8_STRING, TAG.PRINTABLE_STRING, TAG.TELETEX_STRING, TAG.BMP_STRING, TAG.UNIVERSAL_STRING, TAG.IA5_STRING])

/**
 * RFC 4518 §2 in the form RFC 5280 §7.1 requires of conforming implementations: compatibility
 * normalisation, case folding, insignificant space removed (leading and trailing) and runs of
 * spaces folded to one.
 */
function prepare (s: string): string {
  // Most names are printable ASCII with single inner spaces: NFKC and space folding change nothing.
  if (PLAIN.test(s)) return s.toLowerCase()
  return s.normalize('NFKC').toLowerCase().replace(/[\s\u00a0]+/g, ' ').trim()
}

const PLAIN = /^[\x21-\x7e]+(?: [\x21-\x7e]+)*$/

/**
 * The comparison key of a Name (a SEQUENCE OF RDN, each a SET OF AttributeTypeAndValue):
 * RDNs in order, the attributes of a multi-valued RDN in any order (a SET), string values
 * prepared, any other value compared as its exact encoding.
 */
export function nameKey (der: Uint8Array, name: Tlv): string {
  return keyOf(rdnKeys(der, name))
}

/** The Name's key from its RDN keys (what nameKey returns). */
export function keyOf (rdnKeys: readonly string[]): string {
  return JSON.stringify(rdnKeys)
}

/** The comparison key of each RDN of a Name, in order (directoryName constraints match RDN by RDN). */
export function rdnKeys (der: Uint8Array, name: Tlv): string[] {
  const rdns: string[] = []
  for (const rdn of children(der, name, 64)) {
    const atvs: string[] = []
    for (const atv of children(der, rdn, 16)) {
      const [typeTlv, valueTlv] = children(der, atv, 3)
      if (typeTlv === undefined || valueTlv === undefined) throw new DerError('bad AttributeTypeAndValue')
      const type = oidString(der, typeTlv)
      atvs.push(`${type}=${STRING_TAGS.has(valueTlv.tag) ? 's:' + prepare(readString(der, valueTlv)) : `x${valueTlv.tag}:` + Buffer.from(value(der, valueTlv)).toString('hex')}`)
    }
    rdns.push(JSON.stringify(atvs.sort()))
  }
  return rdns
}
