// An issuing CA given on the command line as a certificate file and a key file.
import { resolve } from 'node:path'
import type { Issued } from '../pki/issue.js'
import { loadIssued, PkiInputError } from '../pki/load.js'
import type { CliContext } from './context.js'
import { CommandFailed } from './errors.js'
import { readText } from './pem-files.js'

/** Loads the pair; a key that is not the certificate's is refused before anything is done with it. */
export async function loadIssuer (certFlag: string, keyFlag: string, ctx: CliContext, what = 'issuer'): Promise<Issued> {
  const certText = readText(resolve(ctx.cwd, certFlag), `the ${what} certificate`)
  const keyText = readText(resolve(ctx.cwd, keyFlag), `the ${what} key`)
  try {
    return await loadIssued(certText, keyText, { cert: `the ${what} certificate ${certFlag}`, key: `the ${what} key ${keyFlag}` })
  } catch (err) {
    if (err instanceof PkiInputError) throw new CommandFailed(err.message)
    throw err
  }
}
