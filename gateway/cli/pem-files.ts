// Reading and writing the PEM files the CLI works with. Outputs are all checked before any is
// written, so a refused command leaves no half-written set; private keys are written mode 0600
// in a directory created 0700, and existing files are only replaced with --force (overwriting a
// CA key by accident would orphan every certificate it signed).
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, isAbsolute, relative, resolve } from 'node:path'
import { X509Certificate } from 'node:crypto'
import { CommandFailed } from './errors.js'
import { errorMessage } from '../../workers/errors.js'

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g

export interface PemBlock { readonly label: string, readonly der: Uint8Array }

export function pemBlocks (text: string): PemBlock[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => ({ label: m[1] ?? '', der: new Uint8Array(Buffer.from((m[2] ?? '').replace(/\s+/g, ''), 'base64')) }))
}

/** A path as the user would recognise it: relative to the working directory when inside it. */
export function shown (path: string, cwd: string): string {
  const rel = relative(cwd, path)
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path
}

export function readText (path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new CommandFailed(e.code === 'ENOENT' ? `${what} ${path} does not exist` : `cannot read ${what} ${path}: ${e.message}`)
  }
}

/** Every certificate in a PEM file (a chain file holds several), as DER; at least one. */
export function readCertificates (path: string, what: string): Uint8Array[] {
  const ders = pemBlocks(readText(path, what)).filter((b) => b.label === 'CERTIFICATE').map((b) => b.der)
  if (ders.length === 0) throw new CommandFailed(`${what} ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
  for (const der of ders) {
    try { new X509Certificate(der) } catch (err) { throw new CommandFailed(`${what} ${path} holds a certificate that cannot be read: ${errorMessage(err)}`) }
  }
  return ders
}

export interface OutputFile {
  readonly path: string
  readonly content: string | Uint8Array
  /** Private key material: mode 0600. */
  readonly secret: boolean
}

export function writeOutputs (files: readonly OutputFile[], force: boolean, cwd: string): void {
  if (!force) {
    const existing = files.filter((f) => existsSync(f.path)).map((f) => shown(f.path, cwd))
    if (existing.length > 0) {
      throw new CommandFailed(`${existing.join(
        ', ')} already exist${existing.length === 1 ? 's' : ''}; nothing was written (use another --out or --name, or --force to replace)`)
    }
  }
  for (const f of files) {
    mkdirSync(dirname(resolve(f.path)), { recursive: true, mode: 0o700 })
    writeFileSync(f.path, f.content, { mode: f.secret ? 0o600 : 0o644 })
    // The mode above applies only to a new file; a replaced one keeps its old mode otherwise.
    if (f.secret) chmodSync(f.path, 0o600)
  }
}
