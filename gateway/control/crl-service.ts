// CRLs per registered CA: an upload (PEM or base64 DER) is parsed with the project's DER reader,
// checked against the CA it is uploaded for (RFC 5280 §6.3.3: issuer name, cRLSign, signature) — or
// against an intermediate under that CA that the operator supplies with it (a delegated CRL issuer,
// §6.3.3 (f): the intermediate must chain to the CA and allow cRLSign) — for time (thisUpdate not
// in the future, nextUpdate not past) and order (cRLNumber not lower than the one held for the same
// issuer, decided atomically in the registry), then stored. Any refusal changes nothing.
import { X509Certificate } from 'node:crypto'
import { parseCertificate, type Certificate } from '../../workers/certificate.js'
import { checkCrlIssuer, parseCrl, type Crl } from '../../workers/crl.js'
import { delegationPath, delegationProblem, MAX_DELEGATION_DEPTH } from '../../workers/crl-issuer-path.js'
import { sha256Hex } from '../../workers/validate-chain.js'
import type { CaRecord, CrlRecord, Registry } from '../registry/types.js'
import { errorMessage } from '../../workers/errors.js'

export const CRL_ERROR_CODES = ['malformed_crl', 'malformed_issuer_certificate', 'crl_issuer_mismatch', 'crl_bad_signature', 'crl_stale', 'crl_older_than_held', 'crl_not_yet_valid', 'ca_not_found', 'ca_changed'] as const
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
  /**
   * `issuerText`: PEM of the intermediate that signed the CRL, then (in any order) the intermediates
   * between it and the CA, as a chain file holds them; absent when the CA signed the CRL itself.
   */
  upload: (caName: string, text: string, issuerText?: string) => Promise<CrlRecord>
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

/** The issuer as the CA resource shows a subject (ca-service.ts). */
function subjectText (cert: Certificate): string {
  try {
    return new X509Certificate(cert.der).subject.replace(/\n/g, ', ')
  } catch {
    return `CN=${cert.commonNames[0] ?? '?'}`
  }
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

  /** The certificates of a PEM chain, in the order given. */
  function issuerChain (text: string): Certificate[] {
    const blocks = [...text.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)]
    if (blocks.length === 0) throw new CrlRefused('malformed_issuer_certificate', 'issuerCertificate holds no PEM "CERTIFICATE" block')
    if (blocks.length > MAX_DELEGATION_DEPTH) throw new CrlRefused('malformed_issuer_certificate', `issuerCertificate holds ${blocks.length} certificates; at most ${MAX_DELEGATION_DEPTH} are taken`)
    return blocks.map((m, i) => {
      try {
        return parseCertificate(new Uint8Array(Buffer.from((m[1] ?? '').replace(/\s+/g, ''), 'base64')))
      } catch (err) {
        throw new CrlRefused('malformed_issuer_certificate', `certificate ${i + 1} of issuerCertificate cannot be parsed: ${errorMessage(err)}`)
      }
    })
  }

  /** The certificate that signed the CRL: the CA itself, or an intermediate under it the operator supplied. */
  function signer (ca: CaRecord, caCert: Certificate, issuerText: string | undefined): Certificate | undefined {
    if (issuerText === undefined) return undefined
    const given = issuerChain(issuerText)
    // The CA's own certificate given as the issuer: an ordinary CRL of the CA.
    if (sha256Hex((given[0] as Certificate).der) === ca.thumbprint) return undefined
    const found = delegationPath(given, caCert)
    if ('problem' in found) throw new CrlRefused('crl_issuer_mismatch', `the issuer certificate does not chain to CA "${ca.name}": ${found.problem}`)
    const problem = delegationProblem(found.path, caCert, now())
    if (problem !== undefined) throw new CrlRefused('crl_issuer_mismatch', `the issuer certificate cannot sign CRLs under CA "${ca.name}": ${problem}`)
    return found.path[0]
  }

  function checkFor (ca: CaRecord, crl: Crl, by: Certificate): void {
    const { result, detail } = checkCrlIssuer(crl, by)
    if (result !== 'ok') throw new CrlRefused(result, `${detail.replace(/this CA/g, 'its issuer')} (CA "${ca.name}")`)
    const t = now()
    if (crl.thisUpdate > t + SKEW_MS) throw new CrlRefused('crl_not_yet_valid', `the CRL's thisUpdate ${new Date(crl.thisUpdate).toISOString()} is in the future`)
    if (crl.nextUpdate !== undefined && crl.nextUpdate < t) throw new CrlRefused('crl_stale', `the CRL's nextUpdate ${new Date(crl.nextUpdate).toISOString()} has passed; upload a fresh CRL`)
  }

  return {
    async upload (caName, text, issuerText) {
      const ca = await registry.getCa(caName)
      if (ca === undefined) throw new CrlRefused('ca_not_found', `no CA certificate named "${caName}"`, 404)
      const crl = parsed(text)
      const caCert = parseCertificate(ca.certificateDer)
      const delegate = signer(ca, caCert, issuerText)
      checkFor(ca, crl, delegate ?? caCert)
      const stored = await registry.putCrl({
        caName,
        caThumbprint: ca.thumbprint,
        issuerThumbprint: delegate === undefined ? null : sha256Hex(delegate.der),
        issuerCertificateDer: delegate === undefined ? null : delegate.der,
        der: crl.der,
        issuer: delegate === undefined ? ca.subject : subjectText(delegate),
        thisUpdate: new Date(crl.thisUpdate).toISOString(),
        nextUpdate: crl.nextUpdate === undefined ? null : new Date(crl.nextUpdate).toISOString(),
        crlNumber: crl.crlNumber === undefined ? null : crl.crlNumber.toString(),
        revokedCount: crl.serials.length
      })
      // 400, not 409: like every other refusal of this route the CRL itself is what is wrong (retrying
      // it can never succeed), and CONTRACT.md promises 400 for a stale upload; 409 here means a race
      // (ca_changed) worth retrying. The code tells it from crl_stale (nextUpdate passed).
      if (stored === 'stale') throw new CrlRefused('crl_older_than_held', `the CRL held for CA "${caName}"${delegate === undefined ? '' : ' from this issuer'} is newer (higher cRLNumber, or later thisUpdate without numbers)`)
      if (stored === 'ca_changed') throw new CrlRefused('ca_changed', `CA "${caName}" was replaced or removed while the CRL was checked; upload it again`, 409)
      return stored
    }
  }
}
