// CRLs per registered CA: an upload (PEM or base64 DER) is parsed with the project's DER reader,
// checked against the CA it is uploaded for (RFC 5280 §6.3.3: issuer name, cRLSign, signature),
// for time (thisUpdate not in the future, nextUpdate not past) and order (cRLNumber not lower than
// the one held, decided atomically in the registry), then stored. Any refusal changes nothing.
import { parseCertificate } from '../../workers/certificate.js'
import { checkCrlIssuer, parseCrl, type Crl } from '../../workers/crl.js'
import type { CaRecord, CrlRecord, Registry } from '../registry/types.js'
import { errorMessage } from '../../workers/errors.js'

export const CRL_ERROR_CODES = ['malformed_crl', 'crl_issuer_mismatch', 'crl_bad_signature', 'crl_stale', 'crl_not_yet_valid', 'ca_not_found', 'ca_changed'] as const
export type CrlErrorCode = typeof CRL_ERROR_CODES[number]

export class CrlRefused extends Error {
  override name = 'CrlRefused'
  constructor (readonly code: CrlErrorCode, message: string, readonly status = 400) { super(message) }
}

/** The largest CRL taken, uploaded (the admin API's body cap on `/crl`) or fetched. */
export const MAX_CRL_BYTES = 48 * 1024 * 1024

/** Clock skew tolerated between the CA that signed a CRL and this gateway. */
const SKEW_MS = 60_000

export interface CrlService {
  upload: (caName: string, text: string) => Promise<CrlRecord>
}

/** PEM (`X509 CRL`) or bare base64 of the DER. */
export function crlDer (text: string): Uint8Array {
  const pem = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(text)
  if (pem === null && text.includes('-----BEGIN')) throw new CrlRefused('malformed_crl', 'the PEM holds no "X509 CRL" block')
  const body = (pem === null ? text : pem[1] ?? '').replace(/\s+/g, '')
  if (body === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) throw new CrlRefused('malformed_crl', 'the CRL is neither PEM nor base64 of its DER')
  return new Uint8Array(Buffer.from(body, 'base64'))
}

/** The CRL number as JSON: a number while exact, else its decimal string. */
export function crlNumberJson (n: string | null): number | string | null {
  if (n === null) return null
  return BigInt(n) <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n
}

export function createCrlService (registry: Registry, opts: { now?: () => number } = {}): CrlService {
  const now = opts.now ?? Date.now

  function parsed (text: string): Crl {
    try {
      return parseCrl(crlDer(text))
    } catch (err) {
      if (err instanceof CrlRefused) throw err
      throw new CrlRefused('malformed_crl', `the CRL cannot be parsed: ${errorMessage(err)}`)
    }
  }

  function checkFor (ca: CaRecord, crl: Crl): void {
    const { result, detail } = checkCrlIssuer(crl, parseCertificate(ca.certificateDer))
    if (result !== 'ok') throw new CrlRefused(result, `${detail} (CA "${ca.name}")`)
    const t = now()
    if (crl.thisUpdate > t + SKEW_MS) throw new CrlRefused('crl_not_yet_valid', `the CRL's thisUpdate ${new Date(crl.thisUpdate).toISOString()} is in the future`)
    if (crl.nextUpdate !== undefined && crl.nextUpdate < t) throw new CrlRefused('crl_stale', `the CRL's nextUpdate ${new Date(crl.nextUpdate).toISOString()} has passed; upload a fresh CRL`)
  }

  return {
    async upload (caName, text) {
      const ca = await registry.getCa(caName)
      if (ca === undefined) throw new CrlRefused('ca_not_found', `no CA certificate named "${caName}"`, 404)
      const crl = parsed(text)
      checkFor(ca, crl)
      const stored = await registry.putCrl({
        caName,
        caThumbprint: ca.thumbprint,
        der: crl.der,
        issuer: ca.subject,
        thisUpdate: new Date(crl.thisUpdate).toISOString(),
        nextUpdate: crl.nextUpdate === undefined ? null : new Date(crl.nextUpdate).toISOString(),
        crlNumber: crl.crlNumber === undefined ? null : crl.crlNumber.toString(),
        revokedCount: crl.serials.length
      })
      if (stored === 'stale') throw new CrlRefused('crl_stale', `the CRL held for CA "${caName}" is newer (higher cRLNumber or later thisUpdate)`)
      if (stored === 'ca_changed') throw new CrlRefused('ca_changed', `CA "${caName}" was replaced or removed while the CRL was checked; upload it again`, 409)
      return stored
    }
  }
}
