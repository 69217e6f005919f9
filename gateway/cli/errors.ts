// What a command can end with besides success, and the exit code each means to a script:
// 2 the command line is wrong (nothing was attempted), 1 the operation was attempted and failed.
export class UsageError extends Error {
  override name = 'UsageError'
  readonly exitCode = 2
  /** `usage` is the text of the command that was misused, printed after the message. */
  constructor (message: string, readonly usage?: string) { super(message) }
}

export class CommandFailed extends Error {
  override name = 'CommandFailed'
  readonly exitCode = 1
}
