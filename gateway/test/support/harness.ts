// Test harness: a real gateway in this process on port 0 with a throwaway data directory, its
// log lines captured, and helpers to register CAs through the real proof-of-possession flow.
import type { OcspTiming } from '../../ocsp/ocsp-checker.js'
import { mkdtempSync, rmSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { configFromEnv } from '../../config.js'
import { startGateway, type Gateway } from '../../gateway.js'
import type { CrlFetchTiming } from '../../control/crl-fetcher.js'
import { issue, type Issued } from '../../pki/issue.js'
import type { DeviceInput } from '../../registry/types.js'

export interface LogLine { readonly level: number, readonly msg: string, readonly event?: string, readonly reason?: string, readonly deviceId?: string, readonly detail?: string }

export interface Harness {
  readonly gw: Gateway
  readonly dataDir: string
  readonly logs: LogLine[]
  /** The dev server certificate, for clients' `ca`. */
  readonly serverCa: string
  waitForLog: (pred: (l: LogLine) => boolean, timeoutMs?: number) => Promise<LogLine>
  registerCa: (name: string, ca: Issued) => Promise<void>
  addDevice: (deviceId: string, extra?: Partial<DeviceInput>) => Promise<void>
  close: () => Promise<void>
}

/** `now`: the gateway's clock for verification-code expiry (default: the real one). `crlFetch`, `ocsp`: CRL fetch and OCSP timing. */
export async function startHarness (env: Record<string, string> = {}, opts: { now?: () => number, crlFetch?: Partial<CrlFetchTiming>, ocsp?: Partial<OcspTiming> } = {}): Promise<Harness> {
  const dataDir = mkdtempSync(join(tmpdir(), 'certgate-test-'))
  const logs: LogLine[] = []
  const waiters = new Set<() => void>()
  const sink = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as LogLine)
      for (const w of waiters) w()
      cb()
    }
  })
  const log = pino({ level: 'debug' }, sink)
  const config = configFromEnv({
    CERTGATE_DATA_DIR: dataDir,
    ...(env.CERTGATE_CONFIG === undefined ? { CERTGATE_LISTEN: '127.0.0.1:0' } : {}),
    CERTGATE_ADMIN_LISTEN: '127.0.0.1:0',
    CERTGATE_DRAIN_TIMEOUT_MS: '200',
    CERTGATE_WORKERS: '1',
    ...env
  })
  const gw = await startGateway(config, { log, ...(opts.now === undefined ? {} : { now: opts.now }), ...(opts.crlFetch === undefined ? {} : { crlFetch: opts.crlFetch }), ...(opts.ocsp === undefined ? {} : { ocsp: opts.ocsp }) })
  return {
    gw,
    dataDir,
    logs,
    serverCa: readFileSync(env.CERTGATE_TLS_CERT ?? join(dataDir, 'dev-server-cert.pem'), 'utf8'),
    waitForLog: async (pred, timeoutMs = 5000) => await new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = logs.find(pred)
        if (hit !== undefined) { waiters.delete(check); clearTimeout(timer); resolve(hit) }
      }
      const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no matching log line within ${timeoutMs} ms; saw:\n${logs.map((l) => JSON.stringify(l)).join('\n')}`)) }, timeoutMs)
      waiters.add(check)
      check()
    }),
    registerCa: async (name, ca) => {
      await gw.caService.upload(name, ca.pem)
      const { verificationCode } = await gw.caService.generateVerificationCode(name)
      const proof = await issue({ cn: verificationCode ?? '', issuer: ca, eku: [] })
      await gw.caService.verify(name, proof.pem)
    },
    addDevice: async (deviceId, extra = {}) => {
      await gw.registry.putDevice({ deviceId, authType: 'certificateAuthority', primaryThumbprint: null, secondaryThumbprint: null, status: 'enabled', statusReason: null, ...extra })
    },
    close: async () => {
      await gw.close()
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
}
