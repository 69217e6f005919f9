// Certificate revocation (deny-list and CRLs) applied to what is running: loads what the registry
// holds, hands the validators a new revocation snapshot, and closes every live connection whose
// path holds a certificate it revokes. Each CRL is parsed once per stored version (a 100,000-entry
// CRL is not re-read on every change). No network I/O: fetching CRLs happens elsewhere and lands
// in the registry like an upload.
import { parseCrl } from '../../workers/crl.js'
import { EMPTY_REVOCATION, buildRevocationSet, revokedPathCert, type RevocationSet } from '../../workers/revocation.js'
import type { RevocationData } from '../../workers/types.js'
import type { LiveConnections, LiveEntry } from './live-connections.js'
import type { CrlRecord, Registry } from '../registry/types.js'
import type { Identity } from '../auth/authenticate.js'
import type { RevocationInForce } from '../metrics.js'

export interface CertificateRevocationDeps {
  readonly registry: Registry
  readonly live: LiveConnections
  readonly setRevocation: (data: RevocationData) => void
  /** A stored CRL that no longer parses (it was checked at upload): it is left out, loudly. */
  readonly onBadCrl: (caName: string, err: Error) => void
  /** A new snapshot is installed (and what it revokes closed). */
  readonly onApplied?: (inForce: RevocationInForce) => void
}

export interface CertificateRevocation {
  /** Reloads from the registry, installs the snapshot, closes what it revokes. Calls run one after another. */
  refresh: () => Promise<void>
  /** Closes those of `entries` that the snapshot (after any refresh under way) revokes. */
  recheck: (entries: readonly LiveEntry[]) => Promise<void>
  /** Why the snapshot (after any refresh under way) revokes a certificate `identity` relies on, if it does. */
  revoked: (identity: Identity) => Promise<string | undefined>
}

type CrlEntry = RevocationData['crls'][number]
type CrlTimes = RevocationInForce['crls'][number]

const crlKey = (c: CrlRecord): string => `${c.caName}\u0000${c.issuerThumbprint ?? ''}`

/** How a refusal's detail names the CRL ("the CRL of <source>"): the CA, or for a delegated issuer, which intermediate under which CA. */
function crlSource (c: CrlRecord): string {
  if (c.issuerThumbprint === null) return `CA "${c.caName}"`
  const cn = /(?:^|, )CN=([^,]*)/.exec(c.issuer)?.[1] ?? c.issuer
  return `intermediate "${cn}" (thumbprint ${c.issuerThumbprint}) under CA "${c.caName}"`
}

export function createCertificateRevocation (deps: CertificateRevocationDeps): CertificateRevocation {
  let set: RevocationSet = buildRevocationSet(EMPTY_REVOCATION)
  const parsed = new Map<string, { readonly version: string, readonly entry: CrlEntry }>()
  let latest: Promise<void> = Promise.resolve()

  let inForce: RevocationInForce = { denied: 0, crls: [] }

  async function load (): Promise<RevocationData> {
    const [denied, crls, cas] = await Promise.all([deps.registry.listRevocations(), deps.registry.listCrls(), deps.registry.listCas()])
    const caThumbprints = new Map(cas.map((c) => [c.name, c.thumbprint]))
    const entries: CrlEntry[] = []
    const times: CrlTimes[] = []
    for (const crl of crls) {
      // A CRL checked against a CA certificate since replaced speaks for a key no longer registered.
      if (caThumbprints.get(crl.caName) !== crl.caThumbprint) continue
      const key = crlKey(crl)
      const version = `${crl.caThumbprint}/${crl.updatedAt}/${crl.crlNumber ?? ''}/${crl.der.length}`
      let hit = parsed.get(key)
      if (hit?.version !== version) {
        try {
          const c = parseCrl(crl.der)
          hit = { version, entry: { source: crlSource(crl), issuer: c.issuerKey, serials: c.serials } }
          parsed.set(key, hit)
        } catch (err) {
          deps.onBadCrl(crl.caName, err as Error)
          continue
        }
      }
      entries.push(hit.entry)
      times.push({ ca: crl.caName, thisUpdate: Date.parse(crl.thisUpdate),
        nextUpdate: crl.nextUpdate === null ? undefined : Date.parse(crl.nextUpdate), revoked: crl.revokedCount })
    }
    inForce = { denied: denied.length, crls: times }
    const held = new Set(crls.map(crlKey))
    for (const key of parsed.keys()) if (!held.has(key)) parsed.delete(key)
    return { denied: denied.map((r) => r.thumbprint), crls: entries }
  }

  function closeRevoked (entries: readonly LiveEntry[]): void {
    for (const e of entries) {
      const detail = revokedPathCert(e.identity.path, set)
      if (detail !== undefined) e.close('cert_revoked', detail)
    }
  }

  async function apply (): Promise<void> {
    const data = await load()
    set = buildRevocationSet(data)
    deps.setRevocation(data)
    closeRevoked(deps.live.all())
    deps.onApplied?.(inForce)
  }

  /** Waits until no refresh newer than the one seen is under way. */
  async function settled (): Promise<void> {
    for (let seen = latest; ; seen = latest) {
      await seen.catch(() => undefined)
      if (seen === latest) return
    }
  }

  return {
    refresh: async () => {
      // One after another, so an older load never lands after a newer one.
      latest = latest.catch(() => undefined).then(apply)
      await latest
    },
    recheck: async (entries) => {
      await settled()
      closeRevoked(entries)
    },
    revoked: async (identity) => {
      await settled()
      return revokedPathCert(identity.path, set)
    }
  }
}
