// `certgate start`: the gateway process (what `npm start` runs), configured by the CERTGATE_*
// environment variables. Prints one "certgate listening ..." line once both listeners are up;
// SIGTERM or SIGINT drains and exits 0.
import { configFromEnv } from '../config.js'
import { parseFlags } from './args.js'
import type { CliContext } from './context.js'
import { listeningLines } from '../listening-lines.js'
import { tierUpSooner } from './v8-tiering.js'

const USAGE = `usage: certgate start

Runs the gateway, configured by the CERTGATE_* environment variables (see docs/configuration.md):
CERTGATE_DATA_DIR, CERTGATE_LISTEN, CERTGATE_PROTOCOL, CERTGATE_UPSTREAM, CERTGATE_ADMIN_LISTEN,
CERTGATE_ADMIN_TOKEN, CERTGATE_TLS_CERT, CERTGATE_TLS_KEY and more; several device listeners
come from the JSON file named by CERTGATE_CONFIG. Once listening it prints, per device listener,
  certgate listening device=<host>:<port> admin=<host>:<port>
(followed by " listener=<name> protocol=<protocol>" when there are several).
SIGTERM (or SIGINT) stops accepting, drains and exits 0. SIGHUP re-reads CERTGATE_TLS_CERT and
CERTGATE_TLS_KEY (and listeners' tlsCert/tlsKey), which are also watched for changes. With CERTGATE_PROCESSES=N (N > 1) it
runs N gateway processes sharing the ports and prints the lines once.
`

/** Resolves with -1 once running: the process lives on until a signal. */
export async function startCommand (args: readonly string[], ctx: CliContext, env: NodeJS.ProcessEnv): Promise<number> {
  const v = parseFlags(args, {}, USAGE)
  if (v.help === true) { ctx.out(USAGE); return 0 }
  const config = configFromEnv(env)
  // Before the gateway's modules load: on Node 22 its per-connection code is optimized sooner.
  tierUpSooner()
  // CERTGATE_PROCESSES > 1: this is either the group's primary (forks and supervises) or one of its gateway processes.
  const { default: cluster } = await import('node:cluster')
  if (config.processes > 1 && cluster.isPrimary) return await (await import('../cluster/process-group.js')).runProcessGroup(config, ctx)
  const group = config.processes > 1 ? (await import('../cluster/group-member.js')).joinGroup(env) : undefined
  // SIGHUP re-reads the server certificate files (they are watched too); never a reason to exit,
  // not even while starting (the files are read at start anyway).
  let onHangup = (): void => undefined
  process.on('SIGHUP', () => { onHangup() })
  // Loaded here so the other commands do not pay for the gateway's modules.
  const { startGateway } = await import('../gateway.js')
  const gw = await startGateway(config, group === undefined ? {} : { group, broker: group.broker })
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
  // Before the listening lines: a script may send SIGTERM the moment it reads them.
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
  onHangup = () => {
    gw.log.info({ signal: 'SIGHUP' }, 're-reading the server certificate files')
    gw.reloadServerCertificates()
  }
  // In a group the primary prints the lines, once.
  if (group === undefined) ctx.out(listeningLines(gw.listeners, gw.admin))
  else group.ready(gw.listeners.map(({ name, protocol, address }) => ({ name, protocol, address })), gw.admin)
  return -1
}
