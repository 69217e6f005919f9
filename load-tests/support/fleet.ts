// A benchmark fleet: a root, two intermediates, N devices under the second, and a data
// directory for the gateway. Load tests are black boxes over ports: once certgate runs, `enroll`
// registers the CA (the real proof-of-possession flow) and imports every device through the
// admin API, as an operator would. Shared by the load tests.
//
// Issuing a certificate with @peculiar/x509 costs ~6 ms here, so 20,000 devices take two
// minutes: the certificates (not the registry) are kept in one file under the OS temp directory
// and grown on demand, so later runs, and runs on another Node version, reuse them.
import { X509Certificate, webcrypto } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSecureContext, type SecureContext } from 'node:tls'
import { issue, issueHierarchy, type Issued } from '../../gateway/pki/issue.js'

export interface DeviceCert { readonly id: string, readonly pem: string, readonly keyPem: string }

export interface Fleet {
  readonly dataDir: string
  readonly rootPem: string
  /** The intermediates every device sends after its leaf (int2, then int1). */
  readonly chainPem: string
  readonly devices: readonly DeviceCert[]
  /** Registers the root and imports every device through a running gateway's admin API. */
  enroll: (admin: AdminApi) => Promise<void>
  /** One client TLS context per device (leaf + intermediates + the server CA), built once. */
  contexts: (serverCaPem: string) => SecureContext[]
  /** Removes the data directory (registry and the server certificate certgate made). */
  dispose: () => void
}

export interface AdminApi { readonly url: string, readonly token: string }

interface StoredCa { readonly pem: string, readonly keyPem: string }
interface Stored { readonly version: number, readonly createdAt: number, readonly root: StoredCa, readonly int1: StoredCa, readonly int2: StoredCa, readonly devices: DeviceCert[] }

const DAY = 86_400_000
const STORE = join(tmpdir(), 'certgate-load-fleet-v1.json')

export function deviceId (i: number): string {
  return `bench-${String(i).padStart(6, '0')}`
}

/** Rebuilds an Issued CA from stored PEMs so it can sign again (more devices, a verification certificate). */
async function revive (ca: StoredCa, cn: string): Promise<Issued> {
  const x = new X509Certificate(ca.pem)
  const subtle = webcrypto.subtle
  const alg = { name: 'ECDSA', namedCurve: 'P-256' }
  const keyDer = Buffer.from(ca.keyPem.replace(/-----[^-]+-----|\s/g, ''), 'base64')
  const privateKey = await subtle.importKey('pkcs8', keyDer, alg, true, ['sign'])
  const publicKey = await subtle.importKey('spki', x.publicKey.export({ type: 'spki', format: 'der' }), alg, true, ['verify'])
  return { der: new Uint8Array(x.raw), pem: ca.pem, keyPem: ca.keyPem, keys: { privateKey, publicKey }, keyAlgorithm: 'P-256', subjectCn: cn }
}

async function loadOrGrow (count: number, log: (line: string) => void): Promise<Stored> {
  let stored: Stored | undefined
  if (existsSync(STORE)) {
    try {
      const s = JSON.parse(readFileSync(STORE, 'utf8')) as Stored
      // Leaves are issued for 365 days: start over well before any expires.
      if (s.version === 1 && Date.now() - s.createdAt < 300 * DAY) stored = s
    } catch { /* a torn or foreign file: start over */ }
  }
  if (stored === undefined) {
    const { root, int1, int2 } = await issueHierarchy()
    stored = { version: 1, createdAt: Date.now(), root: { pem: root.pem, keyPem: root.keyPem }, int1: { pem: int1.pem, keyPem: int1.keyPem }, int2: { pem: int2.pem, keyPem: int2.keyPem }, devices: [] }
  }
  if (stored.devices.length < count) {
    const int2 = await revive(stored.int2, 'certgate Intermediate 2')
    const from = stored.devices.length
    if (count - from > 500) log(`issuing ${count - from} device certificates (~6 ms each, kept in ${STORE} for later runs)`)
    for (let i = from; i < count; i++) {
      const leaf = await issue({ cn: deviceId(i), issuer: int2 })
      stored.devices.push({ id: deviceId(i), pem: leaf.pem, keyPem: leaf.keyPem })
    }
    // Write then rename: a concurrent run never reads half a file.
    const tmp = `${STORE}.${process.pid}.tmp`
    writeFileSync(tmp, JSON.stringify(stored))
    renameSync(tmp, STORE)
  }
  return stored
}

/**
 * `enroll`: the registry holds no device, only an enrollment group on the CA (id `bench`) whose
 * pattern covers every device, so each registers itself on its first connection.
 */
export async function createFleet (count: number, log: (line: string) => void = (l) => { console.log(l) }, opts: { enroll?: boolean } = {}): Promise<Fleet> {
  const stored = await loadOrGrow(count, log)
  const devices = stored.devices.slice(0, count)
  const dataDir = mkdtempSync(join(tmpdir(), 'certgate-bench-'))
  const chainPem = stored.int2.pem + stored.int1.pem
  return {
    dataDir, rootPem: stored.root.pem, chainPem, devices,
    enroll: async (admin) => { await enroll(admin, stored, devices, opts.enroll === true) },
    contexts: (serverCaPem) => devices.map((d) => createSecureContext({ key: d.keyPem, cert: d.pem + chainPem, ca: serverCaPem })),
    dispose: () => { rmSync(dataDir, { recursive: true, force: true }) }
  }
}


const CA_NAME = 'bench-root'
/** Devices per POST /devices:import: within its 10,000 and the admin API's 256 KB body limit (~90 bytes a device). */
const IMPORT_BATCH = 2_000

async function call (admin: AdminApi, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(admin.url + path, {
    method,
    headers: { authorization: `Bearer ${admin.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`)
  return text === '' ? {} : JSON.parse(text) as Record<string, unknown>
}

/** `byGroup`: no device is imported, only an enrollment group (`bench`) covering them all. */
async function enroll (admin: AdminApi, stored: Stored, devices: readonly DeviceCert[], byGroup: boolean): Promise<void> {
  // Uploading the identical certificate again changes nothing, and a verified CA stays verified.
  const ca = await call(admin, 'PUT', `/certificates/${CA_NAME}`, { certificate: stored.root.pem })
  if (ca.isVerified !== true) {
    const { verificationCode } = await call(admin, 'POST', `/certificates/${CA_NAME}/generateVerificationCode`)
    const root = await revive(stored.root, 'certgate Root CA')
    const proof = await issue({ cn: String(verificationCode), issuer: root, eku: [] })
    await call(admin, 'POST', `/certificates/${CA_NAME}/verify`, { certificate: proof.pem })
  }
  if (byGroup) {
    await call(admin, 'PUT', '/enrollmentGroups/bench', { attestation: { type: 'x509', x509: { caReferences: { primary: CA_NAME } } }, provisioningStatus: 'enabled', deviceIdPattern: 'bench-\\d{6}', initialStatus: 'enabled' })
    return
  }
  for (let i = 0; i < devices.length; i += IMPORT_BATCH) {
    const batch = devices.slice(i, i + IMPORT_BATCH).map((d) => ({ deviceId: d.id, authentication: { type: 'certificateAuthority' }, status: 'enabled' }))
    await call(admin, 'POST', '/devices:import', { devices: batch })
  }
}
