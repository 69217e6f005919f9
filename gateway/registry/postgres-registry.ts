// The fleet registry: PostgreSQL through `pg` (a Pool for queries, one dedicated client for
// LISTEN). Same contract and semantics as the SQLite registry; every mutation NOTIFYs its change
// in the same transaction, so every gateway on the database hears every change (its own are
// emitted once, locally, at commit). Versioned migrations (postgres-schema.ts) run at open under
// an advisory lock, so gateways starting together migrate once. Losing the LISTEN session fails
// closed (postgres-change-feed.ts). This file tells the opening and closing; the queries live in
// postgres-*-queries.ts, one file per resource. Only importer of pg (the others take its types).
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import type { Registry } from './types.js'
import { migrate } from './postgres-schema.js'
import { openChangeFeed, type ChangeFeed, type ChangeFeedOptions } from './postgres-change-feed.js'
import { postgresAccess } from './postgres-access.js'
import { deviceQueries } from './postgres-device-queries.js'
import { enrollmentGroupQueries } from './postgres-enrollment-queries.js'
import { caQueries } from './postgres-ca-queries.js'
import { revocationQueries } from './postgres-revocation-queries.js'
import { errorMessage } from '../../workers/errors.js'

export type { ConnectionState } from './postgres-change-feed.js'

/** One audit record, as the admin API writes it. */
export interface AuditRow {
  readonly time: string, readonly caller: string, readonly action: string, readonly resource: string,
  readonly result: string, readonly status: number, readonly error: string | undefined
}

export interface PostgresRegistry extends Registry {
  appendAudit: (row: AuditRow) => Promise<void>
}

export interface PostgresRegistryOptions extends ChangeFeedOptions {
  readonly url: string
  readonly poolSize?: number
}

/** The URL without its password, for messages. */
export function redactUrl (url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, '$1:***@').replace(/([?&]password=)[^&]*/i, '$1***')
}

export async function openPostgresRegistry (opts: PostgresRegistryOptions): Promise<PostgresRegistry> {
  const where = redactUrl(opts.url)
  const clientConfig = { connectionString: opts.url, connectionTimeoutMillis: 3000, keepAlive: true, query_timeout: 30_000 }
  const pool = new pg.Pool({ ...clientConfig, max: opts.poolSize ?? 10 })
  // An idle pooled client whose server went away emits here; the next query reconnects.
  pool.on('error', () => undefined)
  const origin = randomBytes(9).toString('base64url')
  await openedOrEnded(pool, where, async () => { await migrateOnce(pool) })
  const feed = await openedOrEnded(pool, where, async () => await openChangeFeed(opts, { newClient: () => new pg.Client(clientConfig), origin, where }))
  const access = postgresAccess({ pool, origin, available: feed.available, emit: feed.emit })
  return {
    ...deviceQueries(access),
    ...enrollmentGroupQueries(access),
    ...caQueries(access),
    ...revocationQueries(access),
    appendAudit: async (a) => {
      await access.read('INSERT INTO audit_log (time, caller, action, resource, result, status, error) VALUES ($1, $2, $3, $4, $5, $6, $7)',
        [a.time, a.caller, a.action, a.resource, a.result, a.status, a.error ?? null])
    },
    onChange: feed.onChange,
    close: closeOnce(pool, feed)
  }
}

async function migrateOnce (pool: pg.Pool): Promise<void> {
  const session = await pool.connect()
  try { await migrate(session) } finally { session.release() }
}

/** A step of opening; when it fails the pool is ended and the error names the database. */
async function openedOrEnded<T> (pool: pg.Pool, where: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step()
  } catch (err) {
    await pool.end()
    throw new Error(`the PostgreSQL registry at ${where} could not be opened: ${errorMessage(err)}`, { cause: err })
  }
}

/** Idempotent: a second close waits for the first. */
function closeOnce (pool: pg.Pool, feed: ChangeFeed): () => Promise<void> {
  let closed: Promise<void> | undefined
  return async () => {
    closed ??= (async () => {
      await feed.close()
      await pool.end()
    })()
    await closed
  }
}
