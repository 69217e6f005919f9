// The primary of a process group (CERTGATE_PROCESSES > 1): prepares what the gateway processes
// would otherwise race to create (data directory, admin token, dev certificate, schema, the
// embedded broker), forks them with node:cluster (one shared device port and one shared admin
// port, round-robin by default, each process with its own validation pool), prints the listening
// line once, relays registry changes between them, answers /metrics with the whole group's, and
// on SIGTERM has every process drain and waits for them. It serves no device itself. A process
// that dies stops the group (exit 1), so the supervisor restarts it whole rather than the group
// running on, a process short, unnoticed.
import cluster, { type Worker } from 'node:cluster'
import { formatHostPort, type Config, type HostPort } from '../config.js'
import type { CliContext } from '../cli/context.js'
import { adminToken, ensureDataDir, serverCertificate } from '../data-dir.js'
import { openRegistry } from '../registry/open-registry.js'
import type { EmbeddedBroker } from '../upstream/embedded-broker.js'
import { groupMetrics } from '../metrics.js'
import { GROUP_BROKER_ENV, isMemberMessage, type ListeningOn, type MemberMessage, type PrimaryMessage } from './messages.js'
import { listeningLines } from '../listening-lines.js'
import { errorMessage } from '../../workers/errors.js'

const START_TIMEOUT_MS = 60_000

type Ready = { readonly listeners: readonly ListeningOn[], readonly admin: HostPort }

/** Resolves with -1 once the group is listening (the process lives on until a signal), or 1 if it could not start. */
export async function runProcessGroup (config: Config, ctx: CliContext): Promise<number> {
  // From the start: a SIGTERM while the group is still starting stops it cleanly too.
  const signalled: { stop: boolean, then: (() => void) | undefined } = { stop: false, then: undefined }
  const stop = (): void => { signalled.stop = true; signalled.then?.() }
  /** A function, so the check is not narrowed away across awaits. */
  const stopRequested = (): boolean => signalled.stop
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  // Every process serves the certificate itself: each re-reads it (workers forked later read it at start).
  const workers: Worker[] = []
  process.on('SIGHUP', () => { for (const w of workers) if (w.isConnected() && w.process.pid !== undefined) w.process.kill('SIGHUP') })
  ensureDataDir(config.dataDir)
  adminToken(config.dataDir, config.adminToken)
  await serverCertificate(config.dataDir, config.tlsCertFile, config.tlsKeyFile)
  // Migrate once, here, before the processes open the registry together.
  await (await openRegistry(config)).registry.close()
  let broker: EmbeddedBroker | undefined
  const env: Record<string, string> = {}
  if (config.listeners.some((l) => l.upstream === undefined)) {
    // One broker for the group, so devices on different processes reach each other.
    const { startEmbeddedBroker } = await import('../upstream/embedded-broker.js')
    broker = await startEmbeddedBroker()
    env[GROUP_BROKER_ENV] = formatHostPort(broker)
  }
  if (stopRequested()) { await broker?.close(); return 0 }

  const metricsText = groupMetrics()
  // Node's default on Linux is round-robin (the primary accepts and hands connections out evenly);
  // NODE_CLUSTER_SCHED_POLICY=none lets the processes accept from the shared socket themselves.
  let stopping = false
  const exitCodes = new Map<Worker, number>()

  const relay = (from: Worker, m: PrimaryMessage): void => {
    for (const w of workers) if (w !== from && w.isConnected()) w.send(m)
  }
  const onMessage = (w: Worker, m: MemberMessage): void => {
    if (m.certgate === 'change') relay(w, { certgate: 'change', change: m.change })
    else if (m.certgate === 'metrics_request') {
      metricsText().then(
        (text) => { if (w.isConnected()) w.send({ certgate: 'metrics', id: m.id, text } satisfies PrimaryMessage) },
        (err: unknown) => { if (w.isConnected()) w.send({ certgate: 'metrics', id: m.id, error: errorMessage(err) } satisfies PrimaryMessage) })
    }
  }

  const stopAll = async (code: number): Promise<never> => {
    stopping = true
    const exits = workers.filter((w) => !exitCodes.has(w)).map(async (w) => { await new Promise((resolve) => w.once('exit', resolve)) })
    for (const w of workers) if (!exitCodes.has(w) && w.process.pid !== undefined) w.process.kill('SIGTERM')
    await Promise.all(exits)
    await broker?.close()
    const failed = [...exitCodes.values()].some((c) => c !== 0)
    process.exit(code !== 0 || failed ? 1 : 0)
  }

  signalled.then = () => { if (!stopping) void stopAll(0) }
  const ready = new Promise<Ready[]>((resolve, reject) => {
    const addresses: Ready[] = []
    const timer = setTimeout(() => { reject(new Error(`the gateway processes did not all start within ${START_TIMEOUT_MS / 1000} s`)) }, START_TIMEOUT_MS)
    for (let i = 1; i <= config.processes; i++) {
      const w = cluster.fork(env)
      workers.push(w)
      w.on('message', (m: unknown) => {
        if (!isMemberMessage(m)) return
        if (m.certgate === 'ready') {
          addresses.push({ listeners: m.listeners, admin: m.admin })
          if (addresses.length === config.processes) { clearTimeout(timer); resolve(addresses) }
        } else onMessage(w, m)
      })
      // Node passes a null code for a process killed by a signal (the types say number).
      w.once('exit', (code: number | null, signal: string | null) => {
        exitCodes.set(w, code ?? 1)
        if (stopping) return
        clearTimeout(timer)
        const why = `gateway process ${i} (pid ${w.process.pid ?? '?'}) exited with ${signal ?? `code ${code ?? '?'}`}`
        reject(new Error(why))
        ctx.err(`certgate: ${why}; stopping the group\n`)
        void stopAll(1)
      })
    }
  })

  if (stopRequested()) return await stopAll(0)
  let addresses: Ready[]
  try {
    addresses = await ready
  } catch (err) {
    ctx.err(`certgate: ${errorMessage(err)}\n`)
    return await stopAll(1)
  }
  const first = addresses[0] as Ready
  // Round-robin: the primary holds the listening sockets, so every process has the same ports.
  ctx.out(listeningLines(first.listeners, first.admin))
  if (stopRequested()) void stopAll(0)
  return -1
}
