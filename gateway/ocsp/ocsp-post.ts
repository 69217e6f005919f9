// One OCSP request over HTTP (RFC 6960 Appendix A.1): POST application/ocsp-request to a responder
// the operator named for the CA, with node's own http/https client. Only a 200 is taken (redirects
// could lead anywhere and are not followed), within a deadline and a size cap.
import http from 'node:http'
import https from 'node:https'

export interface PostLimits {
  /** For the whole exchange: connect, answer and body. */
  readonly timeoutMs: number
  readonly maxBytes: number
}

/** Why a POST failed, as the OCSP failure reasons name it. */
export class PostFailed extends Error {
  constructor (readonly reason: 'unreachable' | 'http_error' | 'too_large', message: string) { super(message) }
}

export async function postOcsp (url: string, body: Uint8Array, limits: PostLimits, signal?: AbortSignal): Promise<Buffer> {
  const u = new URL(url)
  const lib = u.protocol === 'http:' ? http : u.protocol === 'https:' ? https : undefined
  if (lib === undefined) throw new PostFailed('unreachable', `only http and https responders are queried, not ${u.protocol}`)
  return await new Promise<Buffer>((resolve, reject) => {
    const req = lib.request(u, {
      method: 'POST',
      timeout: limits.timeoutMs,
      ...(signal === undefined ? {} : { signal }),
      headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response', 'content-length': body.length }
    }, (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        reject(new PostFailed('http_error', `${url} answered HTTP ${res.statusCode ?? '?'} (redirects are not followed)`))
        return
      }
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        if (size > limits.maxBytes) req.destroy(new PostFailed('too_large', `${url} sent more than ${limits.maxBytes} bytes`))
        else chunks.push(c)
      })
      res.on('end', () => { resolve(Buffer.concat(chunks)) })
      res.on('error', reject)
    })
    const deadline = setTimeout(() => { req.destroy(new PostFailed('unreachable', `${url} did not answer within ${limits.timeoutMs} ms`)) }, limits.timeoutMs)
    req.on('timeout', () => { req.destroy(new PostFailed('unreachable', `${url} went silent for ${limits.timeoutMs} ms`)) })
    req.on('error', (err) => { reject(err instanceof PostFailed ? err : new PostFailed('unreachable', `${url}: ${err.message}`)) })
    req.on('close', () => { clearTimeout(deadline) })
    req.end(body)
  })
}
