// One `certgate` command line, run against a CliContext: dispatch to the command and map its end
// to the exit code scripts rely on. gateway/cli.ts (the process entry) builds the context from the
// real process; tests build one that captures output, so usage and --help run in-process.
import { ConfigError } from '../config.js'
import type { CliContext } from './context.js'
import { CommandFailed, UsageError } from './errors.js'

export const USAGE = `usage: certgate <command> [flags]

commands:
  start      run the gateway (configured by CERTGATE_* environment variables; see docs/configuration.md)
  pki        create a root CA, intermediates, device certificates, verification certificates
             and PKCS#12 bundles (PEM files, on this machine)
  ca         register CA certificates with proof of possession; list, show, remove them
  device     add, get, list, enable, disable, remove devices; import many from a file
  group      enrollment groups: devices under a CA register on first connection
  help       this text

Run "certgate <command> --help" for a command's subcommands and flags. Commands that talk to
a running gateway find it with --admin/CERTGATE_ADMIN_URL (default http://127.0.0.1:8080) and
authenticate with --token/CERTGATE_ADMIN_TOKEN, else <CERTGATE_DATA_DIR or ./data>/admin-token.
`

export interface CliOutcome {
  /** 0 success, 1 failed, 2 usage error; -1 the command runs on (`start`) until a signal. */
  readonly code: number
  /** The command threw after it may have opened resources: the process entry exits at once. */
  readonly exitNow: boolean
}

async function dispatch (argv: readonly string[], ctx: CliContext, env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv
  // Each command's modules load only when it runs: `device list` need not load the gateway.
  switch (command) {
    case 'start':
      return await (await import('./start-command.js')).startCommand(rest, ctx, env)
    case 'pki':
      return await (await import('./pki-command.js')).pkiCommand(rest, ctx)
    case 'ca':
      return await (await import('./ca-command.js')).caCommand(rest, ctx)
    case 'device':
      return await (await import('./device-command.js')).deviceCommand(rest, ctx)
    case 'group':
      return await (await import('./group-command.js')).groupCommand(rest, ctx)
    case 'help':
    case '--help':
    case '-h':
      ctx.out(USAGE)
      return 0
    case undefined:
      throw new UsageError('missing command', USAGE)
    default:
      throw new UsageError(`unknown command "${command}"`, USAGE)
  }
}

export async function runCli (argv: readonly string[], ctx: CliContext, env: NodeJS.ProcessEnv): Promise<CliOutcome> {
  try {
    return { code: await dispatch(argv, ctx, env), exitNow: false }
  } catch (err) {
    if (err instanceof UsageError) {
      ctx.err(`certgate: ${err.message}\n${err.usage === undefined ? '' : `\n${err.usage}`}`)
      return { code: 2, exitNow: false }
    }
    if (err instanceof CommandFailed) ctx.err(`certgate: ${err.message}\n`)
    else if (err instanceof ConfigError) ctx.err(`certgate: configuration error: ${err.message}\n`)
    else ctx.err(`certgate: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
    return { code: 1, exitNow: true }
  }
}
