// Command-line parsing for every command: node:util parseArgs in strict mode (an unknown flag or a
// flag without its value is a usage error, exit 2), `--help`/`-h` everywhere, and dispatch of
// subcommands within a command group.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { CliContext } from './context.js'
import { UsageError } from './errors.js'
import { errorMessage } from '../../workers/errors.js'

type OptionSpec = NonNullable<ParseArgsConfig['options']>
const HELP = { help: { type: 'boolean', short: 'h' } } as const
export type Flags<O extends OptionSpec> = ReturnType<typeof parseArgs<{ args: string[], options: O & typeof HELP, strict: true,
  allowPositionals: false }>>['values']

/**
 * Flags whose values are random secrets: a generated admin token is base64url and may begin with
 * "-", which parseArgs would refuse as ambiguous (`--token -x...`). They always take the next
 * argument as their value.
 */
const SECRET_FLAGS = new Set(['--token', '--password'])

function joinSecretValues (args: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    const value = args[i + 1]
    if (SECRET_FLAGS.has(arg) && value !== undefined) { out.push(`${arg}=${value}`); i++ } else out.push(arg)
  }
  return out
}

/** The flags of one command; throws UsageError (with `usage`) for anything parseArgs refuses. */
export function parseFlags<const O extends OptionSpec> (args: readonly string[], options: O, usage: string): Flags<O> {
  try {
    return parseArgs({ args: joinSecretValues(args), options: { ...options, ...HELP }, strict: true, allowPositionals: false }).values
  } catch (err) {
    // parseArgs messages are written for people already ("Unknown option '--x'"); keep them.
    throw new UsageError(errorMessage(err), usage)
  }
}

export function required<T> (value: T | undefined, flag: string, usage: string): T {
  if (value === undefined || value === '') throw new UsageError(`missing ${flag}`, usage)
  return value
}

/** A repeatable, comma-separable list flag: `--chain a.pem,b.pem` or `--chain a.pem --chain b.pem`. */
export function listFlag (values: readonly string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '')
}

export function intFlag (value: string | undefined, flag: string, min: number, max: number, usage: string): number | undefined {
  if (value === undefined) return undefined
  const n = /^\d+$/.test(value) ? Number(value) : NaN
  if (!(n >= min && n <= max)) throw new UsageError(`${flag} must be an integer from ${min} to ${max}, not "${value}"`, usage)
  return n
}

export type Command = (args: readonly string[], ctx: CliContext) => Promise<number>

/** Runs `<group> <subcommand> ...`: help for the group, or a usage error naming what is wrong. */
export async function dispatch (args: readonly string[], ctx: CliContext,
  group: { readonly name: string, readonly usage: string, readonly commands: Readonly<Record<string, Command>> }): Promise<number> {
  const [sub, ...rest] = args
  if (sub === '--help' || sub === '-h' || sub === 'help') { ctx.out(group.usage); return 0 }
  if (sub === undefined) throw new UsageError(`${group.name}: missing subcommand`, group.usage)
  const command = Object.hasOwn(group.commands, sub) ? group.commands[sub] : undefined
  if (command === undefined) throw new UsageError(`${group.name}: unknown subcommand "${sub}"`, group.usage)
  return await command(rest, ctx)
}
