// Which of two CRLs from one CA is newer, shared by both registry backends: RFC 5280 §5.2.3
// cRLNumbers increase monotonically, so a lower number is an older CRL; without numbers on both,
// thisUpdate decides. Equal is not older: uploading the same CRL again is idempotent.
import type { CrlInput } from './types.js'

export function isOlderCrl (incoming: Pick<CrlInput, 'crlNumber' | 'thisUpdate'>, held: Pick<CrlInput, 'crlNumber' | 'thisUpdate'>): boolean {
  if (incoming.crlNumber !== null && held.crlNumber !== null) return BigInt(incoming.crlNumber) < BigInt(held.crlNumber)
  return Date.parse(incoming.thisUpdate) < Date.parse(held.thisUpdate)
}
