#!/usr/bin/env node
// `certgate <command>`: the only module that reads process.env and process.argv. Commands get
// the values they use through a CliContext. Exit codes scripts can rely on: 0 success, 1 the
// operation failed (the API refused, the gateway could not be reached, a file was unusable),
// 2 usage error (unknown command or flag, missing argument): nothing was attempted.
import { ConfigError } from './config.js'
import type { CliContext } from './cli/context.js'
import { CommandFailed, UsageError } from './cli/errors.js'

const USAGE = `usage: certgate <command> [flags]

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

const ctx: CliContext = {
  out: (text) => { process.stdout.write(text) },
  err: (text) => { process.stderr.write(text) },
  env: { adminUrl: process.env.CERTGATE_ADMIN_URL, adminToken: process.env.CERTGATE_ADMIN_TOKEN, dataDir: process.env.CERTGATE_DATA_DIR },
  cwd: process.cwd()
}

async function main (argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv
  // Each command's modules load only when it runs: `device list` need not load the gateway.
  switch (command) {
    case 'start':
      return await (await import('./cli/start-command.js')).startCommand(rest, ctx, process.env)
    case 'pki':
      return await (await import('./cli/pki-command.js')).pkiCommand(rest, ctx)
    case 'ca':
      return await (await import('./cli/ca-command.js')).caCommand(rest, ctx)
    case 'device':
      return await (await import('./cli/device-command.js')).deviceCommand(rest, ctx)
    case 'group':
      return await (await import('./cli/group-command.js')).groupCommand(rest, ctx)
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

main(process.argv.slice(2)).then((code) => { if (code >= 0) process.exitCode = code }, (err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`certgate: ${err.message}\n${err.usage === undefined ? '' : `\n${err.usage}`}`)
    process.exitCode = 2
    return
  }
  if (err instanceof CommandFailed) process.stderr.write(`certgate: ${err.message}\n`)
  else if (err instanceof ConfigError) process.stderr.write(`certgate: configuration error: ${err.message}\n`)
  else process.stderr.write(`certgate: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
