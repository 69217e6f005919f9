// Applies registry changes to what is running: a new trust snapshot for the validator pool when
// CAs change, and closing the live connections a change revokes (device disabled, deleted or
// re-keyed; CA removed or replaced). Runs on every change event, so revocation takes effect at once.
// Change events come from this process's registry, or — with PostgreSQL or several processes —
// from every gateway sharing the registry, so revocation is fleet-wide.
import { checkDevice } from '../auth/authenticate.js'
import type { LiveConnections, LiveEntry } from './live-connections.js'
import type { Registry, RegistryChange } from '../registry/types.js'
import type { TrustedCa } from '../validation/validator-pool.js'
import type { CloseReason } from '../reasons.js'

export interface RevocationDeps {
  readonly registry: Registry
  readonly live: LiveConnections
  readonly setTrusted: (cas: readonly TrustedCa[]) => void
  readonly onError: (err: Error) => void
  readonly now?: () => number
}

/** Loads the verified, unexpired CAs: the only anchors devices may chain to. */
export async function loadTrusted (registry: Registry, now: number): Promise<TrustedCa[]> {
  const cas = await registry.listCas()
  return cas.filter((c) => c.isVerified && Date.parse(c.notAfter) > now).map((c) => ({ name: c.name, der: c.certificateDer }))
}

export async function startRevocation (deps: RevocationDeps): Promise<() => void> {
  const now = deps.now ?? Date.now
  let trustedNames = new Set<string>()

  async function refreshTrust (): Promise<void> {
    const trusted = await loadTrusted(deps.registry, now())
    deps.setTrusted(trusted)
    trustedNames = new Set(trusted.map((c) => c.name))
    deps.live.closeWhere((e) => e.identity.caName !== undefined && !trustedNames.has(e.identity.caName), 'ca_removed',
      'the CA this device chained to was removed, replaced or is no longer verified')
  }

  async function recheck (entries: readonly LiveEntry[]): Promise<void> {
    const ids = [...new Set(entries.map((e) => e.identity.deviceId))]
    for (const [i, id] of ids.entries()) {
      // A bulk change rechecks every live device: yield now and then so the loop keeps serving.
      if (i % 256 === 255) await new Promise((resolve) => setImmediate(resolve))
      const device = await deps.registry.getDevice(id)
      for (const e of deps.live.byDevice(id)) {
        const refusal = checkDevice(device, id, { thumbprint: e.identity.thumbprint, authType: e.identity.authType })
        if (refusal.ok) continue
        const reason: CloseReason = refusal.reason === 'device_unknown' ? 'device_deleted' : refusal.reason === 'device_disabled' ? 'device_disabled' : 'device_changed'
        e.close(reason, refusal.detail)
      }
    }
  }

  const onChange = (change: RegistryChange): void => {
    // A group governs only devices not yet registered: nothing live depends on it.
    if (change.kind === 'enrollmentGroup') return
    // 'bulk' means anything may have changed (an import, or a PostgreSQL reconnect after
    // changes went unheard): reload the trusted CAs and recheck every live device.
    const work = change.kind === 'ca'
      ? refreshTrust()
      : change.kind === 'device' ? recheck(deps.live.byDevice(change.deviceId)) : Promise.all([refreshTrust(), recheck(deps.live.all())])
    work.catch(deps.onError)
  }

  await refreshTrust()
  return deps.registry.onChange(onChange)
}
