// The data directory: the registry database, the generated development server certificate and
// key, and the generated admin token. Created 0700; secrets written 0600.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes, X509Certificate } from 'node:crypto'
import { hostname } from 'node:os'

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

/**
 * The names a development certificate is for: the machine's hostname (a device on the network
 * dials it), localhost, and the loopback addresses (`mosquitto_pub -h 127.0.0.1` verifies the IP).
 */
export function devServerNames (host = hostname()): { dns: string[], ip: string[] } {
  // RFC 1123 labels only: a hostname that is not a DNS name cannot go in a dNSName SAN.
  const valid = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/.test(host)
  return { dns: [...new Set(['localhost', ...(valid ? [host.toLowerCase()] : [])])], ip: ['127.0.0.1', '::1'] }
}

/** Does the certificate name every one of `names` (SAN checks, as a client verifies them)? */
function namesAll (certPem: string, names: { dns: readonly string[], ip: readonly string[] }): boolean {
  try {
    const cert = new X509Certificate(certPem)
    return names.dns.every((d) => cert.checkHost(d, { subject: 'never' }) !== undefined) && names.ip.every((ip) => cert.checkIP(ip) !== undefined)
  } catch {
    return false
  }
}

/**
 * The configured server certificate, or a generated development one: kept across restarts, and
 * made again when it no longer names the machine (the hostname changed) or expires within a day.
 */
export async function serverCertificate (dir: string, certFile: string | undefined, keyFile: string | undefined,
  names = devServerNames()): Promise<{ certPem: string, keyPem: string, generated: boolean, regenerated?: string }> {
  if (certFile !== undefined && keyFile !== undefined) return { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8'),
    generated: false }
  const cert = join(dir, 'dev-server-cert.pem')
  const key = join(dir, 'dev-server-key.pem')
  let regenerated: string | undefined
  if (existsSync(cert) && existsSync(key)) {
    const certPem = readFileSync(cert, 'utf8')
    const stale = !namesAll(certPem, names) ? 'it does not name this machine (the hostname, localhost, 127.0.0.1, ::1)' : expiresSoon(certPem) ? 'it expires within a day' : undefined
    if (stale === undefined) return { certPem, keyPem: readFileSync(key, 'utf8'), generated: true }
    regenerated = stale
  }
  // Loaded only here: @peculiar/x509 is ~4 MB of heap (imported alone) a serving gateway never needs (less for every GC to mark).
  const { issue } = await import('./pki/issue.js')
  const issued = await issue({ cn: 'localhost', sanDns: names.dns, sanIp: names.ip, eku: ['1.3.6.1.5.5.7.3.1'],
    notAfter: new Date(Date.now() + 825 * 86_400_000) })
  writeSecret(key, issued.keyPem)
  writeFileSync(cert, issued.pem)
  return { certPem: issued.pem, keyPem: issued.keyPem, generated: true, ...(regenerated === undefined ? {} : { regenerated }) }
}

function expiresSoon (certPem: string): boolean {
  try {
    return Date.parse(new X509Certificate(certPem).validTo) - Date.now() < 86_400_000
  } catch {
    return true
  }
}
