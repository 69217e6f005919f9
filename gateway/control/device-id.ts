// IoT Hub device identity rules: case-sensitive, at most 128 characters of ASCII letters,
// digits and - : . + % _ # * ? ! ( ) , = @ ; $ '
export const MAX_DEVICE_ID_LENGTH = 128
const ALLOWED = /^[A-Za-z0-9\-:.+%_#*?!(),=@;$']$/
/** The same set, a whole id at once: the check every connection makes (the loop below only names what is wrong). */
const ALL_ALLOWED = /^[A-Za-z0-9\-:.+%_#*?!(),=@;$']+$/

/** Undefined if valid, else a sentence naming what is wrong. */
export function deviceIdProblem (id: string): string | undefined {
  if (id.length === 0) return 'deviceId is empty'
  // URLs resolve these as dot segments, so such a device could never be addressed by the admin API.
  if (id === '.' || id === '..') return `deviceId "${id}" is not allowed (it is a path segment in URLs)`
  if (id.length > MAX_DEVICE_ID_LENGTH) return `deviceId is ${id.length} characters long; at most ${MAX_DEVICE_ID_LENGTH} are allowed`
  if (ALL_ALLOWED.test(id)) return undefined
  let i = 0
  for (const ch of id) { // by code point, so a character outside the BMP is named whole
    i++
    if (!ALLOWED.test(ch)) {
      const code = ch.codePointAt(0) ?? 0
      const shown = code >= 0x21 && code <= 0x7e ? `'${ch}'` : `U+${code.toString(16).toUpperCase().padStart(4, '0')}`
      return `deviceId has the character ${shown} at position ${i}; allowed are ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '`
    }
  }
  return undefined
}
