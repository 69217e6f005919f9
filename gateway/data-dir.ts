// The data directory: the registry database, the generated development server certificate and
// key, and the generated admin token. Created 0700; secrets written 0600.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { issue } from './pki/issue.js'

export function ensureDataDir (dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
}

function writeSecret (file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 })
  chmodSync(file, 0o600)
}

/** The admin token from the environment, or the one saved in the data directory, or a new one. */
export function adminToken (dir: string, fromEnv: string | undefined): string {
  if (fromEnv !== undefined) return fromEnv
  const file = join(dir, 'admin-token')
  if (existsSync(file)) return readFileSync(file, 'utf8').trim()
  // Hex: never starts with '-', so it is safe as a command-line argument value.
  const token = randomBytes(32).toString('hex')
  writeSecret(file, token + '\n')
  return token
}

/** The configured server certificate, or a generated development one (kept across restarts). */
export async function serverCertificate (dir: string, certFile: string | undefined, keyFile: string | undefined): Promise<{ certPem: string, keyPem: string, generated: boolean }> {
  if (certFile !== undefined && keyFile !== undefined) return { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'), generated: false }
  const cert = join(dir, 'dev-server-cert.pem')
  const key = join(dir, 'dev-server-key.pem')
  if (existsSync(cert) && existsSync(key)) return { certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8'), generated: true }
  const issued = await issue({ cn: 'localhost', sanDns: ['localhost'], eku: ['1.3.6.1.5.5.7.3.1'], notAfter: new Date(Date.now() + 825 * 86_400_000) })
  writeSecret(key, issued.keyPem)
  writeFileSync(cert, issued.pem)
  return { certPem: issued.pem, keyPem: issued.keyPem, generated: true }
}
