// A CA's revocation settings as both registries store them: one JSON text column, NULL when
// there are none (so a CA registered before the settings existed reads as "none").
import { NO_REVOCATION_SETTINGS, type RevocationSettings } from './types.js'

/** The settings as stored (a JSON text column): null when there are none. */
export function settingsJson (s: RevocationSettings): string | null {
  return s.crlUrls.length === 0 && s.ocsp === null ? null : JSON.stringify({ crlUrls: s.crlUrls, ocsp: s.ocsp })
}

/** Reads the stored column back; anything unreadable is no settings (it was checked when written). */
export function settingsFromJson (text: string | null): RevocationSettings {
  if (text === null) return NO_REVOCATION_SETTINGS
  try {
    const v = JSON.parse(text) as Partial<RevocationSettings>
    return { crlUrls: Array.isArray(v.crlUrls) ? v.crlUrls : [], ocsp: v.ocsp ?? null }
  } catch {
    return NO_REVOCATION_SETTINGS
  }
}
