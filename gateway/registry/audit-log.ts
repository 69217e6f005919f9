// The audit log: one record per change made through the admin API (time, caller, action,
// resource, result). It never records request bodies, tokens, verification codes or
// certificates: only who did what to which resource, and how it ended. With the embedded
// registry the records are JSON lines appended to <data>/audit.log; with PostgreSQL they go to
// its audit_log table, so every gateway of a fleet writes one log.
import { appendFileSync, openSync, closeSync } from 'node:fs'

export interface AuditEntry {
  readonly caller: string
  readonly action: string
  readonly resource: string
  /** HTTP status, and the error code when it failed. */
  readonly status: number
  readonly error?: string | undefined
}

/** What is stored for an entry. */
export interface AuditRecord {
  readonly time: string, readonly caller: string, readonly action: string, readonly resource: string,
  readonly result: 'ok' | 'refused', readonly status: number, readonly error: string | undefined
}

export interface AuditLog { record: (entry: AuditEntry) => void }

function toRecord (entry: AuditEntry, time: Date): AuditRecord {
  return { time: time.toISOString(), caller: entry.caller, action: entry.action, resource: entry.resource, result: entry.status < 400 ? 'ok' : 'refused', status: entry.status, error: entry.error }
}

export function openAuditLog (file: string, now: () => Date = () => new Date()): AuditLog {
  closeSync(openSync(file, 'a', 0o600))
  return {
    record (entry) {
      // Synchronous append: the admin API is low-rate and an audit line must not be lost on a crash.
      appendFileSync(file, JSON.stringify(toRecord(entry, now())) + '\n')
    }
  }
}

/** Audit records written by `append` (a database table); a failed write is reported, never silent. */
export function databaseAuditLog (append: (r: AuditRecord) => Promise<void>, onError: (err: Error) => void, now: () => Date = () => new Date()): AuditLog {
  return {
    record (entry) {
      append(toRecord(entry, now())).catch((err: unknown) => { onError(err as Error) })
    }
  }
}
