// The text of a caught value, for error messages. Anything thrown with a string `message` (every Error,
// also one from another realm) gives exactly that message; anything else is spelled with String(), so a
// message never reads "undefined" and reading it never throws. Shared by workers/ and gateway/ (workers/
// must not import gateway/).
export function errorMessage (err: unknown): string {
  if (typeof err === 'object' && err !== null && 'message' in err && typeof err.message === 'string') return err.message
  return String(err)
}
