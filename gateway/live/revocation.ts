// Applies registry changes to what is running: a new trust snapshot for the validator pool when
// CAs change, and closing the live connections a change revokes (device disabled, deleted or
// re-keyed; CA removed or replaced). Runs on every change event, so revocation takes effect at once.
// Change events come from this process's registry, or — with PostgreSQL or several processes —
// from every gateway sharing the registry, so revocation is fleet-wide.
//
// No window: a change event only reaches the connections tracked when it is applied, and a
// connection is tracked only after its decision, which may have read the registry before the
// change committed (PostgreSQL answers a query and announces a change on different sessions).
// So every applied change bumps a generation; a connection reads it before its decision begins
// and, once tracked, is checked again by `stillAllowed` if it moved.
import { checkDevice, type Decision } from '../auth/authenticate.js'
import type { LiveConnections, LiveEntry } from './live-connections.js'
import type { Registry, RegistryChange } from '../registry/types.js'
import type { TrustedCa } from '../validation/validator-pool.js'
import type { CloseReason } from '../reasons.js'
import type { CertificateRevocation } from './certificate-revocation.js'

export interface RevocationDeps {
  readonly registry: Registry
  readonly live: LiveConnections
  readonly setTrusted: (cas: readonly TrustedCa[]) => void
  /** Deny-list and CRLs: reloaded on revocation, CA and bulk changes, and asked on every recheck. */
  readonly certificates?: CertificateRevocation
  readonly onError: (err: Error) => void
  readonly now?: () => number
}

export type Refused = Extract<Decision, { ok: false }>

export interface Revocation {
  /** How many change events have been received; moves before the change is applied. */
  readonly generation: () => number
  /**
   * Checks one tracked connection against the registry and the trusted CAs as they are now
   * (after any trust refresh under way): undefined if it may stay, else why not.
   */
  readonly stillAllowed: (entry: LiveEntry) => Promise<Refused | undefined>
  readonly stop: () => void
}

/** Loads the verified, unexpired CAs: the only anchors devices may chain to. */
export async function loadTrusted (registry: Registry, now: number): Promise<TrustedCa[]> {
  const cas = await registry.listCas()
  return cas.filter((c) => c.isVerified && Date.parse(c.notAfter) > now).map((c) => ({ name: c.name, der: c.certificateDer }))
}

const closeReasonOf = (r: Refused['reason']): CloseReason =>
  r === 'device_unknown' ? 'device_deleted' : r === 'device_disabled' ? 'device_disabled' : 'device_changed'

export async function startRevocation (deps: RevocationDeps): Promise<Revocation> {
  const now = deps.now ?? Date.now
  let trustedNames = new Set<string>()
  let generation = 0
  // The trust refresh under way (or the last one): a single-connection check waits for it.
  let refreshing: Promise<void> = Promise.resolve()

  const untrusted = (e: LiveEntry): boolean => e.identity.caName !== undefined && !trustedNames.has(e.identity.caName)

  function refreshTrust (): Promise<void> {
    const work = (async () => {
      const trusted = await loadTrusted(deps.registry, now())
      deps.setTrusted(trusted)
      trustedNames = new Set(trusted.map((c) => c.name))
      deps.live.closeWhere(untrusted, 'ca_removed', 'the CA this device chained to was removed, replaced or is no longer verified')
    })()
    refreshing = work.catch(() => undefined)
    return work
  }

  /** The device as the registry has it now, for one of its connections. */
  async function deviceRefusal (e: LiveEntry): Promise<Refused | undefined> {
    const id = e.identity.deviceId
    const checked = checkDevice(await deps.registry.getDevice(id), id, { thumbprint: e.identity.thumbprint, authType: e.identity.authType })
    return checked.ok ? undefined : checked
  }

  async function recheck (entries: readonly LiveEntry[]): Promise<void> {
    await deps.certificates?.recheck(entries)
    const ids = [...new Set(entries.map((e) => e.identity.deviceId))]
    for (const [i, id] of ids.entries()) {
      // A bulk change rechecks every live device: yield now and then so the loop keeps serving.
      if (i % 256 === 255) await new Promise((resolve) => setImmediate(resolve))
      const device = await deps.registry.getDevice(id)
      for (const e of deps.live.byDevice(id)) {
        const refusal = checkDevice(device, id, { thumbprint: e.identity.thumbprint, authType: e.identity.authType })
        if (!refusal.ok) e.close(closeReasonOf(refusal.reason), refusal.detail)
      }
    }
  }

  const onChange = (change: RegistryChange): void => {
    generation++
    // A group governs only devices not yet registered: nothing live depends on it (the
    // generation still moves, so a refusal decided across the change is not remembered).
    if (change.kind === 'enrollmentGroup') return
    // 'bulk' means anything may have changed (an import, or a PostgreSQL reconnect after
    // changes went unheard): reload the trusted CAs and recheck every live device.
    // A removed CA takes its CRL with it: CA and bulk changes reload revocation too.
    if (change.kind !== 'device') deps.certificates?.refresh().catch(deps.onError)
    if (change.kind === 'revocation') return
    const work = change.kind === 'ca'
      ? refreshTrust()
      : change.kind === 'device' ? recheck(deps.live.byDevice(change.deviceId)) : Promise.all([refreshTrust(), recheck(deps.live.all())])
    work.catch(deps.onError)
  }

  await Promise.all([refreshTrust(), deps.certificates?.refresh()])
  const stop = deps.registry.onChange(onChange)
  return {
    generation: () => generation,
    stillAllowed: async (e) => {
      // A refresh may start while we wait for one: wait until none is newer than what we saw.
      for (let seen = refreshing; ; seen = refreshing) {
        await seen
        if (seen === refreshing) break
      }
      if (untrusted(e)) return { ok: false, reason: 'chain_untrusted', detail: 'the CA this device chained to was removed, replaced or is no longer verified while the connection was being decided', deviceId: e.identity.deviceId }
      const revoked = await deps.certificates?.revoked(e.identity)
      if (revoked !== undefined) return { ok: false, reason: 'cert_revoked', detail: revoked, deviceId: e.identity.deviceId }
      return await deviceRefusal(e)
    },
    stop
  }
}
