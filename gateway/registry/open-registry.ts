// Chooses the registry backend from the configuration: PostgreSQL when a registry URL is set
// (a fleet of gateways sharing one database, changes heard through LISTEN/NOTIFY), else the
// embedded SQLite file in the data directory. The audit log goes with it: a file next to the
// SQLite database, a table in PostgreSQL.
import { join } from 'node:path'
import { databaseAuditLog, openAuditLog, type AuditLog } from './audit-log.js'
import { openSqliteRegistry } from './sqlite-registry.js'
import type { ConnectionState } from './postgres-registry.js'
import type { Registry } from './types.js'

export interface OpenedRegistry {
  readonly registry: Registry
  readonly audit: AuditLog
  /** 'sqlite' or 'postgres': whether changes reach other processes by themselves. */
  readonly backend: 'sqlite' | 'postgres'
}

export interface OpenRegistryDeps {
  /** PostgreSQL connection lost or restored. */
  readonly onState?: (s: ConnectionState) => void
  /** An audit record could not be written. */
  readonly onAuditError?: (err: Error) => void
}

export async function openRegistry (opts: { dataDir: string, registryUrl: string | undefined }, deps: OpenRegistryDeps = {}): Promise<OpenedRegistry> {
  if (opts.registryUrl === undefined) {
    return { registry: openSqliteRegistry(join(opts.dataDir, 'registry.sqlite')), audit: openAuditLog(join(opts.dataDir, 'audit.log')), backend: 'sqlite' }
  }
  // Loaded only when used: an SQLite gateway never loads pg.
  const { openPostgresRegistry } = await import('./postgres-registry.js')
  const registry = await openPostgresRegistry({ url: opts.registryUrl, ...(deps.onState === undefined ? {} : { onState: deps.onState }) })
  const onAuditError = deps.onAuditError ?? ((err: Error) => { process.emitWarning(`audit record not written: ${err.message}`) })
  return { registry, audit: databaseAuditLog(registry.appendAudit, onAuditError), backend: 'postgres' }
}
