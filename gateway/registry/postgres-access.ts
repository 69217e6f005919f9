// How the PostgreSQL registry's queries reach the database: plain reads, and transactions whose
// changes are NOTIFYd inside them and emitted locally after COMMIT (postgres-change-feed.ts
// hears other gateways' changes). Both refuse while the change feed is down: fail closed.
import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import { PreconditionFailed, type RegistryChange } from './types.js'

export const CHANNEL = 'certgate_registry'

/** What a write transaction returns: its result, and the changes to announce once it commits. */
export interface Written<T> { readonly result: T, readonly changes: readonly RegistryChange[] }

export interface PostgresAccess {
  read: <R extends pg.QueryResultRow>(sql: string, params?: unknown[]) => Promise<R[]>
  /** Runs `fn` in one transaction; the `changes` it returns are NOTIFYd inside it and emitted after COMMIT. */
  tx: <T>(fn: (c: pg.PoolClient) => Promise<Written<T>>) => Promise<T>
}

export interface AccessDeps {
  readonly pool: pg.Pool
  /** This gateway's id in NOTIFY payloads, so its own changes are not emitted twice. */
  readonly origin: string
  /** Throws while the registry is closed or cannot hear changes. */
  readonly available: () => void
  readonly emit: (change: RegistryChange) => void
}

export const newEtag = (): string => randomBytes(9).toString('base64url')
export const nowIso = (): string => new Date().toISOString()

/** The first row a statement returns inside a transaction. */
export async function one<R extends pg.QueryResultRow> (c: pg.PoolClient, sql: string, params: unknown[]): Promise<R | undefined> {
  return (await c.query<R>(sql, params)).rows[0]
}

/** Whether a statement touched a row (DELETE and UPDATE results). */
export async function touched (c: pg.PoolClient, sql: string, params: unknown[]): Promise<boolean> {
  return ((await c.query(sql, params)).rowCount ?? 0) > 0
}

export function checkMatch (stored: { etag: string } | undefined, ifMatch: string | undefined): void {
  if (ifMatch === undefined) return
  if (ifMatch === '*' ? stored === undefined : stored?.etag !== ifMatch) {
    throw new PreconditionFailed(`If-Match ${ifMatch} does not match the current etag`)
  }
}

export function postgresAccess ({ pool, origin, available, emit }: AccessDeps): PostgresAccess {
  return {
    async read<R extends pg.QueryResultRow> (sql: string, params: unknown[] = []): Promise<R[]> {
      available()
      return (await pool.query<R>(sql, params)).rows
    },
    async tx<T> (fn: (c: pg.PoolClient) => Promise<Written<T>>): Promise<T> {
      available()
      const c = await pool.connect()
      let broken = false
      try {
        await c.query('BEGIN')
        const { result, changes } = await fn(c)
        for (const change of changes) await c.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify({ origin, change })])
        await c.query('COMMIT')
        for (const change of changes) emit(change)
        return result
      } catch (err) {
        await c.query('ROLLBACK').catch(() => { broken = true })
        throw err
      } finally {
        c.release(broken)
      }
    }
  }
}
