// An OCSP responder answered by the real tool: each request is handed to `openssl ocsp -index
// index.txt -reqin … -respout …` (signing with the CA's key, or a delegated responder's), behind a
// plain node HTTP server on 127.0.0.1, port 0. Not `openssl ocsp -port`: OpenSSL 3.0 takes only a
// port number there and binds every interface, and tests stay on loopback. The index is rewritten
// by the test; `stop` closes the listener (connections refused) and `start` opens it again on the
// same port.
import { execFile } from 'node:child_process'
import http from 'node:http'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import type { Issued } from '../../pki/issue.js'
import { parseCertificate } from '../../../workers/certificate.js'
import { asn1Time } from './openssl-crl.js'

const run = promisify(execFile)

export interface OcspResponder {
  readonly url: string
  /** Requests answered so far. */
  readonly answered: () => number
  /** Requests answered so far about this certificate (its serial in the request). */
  readonly askedAbout: (c: Issued) => number
  /** Rewrites the index: these certificates valid, those revoked (others are unknown to it). */
  setIndex: (valid: readonly Issued[], revoked: readonly Issued[]) => void
  /** Stops listening: new requests are refused at the TCP level. */
  stop: () => Promise<void>
  start: () => Promise<void>
  close: () => Promise<void>
}

/** openssl looks serials up as BN_bn2hex prints them: upper case, no leading zero octets. */
const indexSerial = (c: Issued): string => parseCertificate(c.der).serial.toUpperCase().replace(/^(00)+(?=..)/, '')

export interface ResponderOptions {
  /** The CA whose certificates it answers for (its index); signs unless `signer` is given. */
  readonly ca: Issued
  /** A delegated responder certificate (id-kp-OCSPSigning, issued by `ca`). */
  readonly signer?: Issued
  /** Minutes until nextUpdate; without it answers carry none. */
  readonly nextUpdateMinutes?: number
}

export async function startOpensslOcsp (opts: ResponderOptions): Promise<OcspResponder> {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-ocsp-'))
  const signer = opts.signer ?? opts.ca
  const file = (name: string): string => join(dir, name)
  writeFileSync(file('ca.pem'), opts.ca.pem)
  writeFileSync(file('signer.pem'), signer.pem)
  writeFileSync(file('signer.key'), signer.keyPem, { mode: 0o600 })
  let answered = 0
  const requests: Buffer[] = []
  let n = 0

  const setIndex = (valid: readonly Issued[], revoked: readonly Issued[]): void => {
    const line = (c: Issued, status: 'V' | 'R'): string => {
      const cert = parseCertificate(c.der)
      // index.txt: status, expiry, revocation date, serial (hex), file, subject.
      return [status, asn1Time(new Date(cert.notAfter)).slice(2), status === 'R' ? asn1Time(new Date(Date.now() - 60_000)).slice(2) : '', indexSerial(c), 'unknown', `/CN=${c.subjectCn}`].join('\t')
    }
    writeFileSync(file('index.txt'), [...valid.map((c) => line(c, 'V')), ...revoked.map((c) => line(c, 'R'))].map((l) => l + '\n').join(''))
  }

  async function answer (request: Buffer): Promise<Buffer> {
    const id = ++n
    writeFileSync(file(`req-${id}.der`), request)
    const args = ['ocsp', '-index', file('index.txt'), '-CA', file('ca.pem'), '-rsigner', file('signer.pem'), '-rkey', file('signer.key'),
      '-reqin', file(`req-${id}.der`), '-respout', file(`resp-${id}.der`)]
    if (opts.nextUpdateMinutes !== undefined) args.push('-nmin', String(opts.nextUpdateMinutes))
    await run('openssl', args)
    return readFileSync(file(`resp-${id}.der`))
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => { chunks.push(c) })
    req.on('end', () => {
      const request = Buffer.concat(chunks)
      answer(request).then((body) => {
        answered++
        requests.push(request)
        res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(body)
      }, () => { res.writeHead(500).end() })
    })
  })
  let port = 0
  const start = async (): Promise<void> => {
    await new Promise<void>((resolve) => { server.listen(port, '127.0.0.1', resolve) })
    port = (server.address() as AddressInfo).port
  }
  const stop = async (): Promise<void> => {
    server.closeAllConnections()
    await new Promise((resolve) => { server.close(resolve) })
  }

  setIndex([], [])
  await start()
  return {
    url: `http://127.0.0.1:${port}/`,
    answered: () => answered,
    askedAbout: (c) => {
      const serial = Buffer.from(parseCertificate(c.der).serial, 'hex')
      return requests.filter((r) => r.includes(serial)).length
    },
    setIndex,
    stop,
    start,
    close: async () => { if (server.listening) await stop(); rmSync(dir, { recursive: true, force: true }) }
  }
}
