// CRLs made by the real tool: `openssl ca -gencrl` over an index file listing the revoked
// certificates, signed with the CA's key, in a throwaway directory.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Issued } from '../../pki/issue.js'
import { parseCertificate } from '../../../workers/certificate.js'

const run = promisify(execFile)

/** YYYYMMDDHHMMSSZ, as openssl's -crl_lastupdate / -crl_nextupdate and its index take it. */
export const asn1Time = (d: Date): string => d.toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z')

export interface CrlOptions {
  /** The CA that signs it (its key). */
  readonly ca: Issued
  /** Certificates listed as revoked. */
  readonly revoked?: readonly Issued[]
  readonly crlNumber?: number
  readonly thisUpdate?: Date
  readonly nextUpdate?: Date
}

/** Returns the CRL as PEM. */
export async function opensslCrl (opts: CrlOptions): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-crl-'))
  try {
    const index = (opts.revoked ?? []).map((c, i) => {
      const cert = parseCertificate(c.der)
      // index.txt: status, expiry, revocation date, serial (hex), file, subject.
      return ['R', asn1Time(new Date(cert.notAfter)).slice(2), asn1Time(new Date(Date.now() - 60_000)).slice(2), cert.serial.toUpperCase(), 'unknown', `/CN=revoked-${i}`].join('\t')
    })
    writeFileSync(join(dir, 'index.txt'), index.map((l) => l + '\n').join(''))
    writeFileSync(join(dir, 'crlnumber'), (opts.crlNumber ?? 1).toString(16).padStart(2, '0').toUpperCase() + '\n')
    writeFileSync(join(dir, 'ca.pem'), opts.ca.pem)
    writeFileSync(join(dir, 'ca.key'), opts.ca.keyPem, { mode: 0o600 })
    writeFileSync(join(dir, 'ca.cnf'), [
      '[ ca ]', 'default_ca = CA_default', '[ CA_default ]',
      `database = ${join(dir, 'index.txt')}`, `crlnumber = ${join(dir, 'crlnumber')}`, 'default_md = sha256', 'default_crl_days = 1', ''
    ].join('\n'))
    const args = ['ca', '-gencrl', '-batch', '-config', join(dir, 'ca.cnf'), '-keyfile', join(dir, 'ca.key'), '-cert', join(dir, 'ca.pem'), '-out', join(dir, 'crl.pem')]
    if (opts.thisUpdate !== undefined) args.push('-crl_lastupdate', asn1Time(opts.thisUpdate))
    if (opts.nextUpdate !== undefined) args.push('-crl_nextupdate', asn1Time(opts.nextUpdate))
    await run('openssl', args)
    return readFileSync(join(dir, 'crl.pem'), 'utf8')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
