// The audit log: one JSON line per change made through the admin API, appended to
// <data>/audit.log (time, caller, action, resource, result). It never records request bodies,
// tokens, verification codes or certificates: only who did what to which resource, and how it ended.
import { appendFileSync, openSync, closeSync } from 'node:fs'

export interface AuditEntry {
  readonly caller: string
  readonly action: string
  readonly resource: string
  /** HTTP status, and the error code when it failed. */
  readonly status: number
  readonly error?: string | undefined
}

export interface AuditLog { record: (entry: AuditEntry) => void }

export function openAuditLog (file: string, now: () => Date = () => new Date()): AuditLog {
  closeSync(openSync(file, 'a', 0o600))
  return {
    record (entry) {
      const line = JSON.stringify({ time: now().toISOString(), caller: entry.caller, action: entry.action, resource: entry.resource, result: entry.status < 400 ? 'ok' : 'refused', status: entry.status, error: entry.error })
      // Synchronous append: the admin API is low-rate and an audit line must not be lost on a crash.
      appendFileSync(file, line + '\n')
    }
  }
}
