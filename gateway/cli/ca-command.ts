// `certgate ca`: CA certificates in a running gateway. `register` is the whole proof-of-possession
// flow in one step; the CA's private key is read here, signs the verification certificate in
// memory, and is never sent or written anywhere.
import { createHash } from 'node:crypto'
import { resolve } from 'node:path'
import { ADMIN_FLAGS, ADMIN_HELP, adminClient, ApiRefused, segment, type AdminClient } from './admin-client.js'
import { dispatch, parseFlags, required } from './args.js'
import type { CliContext } from './context.js'
import { CommandFailed } from './errors.js'
import { loadIssuer } from './issuer-files.js'
import { pemBlocks, readText } from './pem-files.js'
import { asCertificate, asCertificates, type CertificateResource } from './resources.js'
import { formatFields, formatTable } from './table.js'
import { toPem } from '../pki/pem.js'
import { verificationCertificate } from '../pki/verification.js'

const USAGE = `usage: certgate ca <subcommand> [flags]

CA certificates in a running gateway (devices authenticate by chaining to a verified CA).

subcommands:
  register   upload a CA certificate and prove possession of its key, in one step
  list       the registered CA certificates
  show       one CA certificate
  remove     unregister a CA (devices chained to it are disconnected)

Run "certgate ca <subcommand> --help" for its flags.
`

const REGISTER_USAGE = `usage: certgate ca register --name NAME --cert CA.pem --key CA.key [--replace] [--admin URL] [--token TOKEN]

Registers a CA certificate with proof of possession: uploads the certificate
(PUT /certificates/NAME), gets a verification code, signs a certificate with CN = the code
using the CA's private key here, and sends that (POST /certificates/NAME/verify). The private
key is read from --key on this machine only: it is never sent, and nothing is written.

  --name NAME    the CA's name in certgate: letters, digits, ".", "_", "-" (required)
  --cert FILE    the CA certificate, PEM: one certificate, no private key (required)
  --key FILE     the CA's private key, PEM: PKCS#8, SEC1 or PKCS#1 (required)
  --replace      replace a different certificate registered under NAME (its devices are
                 disconnected until the new one is verified); refused otherwise
${ADMIN_HELP}
`

const fingerprint = (der: Uint8Array): string => createHash('sha256').update(der).digest('hex')

/** The one certificate to upload, refusing before any request anything that is not just that. */
function uploadablePem (text: string, file: string): { pem: string, der: Uint8Array } {
  if (/PRIVATE KEY-----/.test(text)) {
    throw new CommandFailed(`${file} contains a private key; refusing to upload it. Give --cert a file with only the CA certificate: the key belongs in --key and never leaves this machine`)
  }
  const blocks = pemBlocks(text)
  const other = blocks.find((b) => b.label !== 'CERTIFICATE')
  if (other !== undefined) throw new CommandFailed(`${file} contains a "${other.label}" block; give --cert a file with exactly one CERTIFICATE`)
  if (blocks.length !== 1) {
    throw new CommandFailed(blocks.length === 0
      ? `${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----); if it is DER, convert it: openssl x509 -in ${file} -inform der -out ca.pem`
      : `${file} holds ${blocks.length} certificates; give --cert a file with only the CA certificate to register`)
  }
  const der = (blocks[0] as { der: Uint8Array }).der
  return { pem: toPem(der, 'CERTIFICATE'), der }
}

async function existing (api: AdminClient, name: string): Promise<CertificateResource | undefined> {
  try {
    return asCertificate((await api.request('GET', `/certificates/${segment(name)}`)).body)
  } catch (err) {
    if (err instanceof ApiRefused && err.status === 404) return undefined
    throw err
  }
}

async function register (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...ADMIN_FLAGS, name: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
    replace: { type: 'boolean' } }, REGISTER_USAGE)
  if (v.help === true) { ctx.out(REGISTER_USAGE); return 0 }
  const name = required(v.name, '--name', REGISTER_USAGE)
  const certFile = required(v.cert, '--cert', REGISTER_USAGE)
  const keyFile = required(v.key, '--key', REGISTER_USAGE)
  const api = adminClient(v, ctx.env, ctx.cwd, REGISTER_USAGE)

  // Everything that can be checked here is, before the first request.
  const upload = uploadablePem(readText(resolve(ctx.cwd, certFile), 'the CA certificate'), certFile)
  const ca = await loadIssuer(certFile, keyFile, ctx, 'CA')
  const thumbprint = fingerprint(upload.der)

  const before = await existing(api, name)
  if (before !== undefined && before.thumbprint === thumbprint && before.isVerified) {
    ctx.out(`CA "${name}" is already registered with this certificate and verified; nothing to do\n`)
    return 0
  }
  if (before !== undefined && before.thumbprint !== thumbprint && v.replace !== true) {
    throw new CommandFailed(`a different certificate is registered as "${name}" (SHA-256 ${before.thumbprint}, subject ${before.subject}); nothing was changed. Use another --name, or --replace to replace it`)
  }

  // Re-uploading the same certificate keeps the revocation settings it has (the PUT body is the whole desired state).
  const kept = before?.thumbprint === thumbprint ? { crlUrls: before.crlUrls ?? [], ocsp: before.ocsp ?? null } : {}
  const put = await api.request('PUT', `/certificates/${segment(name)}`,
    { body: { certificate: upload.pem, ...kept }, ...(before === undefined ? {} : { headers: { 'if-match': `"${before.etag}"` } }) })
  const uploaded = asCertificate(put.body)
  ctx.out(`uploaded ${certFile} as CA "${name}": ${uploaded.subject}, SHA-256 ${uploaded.thumbprint}\n`)
  if (uploaded.isVerified) {
    ctx.out(`CA "${name}" is verified (it was already, with this certificate)\n`)
    return 0
  }

  const coded = asCertificate((await api.request('POST', `/certificates/${segment(name)}/generateVerificationCode`)).body)
  const code = coded.verificationCode
  if (code === undefined) throw new CommandFailed('the admin API returned no verificationCode')
  const proof = await verificationCertificate(code, ca)
  ctx.out(`verification code ${code}: signed a certificate with CN=${code} using ${keyFile}, on this machine\n`)

  const verified = asCertificate((await api.request('POST', `/certificates/${segment(name)}/verify`, { body: { certificate: proof.pem } })).body)
  if (!verified.isVerified) throw new CommandFailed(`the admin API accepted the proof but CA "${name}" is not verified`)
  ctx.out(`CA "${name}" is verified (expires ${verified.expiry}): devices whose chain reaches it can connect\n`)
  return 0
}

const LIST_USAGE = `usage: certgate ca list [--json] [--admin URL] [--token TOKEN]

Lists the registered CA certificates.

  --json           print the API's JSON instead of a table
${ADMIN_HELP}
`

async function list (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...ADMIN_FLAGS, json: { type: 'boolean' } }, LIST_USAGE)
  if (v.help === true) { ctx.out(LIST_USAGE); return 0 }
  const cas = asCertificates((await adminClient(v, ctx.env, ctx.cwd, LIST_USAGE).request('GET', '/certificates')).body)
  if (v.json === true) { ctx.out(JSON.stringify(cas, null, 2) + '\n'); return 0 }
  if (cas.length === 0) { ctx.out('no CA certificates registered (certgate ca register --help)\n'); return 0 }
  ctx.out(formatTable(['NAME', 'VERIFIED', 'EXPIRES', 'SUBJECT'], cas.map((c) => [c.name, c.isVerified ? 'yes' : 'no', c.expiry, c.subject])))
  return 0
}

const SHOW_USAGE = `usage: certgate ca show --name NAME [--json | --pem] [--admin URL] [--token TOKEN]

Shows one registered CA certificate.

  --name NAME      the CA's name (required)
  --json           print the API's JSON
  --pem            print only the certificate, PEM
${ADMIN_HELP}
`

async function show (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...ADMIN_FLAGS, name: { type: 'string' }, json: { type: 'boolean' }, pem: { type: 'boolean' } }, SHOW_USAGE)
  if (v.help === true) { ctx.out(SHOW_USAGE); return 0 }
  const name = required(v.name, '--name', SHOW_USAGE)
  const c = asCertificate((await adminClient(v, ctx.env, ctx.cwd, SHOW_USAGE).request('GET', `/certificates/${segment(name)}`)).body)
  if (v.json === true) { ctx.out(JSON.stringify(c, null, 2) + '\n'); return 0 }
  if (v.pem === true) { ctx.out(c.certificate ?? ''); return 0 }
  ctx.out(formatFields([
    ['name', c.name], ['verified', c.isVerified ? 'yes' : 'no (run certgate ca register with its key)'], ['subject', c.subject],
    ['SHA-256', c.thumbprint], ['expires', c.expiry], ['etag', c.etag]
  ]))
  return 0
}

const REMOVE_USAGE = `usage: certgate ca remove --name NAME [--admin URL] [--token TOKEN]

Unregisters a CA certificate. Devices connected through it are disconnected at once, and devices
chaining only to it can no longer connect.

  --name NAME      the CA's name (required)
${ADMIN_HELP}
`

async function remove (args: readonly string[], ctx: CliContext): Promise<number> {
  const v = parseFlags(args, { ...ADMIN_FLAGS, name: { type: 'string' } }, REMOVE_USAGE)
  if (v.help === true) { ctx.out(REMOVE_USAGE); return 0 }
  const name = required(v.name, '--name', REMOVE_USAGE)
  await adminClient(v, ctx.env, ctx.cwd, REMOVE_USAGE).request('DELETE', `/certificates/${segment(name)}`)
  ctx.out(`removed CA "${name}"; devices connected through it were disconnected\n`)
  return 0
}

export async function caCommand (args: readonly string[], ctx: CliContext): Promise<number> {
  return await dispatch(args, ctx, { name: 'ca', usage: USAGE, commands: { register, list, show, remove } })
}
