// nginx from Debian as the yardstick: the `stream` module terminating mTLS (ssl_verify_client
// on, the registered root as ssl_client_certificate, tickets and session cache off, TLS 1.3)
// and proxying each authenticated connection to the same upstream certgate forwards to. That is
// certgate's `tcp` mode, byte for byte: handshake, verify the chain, open the upstream, pump.
// Runs as a child process (daemon off) with a generated config in a temp dir; stopped by PID.
// Installs nothing: detect() says what is missing.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { childPids, spawnWithNofile, stopper, type ServerProcess } from './servers.js'
import { freePort, waitForPort } from './ports.js'

const BINARIES = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']
const STREAM_MODULES = ['/usr/lib/nginx/modules/ngx_stream_module.so', '/usr/share/nginx/modules/ngx_stream_module.so']

export type NginxFound = { readonly ok: true, readonly binary: string, readonly streamModule: string | undefined } | { readonly ok: false, readonly missing: string }

/** Finds nginx and its stream module (built in, or Debian's dynamic libnginx-mod-stream). */
export function detectNginx (): NginxFound {
  const binary = BINARIES.find((b) => existsSync(b))
  if (binary === undefined) return { ok: false, missing: 'nginx is not installed: apt-get install -y nginx-light libnginx-mod-stream (Debian/Ubuntu)' }
  const streamModule = STREAM_MODULES.find((m) => existsSync(m))
  // Debian builds stream as a dynamic module; a source build may have it built in (we cannot
  // tell without running it, so try that only when no module file exists).
  if (streamModule === undefined && binary.startsWith('/usr/sbin')) return { ok: false, missing: 'the nginx stream module is missing: apt-get install -y libnginx-mod-stream' }
  return { ok: true, binary, streamModule }
}

export interface NginxOptions {
  readonly certFile: string
  readonly keyFile: string
  /** The CA devices chain to (ssl_client_certificate). */
  readonly caFile: string
  readonly upstreamPort: number
  readonly workers?: number
  readonly nofile?: number
  /**
   * 'stream' (default): mTLS then a byte pump, as certgate's tcp mode. 'http': nginx's mTLS HTTP
   * reverse proxy with upstream keep-alive and the client's subject in a header, as certgate's
   * http mode.
   */
  readonly mode?: 'stream' | 'http'
}

function tlsLines (opts: NginxOptions, port: number): string[] {
  return [
    `    listen 127.0.0.1:${port} ssl;`,
    `    ssl_certificate ${opts.certFile};`,
    `    ssl_certificate_key ${opts.keyFile};`,
    '    ssl_protocols TLSv1.3;',
    '    ssl_verify_client on;',
    `    ssl_client_certificate ${opts.caFile};`,
    '    ssl_verify_depth 4;',
    '    ssl_session_tickets off;',
    '    ssl_session_cache off;'
  ]
}

function streamBlock (opts: NginxOptions, port: number): string[] {
  return ['stream {', '  server {', ...tlsLines(opts, port), `    proxy_pass 127.0.0.1:${opts.upstreamPort};`, '  }', '}']
}

function httpBlock (opts: NginxOptions, port: number, dir: string): string[] {
  return [
    'http {',
    '  access_log off;',
    // Temp paths inside the run's prefix (Debian's compiled-in /var/lib/nginx may not exist).
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, t)};`),
    '  keepalive_requests 1000000;',
    '  keepalive_timeout 300s;',
    `  upstream backend { server 127.0.0.1:${opts.upstreamPort}; keepalive 256; }`,
    '  server {',
    ...tlsLines(opts, port),
    '    location / {',
    '      proxy_pass http://backend;',
    '      proxy_http_version 1.1;',
    '      proxy_set_header Connection "";',
    '      proxy_set_header X-Client-Subject $ssl_client_s_dn;',
    '      proxy_set_header X-Client-Verify $ssl_client_verify;',
    '    }',
    '  }',
    '}'
  ]
}

export async function startNginx (found: Extract<NginxFound, { ok: true }>, opts: NginxOptions): Promise<ServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'certgate-nginx-'))
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, [
    found.streamModule === undefined ? '' : `load_module ${found.streamModule};`,
    `worker_processes ${opts.workers ?? 2};`,
    `pid ${join(dir, 'nginx.pid')};`,
    `error_log ${join(dir, 'error.log')} error;`,
    `worker_rlimit_nofile ${opts.nofile ?? 65536};`,
    'events { worker_connections 32768; }',
    ...((opts.mode ?? 'stream') === 'http' ? httpBlock(opts, port, dir) : streamBlock(opts, port))
  ].join('\n') + '\n')
  // -e: the error log before the config is read (no /var/log/nginx); -p: the prefix for relative paths.
  const child = spawnWithNofile(opts.nofile ?? 65536, found.binary, ['-e', join(dir, 'error.log'), '-p', dir, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr?.on('data', (d: Buffer) => { log += d.toString() })
  try {
    await waitForPort(port, () => child.exitCode !== null, 5000)
  } catch (err) {
    child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`nginx did not start: ${(err as Error).message}\n${log}`)
  }
  const pid = child.pid ?? 0
  const stop = stopper(child)
  return {
    pid,
    port,
    pids: () => [pid, ...childPids(pid)],
    stop: async () => { await stop(); rmSync(dir, { recursive: true, force: true }) }
  }
}
