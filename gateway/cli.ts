#!/usr/bin/env node
// `certgate <command>`: the only module that reads process.env and process.argv. Commands get
// the values they use through a CliContext (gateway/cli/run-cli.ts dispatches). Exit codes
// scripts can rely on: 0 success, 1 the operation failed (the API refused, the gateway could not
// be reached, a file was unusable), 2 usage error (unknown command or flag, missing argument):
// nothing was attempted.
import type { CliContext } from './cli/context.js'
import { runCli } from './cli/run-cli.js'

const ctx: CliContext = {
  out: (text) => { process.stdout.write(text) },
  err: (text) => { process.stderr.write(text) },
  env: { adminUrl: process.env.CERTGATE_ADMIN_URL, adminToken: process.env.CERTGATE_ADMIN_TOKEN, dataDir: process.env.CERTGATE_DATA_DIR },
  cwd: process.cwd()
}

const { code, exitNow } = await runCli(process.argv.slice(2), ctx, process.env)
if (exitNow) process.exit(code)
if (code >= 0) process.exitCode = code
