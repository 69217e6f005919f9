#!/usr/bin/env node
// `certgate <command>`: the only module that reads process.env and process.argv.
import { configFromEnv, ConfigError } from './config.js'
import { startGateway } from './gateway.js'

const USAGE = `usage: certgate <command>

commands:
  start      run the gateway (configured by CERTGATE_* environment variables; see README)
  help       this text
`

async function start (): Promise<void> {
  const config = configFromEnv(process.env)
  const gw = await startGateway(config)
  const fmt = (a: { host: string, port: number }): string => a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`
  process.stdout.write(`certgate listening device=${fmt(gw.device)} admin=${fmt(gw.admin)}\n`)
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    gw.log.info({ signal }, 'draining and shutting down')
    gw.close().then(() => process.exit(0), (err: unknown) => {
      gw.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
}

async function main (argv: readonly string[]): Promise<number> {
  const [command] = argv
  switch (command) {
    case 'start':
      await start()
      return -1 // keep running
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE)
      return command === undefined ? 2 : 0
    default:
      process.stderr.write(`certgate: unknown command "${command}"\n\n${USAGE}`)
      return 2
  }
}

main(process.argv.slice(2)).then((code) => { if (code >= 0) process.exitCode = code }, (err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`certgate: configuration error: ${err.message}\n`)
  else process.stderr.write(`certgate: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
