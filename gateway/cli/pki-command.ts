// `certgate pki`: the PEM files of a device fleet's PKI, made on this machine (no gateway needed):
// a root CA, intermediate CAs, device certificates with their chain file, the proof-of-possession
// certificate for a verification code, and PKCS#12 bundles. Issuers can be ones made elsewhere
// (any PEM key form); the key always stays in the files given.
import { createHash, X509Certificate } from 'node:crypto'
import { isIP } from 'node:net'
import { join, resolve } from 'node:path'
import { issue, toPem, type Issued, type KeyAlgorithm } from '../pki/issue.js'
import { pkcs12Bundle } from '../pki/pkcs12.js'
import { verificationCertificate } from '../pki/verification.js'
import { deviceIdProblem } from '../control/device-id.js'
import { dispatch, intFlag, listFlag, parseFlags, required } from './args.js'
import type { CliContext } from './context.js'
import { CommandFailed, UsageError } from './errors.js'
import { pemBlocks, readCertificates, readText, shown, writeOutputs, type OutputFile } from './pem-files.js'
import { loadIssuer } from './issuer-files.js'

const DAY = 86_400_000

const USAGE = `usage: certgate pki <subcommand> [flags]

Creates the PEM files of a device PKI on this machine (no gateway needed).

subcommands:
  root           a self-signed root CA: <out>/root.pem and <out>/root.key
  intermediate   an intermediate CA signed by an issuer CA
  device         a device certificate (CN = deviceId) and its chain file, or --self-signed
  server         a server certificate for the gateway itself (CERTGATE_TLS_CERT/CERTGATE_TLS_KEY)
  verification   the proof-of-possession certificate for a verification code
  p12            a password-protected PKCS#12 bundle (certificate, key, chain)

Run "certgate pki <subcommand> --help" for its flags.
`

// Every key type here is one the validator accepts for a device (weak_key refuses the rest).
const KEY_TYPES: Readonly<Record<string, KeyAlgorithm>> = { ec: 'P-256', 'ec-p384': 'P-384', 'ec-p521': 'P-521', ed25519: 'Ed25519', rsa: 'RSA-2048',
  'rsa-3072': 'RSA-3072', 'rsa-4096': 'RSA-4096' }
const COMMON_HELP = `  --out DIR        directory to write to (default ./pki; created 0700)
  --key-type TYPE  ec (P-256, the default), ec-p384, ec-p521, ed25519, rsa (2048 bits), rsa-3072,
                   rsa-4096 (CAs made here must be ec, ec-p384 or rsa*: they sign with ECDSA or RSA)
  --force          replace files that already exist (refused otherwise)`
const COMMON = {
  out: { type: 'string' },
  'key-type': { type: 'string' },
  days: { type: 'string' },
  force: { type: 'boolean' }
} as const
const ISSUER = { issuer: { type: 'string' }, 'issuer-key': { type: 'string' } } as const

/** Key types a CA made here may have: what `--issuer` loads back (pki/load.ts). */
const CA_KEY_TYPES = new Set(['ec', 'ec-p384', 'rsa', 'rsa-3072', 'rsa-4096'])

function keyAlgorithm (value: string | undefined, usage: string, forCa = false): KeyAlgorithm {
  if (value === undefined) return 'P-256'
  const alg = Object.hasOwn(KEY_TYPES, value) ? KEY_TYPES[value] : undefined
  if (alg === undefined) throw new UsageError(`--key-type must be one of ${Object.keys(KEY_TYPES).join(', ')}, not "${value}"`, usage)
  if (forCa && !CA_KEY_TYPES.has(value)) throw new UsageError(`--key-type ${value} is for devices; a CA must be one of ${[...CA_KEY_TYPES].join(', ')}`, usage)
  return alg
}

function outDir (value: string | undefined, ctx: CliContext): string {
  return resolve(ctx.cwd, value ?? 'pki')
}

/** Validity: `days` from now, but never past the issuer's own notAfter (it would be useless there). */
function notAfter (days: number, issuer: Issued | undefined, ctx: CliContext): Date {
  const wanted = new Date(Date.now() + days * DAY)
  if (issuer === undefined) return wanted
  const limit = new Date(new X509Certificate(issuer.der).validTo)
  if (limit >= wanted) return wanted
  ctx.err(`note: the certificate ends at its issuer's notAfter, ${limit.toISOString()}, not ${days} days from now\n`)
  return limit
}

/** ECDSA P-384 issuers sign with SHA-384, P-521 ones with SHA-512, the rest with SHA-256. */
const hashFor = (issuer: Issued | undefined): 'SHA-256' | 'SHA-384' | 'SHA-512' => issuer?.keyAlgorithm === 'P-384' ? 'SHA-384' : issuer?.keyAlgorithm === 'P-521' ? 'SHA-512' : 'SHA-256'

const thumbprint = (der: Uint8Array): string => createHash('sha256').update(der).digest('hex')

function describeWritten (files: readonly OutputFile[], ctx: CliContext): string {
  return files.map((f) => `  ${shown(f.path, ctx.cwd)}${f.secret ? '  (private key, mode 0600: keep it secret)' : ''}\n`).join('')
}

const ROOT_USAGE = `usage: certgate pki root --cn NAME [--out DIR] [--name STEM] [--key-type TYPE] [--days N] [--path-len N] [--force]

Creates a self-signed root CA certificate and its private key: <out>/<stem>.pem and <out>/<stem>.key.

  --cn NAME        the CA's common name, e.g. "Acme Devices Root CA" (required)
  --name STEM      file name stem (default root)
  --days N         validity in days (default 3650)
  --path-len N     allow at most N intermediate CAs below this one (default: no limit)
${COMMON_HELP}
`

async function root (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...COMMON, cn: { type: 'string' }, name: { type: 'string' }, 'path-len': { type: 'string' } }, ROOT_USAGE)
  if (v.help === true) { ctx.out(ROOT_USAGE); return 0 }
  const cn = required(v.cn, '--cn', ROOT_USAGE)
  const alg = keyAlgorithm(v['key-type'], ROOT_USAGE, true)
  const days = intFlag(v.days, '--days', 1, 36500, ROOT_USAGE) ?? 3650
  const pathLen = intFlag(v['path-len'], '--path-len', 0, 16, ROOT_USAGE)
  const dir = outDir(v.out, ctx)
  const stem = v.name ?? 'root'
  const ca = await issue({ cn, ca: true, keyAlgorithm: alg, notAfter: notAfter(days, undefined, ctx), ...(pathLen === undefined ? {} : { pathLen }) })
  const files = [{ path: join(dir, `${stem}.pem`), content: ca.pem, secret: false }, { path: join(dir, `${stem}.key`), content: ca.keyPem, secret: true }]
  writeOutputs(files, v.force === true, ctx.cwd)
  ctx.out(`root CA "${cn}" (${alg}), SHA-256 thumbprint ${thumbprint(ca.der)}\n${describeWritten(files, ctx)}`)
  return 0
}

const INTERMEDIATE_USAGE = `usage: certgate pki intermediate --cn NAME --issuer CA.pem --issuer-key CA.key --name STEM [--path-len N] [--out DIR] [--key-type TYPE] [--days N] [--force]

Creates an intermediate CA certificate signed by the issuer CA, and its private key:
<out>/<stem>.pem and <out>/<stem>.key.

  --cn NAME          the CA's common name (required)
  --issuer FILE      the issuing CA's certificate, PEM (required)
  --issuer-key FILE  the issuing CA's private key, PEM: PKCS#8, SEC1 or PKCS#1 (required)
  --name STEM        file name stem, e.g. intermediate (required)
  --path-len N       allow at most N further intermediate CAs below this one
  --days N           validity in days (default 1825, and never past the issuer's notAfter)
${COMMON_HELP}
`

async function intermediate (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...COMMON, ...ISSUER, cn: { type: 'string' }, name: { type: 'string' }, 'path-len': { type: 'string' } }, INTERMEDIATE_USAGE)
  if (v.help === true) { ctx.out(INTERMEDIATE_USAGE); return 0 }
  const cn = required(v.cn, '--cn', INTERMEDIATE_USAGE)
  const issuerFile = required(v.issuer, '--issuer', INTERMEDIATE_USAGE)
  const issuerKeyFile = required(v['issuer-key'], '--issuer-key', INTERMEDIATE_USAGE)
  const stem = required(v.name, '--name', INTERMEDIATE_USAGE)
  const alg = keyAlgorithm(v['key-type'], INTERMEDIATE_USAGE, true)
  const days = intFlag(v.days, '--days', 1, 36500, INTERMEDIATE_USAGE) ?? 1825
  const pathLen = intFlag(v['path-len'], '--path-len', 0, 16, INTERMEDIATE_USAGE)
  const dir = outDir(v.out, ctx)
  const issuer = await loadIssuer(issuerFile, issuerKeyFile, ctx)
  const ca = await issue({ cn, ca: true, issuer, keyAlgorithm: alg, hash: hashFor(issuer), notAfter: notAfter(days, issuer, ctx),
    ...(pathLen === undefined ? {} : { pathLen }) })
  const files = [{ path: join(dir, `${stem}.pem`), content: ca.pem, secret: false }, { path: join(dir, `${stem}.key`), content: ca.keyPem, secret: true }]
  writeOutputs(files, v.force === true, ctx.cwd)
  ctx.out(`intermediate CA "${cn}" (${alg}) signed by "${issuer.subjectCn}", SHA-256 thumbprint ${thumbprint(ca.der)}\n${describeWritten(files, ctx)}`)
  return 0
}

const DEVICE_USAGE = `usage: certgate pki device --id DEVICEID --issuer CA.pem --issuer-key CA.key [--chain INT.pem,...] [--out DIR] [--key-type TYPE] [--days N] [--force]
       certgate pki device --id DEVICEID --self-signed [--out DIR] [--key-type TYPE] [--days N] [--force]

Creates a device certificate with CN = the deviceId (clientAuth) and its private key:
  <out>/<id>.pem        the device certificate
  <out>/<id>.key        its private key
  <out>/<id>-chain.pem  the device certificate followed by the intermediates, for clients that
                        take one file: the issuer (unless it is a self-signed root) and --chain
It prints the certificate's SHA-256 thumbprint (what a selfSigned device is registered with).

  --id DEVICEID      the deviceId (required)
  --issuer FILE      the issuing CA's certificate, PEM
  --issuer-key FILE  the issuing CA's private key, PEM
  --chain FILES      more intermediates to put in the chain file, in order (comma-separated or
                     repeated; files may hold several certificates)
  --self-signed      a self-signed device certificate instead (no issuer)
  --days N           validity in days (default 365, and never past the issuer's notAfter)
${COMMON_HELP}
`

async function device (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...COMMON, ...ISSUER, id: { type: 'string' }, chain: { type: 'string', multiple: true },
    'self-signed': { type: 'boolean' } }, DEVICE_USAGE)
  if (v.help === true) { ctx.out(DEVICE_USAGE); return 0 }
  const id = required(v.id, '--id', DEVICE_USAGE)
  const problem = deviceIdProblem(id)
  if (problem !== undefined) throw new UsageError(`--id: ${problem}`, DEVICE_USAGE)
  const selfSigned = v['self-signed'] === true
  const chainFiles = listFlag(v.chain)
  if (selfSigned && (v.issuer !== undefined || v['issuer-key'] !== undefined || chainFiles.length > 0)) {
    throw new UsageError('--self-signed takes no --issuer, --issuer-key or --chain', DEVICE_USAGE)
  }
  const alg = keyAlgorithm(v['key-type'], DEVICE_USAGE)
  const days = intFlag(v.days, '--days', 1, 36500, DEVICE_USAGE) ?? 365
  const dir = outDir(v.out, ctx)

  let issuer: Issued | undefined
  const chain: Uint8Array[] = []
  if (!selfSigned) {
    issuer = await loadIssuer(required(v.issuer, '--issuer (or --self-signed)', DEVICE_USAGE), required(v['issuer-key'], '--issuer-key', DEVICE_USAGE), ctx)
    const issuerCert = new X509Certificate(issuer.der)
    const issuerIsRoot = issuerCert.subject === issuerCert.issuer && issuerCert.verify(issuerCert.publicKey)
    if (!issuerIsRoot) chain.push(issuer.der)
    for (const file of chainFiles) chain.push(...readCertificates(resolve(ctx.cwd, file), 'the --chain file'))
  }
  const leaf = await issue({ cn: id, keyAlgorithm: alg, hash: hashFor(issuer), notAfter: notAfter(days, issuer, ctx),
    ...(issuer === undefined ? {} : { issuer }) })
  const seen = new Set([thumbprint(leaf.der)])
  const unique = chain.filter((der) => { const t = thumbprint(der); if (seen.has(t)) return false; seen.add(t); return true })
  const files = [
    { path: join(dir, `${id}.pem`), content: leaf.pem, secret: false },
    { path: join(dir, `${id}.key`), content: leaf.keyPem, secret: true },
    { path: join(dir, `${id}-chain.pem`), content: leaf.pem + unique.map((der) => toPem(der, 'CERTIFICATE')).join(''), secret: false }
  ]
  writeOutputs(files, v.force === true, ctx.cwd)
  const tp = thumbprint(leaf.der)
  ctx.out(`device certificate for "${id}" (${alg}), ${selfSigned ? 'self-signed' : `signed by "${issuer?.subjectCn ?? ''}", chain file with ${unique.length} intermediate${unique.length === 1 ? '' : 's'}`}\n` +
    `SHA-256 thumbprint ${tp}\n${describeWritten(files, ctx)}` +
    (selfSigned ? `register it with: certgate device add --id ${id} --self-signed --primary ${tp}\n` : ''))
  return 0
}

const SERVER_USAGE = `usage: certgate pki server (--dns NAME | --ip ADDR)... --issuer CA.pem --issuer-key CA.key [--cn NAME] [--name STEM] [--out DIR] [--key-type TYPE] [--days N] [--force]

Creates a server certificate for the gateway's device listener (serverAuth), signed by your CA,
with the names devices dial as subjectAltNames, and its private key:
  <out>/<stem>.pem   the certificate followed by the issuer (unless it is a self-signed root):
                     what CERTGATE_TLS_CERT names
  <out>/<stem>.key   its private key: what CERTGATE_TLS_KEY names
Devices verify it with the issuer's root. Rotate it by replacing the two files (certgate watches
them and re-reads them on SIGHUP; see docs/operations-day-two.md).

  --dns NAME         a DNS name devices dial (repeated or comma-separated), e.g. mqtt.example.com
  --ip ADDR          an IP address devices dial (IPv4 or IPv6; repeated or comma-separated)
  --issuer FILE      the issuing CA's certificate, PEM (required)
  --issuer-key FILE  the issuing CA's private key, PEM (required)
  --cn NAME          the subject CN (default: the first --dns, else the first --ip)
  --name STEM        file name stem (default server)
  --days N           validity in days (default 397, and never past the issuer's notAfter)
${COMMON_HELP}
`

const DNS_NAME = /^(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/

async function server (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...COMMON, ...ISSUER, dns: { type: 'string', multiple: true }, ip: { type: 'string', multiple: true },
    cn: { type: 'string' }, name: { type: 'string' } }, SERVER_USAGE)
  if (v.help === true) { ctx.out(SERVER_USAGE); return 0 }
  const dns = listFlag(v.dns)
  const ips = listFlag(v.ip)
  if (dns.length + ips.length === 0) {
    throw new UsageError('give at least one --dns or --ip: the names devices dial (a certificate naming nothing fails their host check)', SERVER_USAGE)
  }
  for (const d of dns) if (d.length > 253 || !DNS_NAME.test(d)) throw new UsageError(`--dns "${d}" is not a DNS name`, SERVER_USAGE)
  for (const ip of ips) if (isIP(ip) === 0) throw new UsageError(`--ip "${ip}" is not an IPv4 or IPv6 address`, SERVER_USAGE)
  const alg = keyAlgorithm(v['key-type'], SERVER_USAGE)
  // CA/Browser Forum limit for public server certificates (398 days); a private CA may go longer.
  const days = intFlag(v.days, '--days', 1, 36500, SERVER_USAGE) ?? 397
  const issuer = await loadIssuer(required(v.issuer, '--issuer', SERVER_USAGE), required(v['issuer-key'], '--issuer-key', SERVER_USAGE), ctx)
  const issuerCert = new X509Certificate(issuer.der)
  const issuerIsRoot = issuerCert.subject === issuerCert.issuer && issuerCert.verify(issuerCert.publicKey)
  const cn = v.cn ?? dns[0] ?? ips[0] ?? ''
  const cert = await issue({ cn, issuer, keyAlgorithm: alg, hash: hashFor(issuer), eku: ['1.3.6.1.5.5.7.3.1'], sanDns: dns, sanIp: ips,
    notAfter: notAfter(days, issuer, ctx) })
  const stem = v.name ?? 'server'
  const dir = outDir(v.out, ctx)
  const files = [
    { path: join(dir, `${stem}.pem`), content: cert.pem + (issuerIsRoot ? '' : issuer.pem), secret: false },
    { path: join(dir, `${stem}.key`), content: cert.keyPem, secret: true }
  ]
  writeOutputs(files, v.force === true, ctx.cwd)
  ctx.out(`server certificate "${cn}" (${alg}) for ${[...dns, ...ips].join(
    ', ')}, signed by "${issuer.subjectCn}"${issuerIsRoot ? '' : ' (issuer appended)'}\n` +
    `SHA-256 thumbprint ${thumbprint(cert.der)}\n${describeWritten(files, ctx)}` +
    `serve it with: CERTGATE_TLS_CERT=${shown(files[0]?.path ?? '', ctx.cwd)} CERTGATE_TLS_KEY=${shown(files[1]?.path ?? '', ctx.cwd)}\n`)
  return 0
}

const VERIFICATION_USAGE = `usage: certgate pki verification --code CODE --ca CA.pem --ca-key CA.key [--out DIR] [--name STEM] [--force]

Creates the proof-of-possession certificate for a CA registration: CN = the verification code
from POST /certificates/{name}/generateVerificationCode, signed with the CA's private key.
Writes <out>/<stem>.pem (default verification.pem); upload it to POST /certificates/{name}/verify.
"certgate ca register" does all of this in one step.

  --code CODE      the verification code (required)
  --ca FILE        the CA certificate, PEM (required)
  --ca-key FILE    the CA's private key, PEM (required)
  --name STEM      file name stem (default verification)
  --out DIR        directory to write to (default ./pki)
  --force          replace the file if it exists
`

async function verification (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { out: { type: 'string' }, force: { type: 'boolean' }, code: { type: 'string' }, ca: { type: 'string' },
    'ca-key': { type: 'string' }, name: { type: 'string' } }, VERIFICATION_USAGE)
  if (v.help === true) { ctx.out(VERIFICATION_USAGE); return 0 }
  const code = required(v.code, '--code', VERIFICATION_USAGE)
  const ca = await loadIssuer(required(v.ca, '--ca', VERIFICATION_USAGE), required(v['ca-key'], '--ca-key', VERIFICATION_USAGE), ctx, 'CA')
  const proof = await verificationCertificate(code, ca)
  const files = [{ path: join(outDir(v.out, ctx), `${v.name ?? 'verification'}.pem`), content: proof.pem, secret: false }]
  writeOutputs(files, v.force === true, ctx.cwd)
  ctx.out(`verification certificate CN=${code} signed by "${ca.subjectCn}"\n${describeWritten(files, ctx)}`)
  return 0
}

const P12_USAGE = `usage: certgate pki p12 --cert CERT.pem --key CERT.key (--password P | --password-file FILE) [--chain INT.pem,...] [--out FILE.p12] [--legacy] [--force]

Bundles a certificate, its private key and the intermediates into one password-protected
PKCS#12 file (.p12/.pfx) for devices that take one. EC and RSA keys both work.

  --cert FILE           the certificate, PEM; further certificates in it (a chain file) are
                        added to the bundle as intermediates (required)
  --key FILE            its private key, PEM (required)
  --chain FILES         more intermediates (comma-separated or repeated)
  --password P          the bundle's password (visible to other local users in the process list)
  --password-file FILE  read the password from the first line of FILE instead
  --out FILE            the bundle to write (default: --cert's path with .p12)
  --legacy              3DES and a SHA-1 MAC, for old device stacks (default: AES-256, SHA-256 MAC,
                        as OpenSSL 3 writes)
  --force               replace the file if it exists
`

async function p12 (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, {
    cert: { type: 'string' }, key: { type: 'string' }, chain: { type: 'string', multiple: true }, password: { type: 'string' },
    'password-file': { type: 'string' }, out: { type: 'string' }, legacy: { type: 'boolean' }, force: { type: 'boolean' }
  }, P12_USAGE)
  if (v.help === true) { ctx.out(P12_USAGE); return 0 }
  const certFile = required(v.cert, '--cert', P12_USAGE)
  const keyFile = required(v.key, '--key', P12_USAGE)
  if (v.password !== undefined && v['password-file'] !== undefined) throw new UsageError('give --password or --password-file, not both', P12_USAGE)
  const password = v['password-file'] !== undefined
    ? (readText(resolve(ctx.cwd, v['password-file']), 'the password file').split(/\r?\n/)[0] ?? '')
    : required(v.password, '--password (or --password-file)', P12_USAGE)
  if (password === '') throw new CommandFailed('the password is empty; a PKCS#12 bundle holds a private key and needs a password')
  const certs = readCertificates(resolve(ctx.cwd, certFile), 'the --cert file')
  const loaded = await loadIssuer(certFile, keyFile, ctx, 'device')
  const chain = [...certs.slice(1), ...listFlag(v.chain).flatMap((f) => readCertificates(resolve(ctx.cwd, f), 'the --chain file'))]
  const keyDer = pemBlocks(loaded.keyPem)[0]?.der ?? new Uint8Array()
  const bundle = pkcs12Bundle({ keyPkcs8Der: keyDer, certDer: loaded.der, chainDers: chain, password, legacy: v.legacy === true,
    ...(loaded.subjectCn === '' ? {} : { friendlyName: loaded.subjectCn }) })
  const out = resolve(ctx.cwd, v.out ?? certFile.replace(/(-chain)?\.(pem|crt|cer)$/i, '') + '.p12')
  const files = [{ path: out, content: bundle, secret: true }]
  writeOutputs(files, v.force === true, ctx.cwd)
  ctx.out(`PKCS#12 bundle of "${loaded.subjectCn}" (${loaded.keyAlgorithm}) with ${chain.length} intermediate${chain.length === 1 ? '' : 's'}${v.legacy === true ? ', legacy 3DES/SHA-1' : ''}\n${describeWritten(files, ctx)}`)
  return 0
}

export async function pkiCommand (args: readonly string[], ctx: CliContext): Promise<number> {
  return await dispatch(args, ctx, { name: 'pki', usage: USAGE, commands: { root, intermediate, device, server, verification, p12 } })
}
