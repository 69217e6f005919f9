// The PostgreSQL registry's revocation queries: the operator's deny-list and the CRLs held per CA.
// Every change is announced as `revocation`, which reloads the validators' revocation snapshot.
import type { Registry } from './types.js'
import { toCrl, toRevocation, type CaRow, type CrlRow, type RevocationRow } from './postgres-schema.js'
import { isOlderCrl } from './crl-order.js'
import { nowIso, one, touched, type PostgresAccess } from './postgres-access.js'

export type RevocationQueries = Pick<Registry, 'listRevocations' | 'putRevocation' | 'deleteRevocation' | 'getCrl' | 'listCrls' | 'putCrl' | 'deleteCrl'>

// xmax = 0 only for a freshly inserted row: tells created from replaced in one statement.
const UPSERT_REVOCATION = 'INSERT INTO revocations VALUES ($1, $2, $3, $3) ON CONFLICT (thumbprint) DO UPDATE SET ' +
  'reason = excluded.reason, updated_at = excluded.updated_at RETURNING *, (xmax = 0) AS inserted'
const UPSERT_CRL = 'INSERT INTO crls (ca_name, ca_thumbprint, crl, issuer, this_update, next_update, crl_number, revoked_count, updated_at, ' +
  'issuer_thumbprint, issuer_certificate) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (ca_name, issuer_thumbprint) DO UPDATE SET ' +
  'ca_thumbprint = excluded.ca_thumbprint, crl = excluded.crl, issuer = excluded.issuer, this_update = excluded.this_update, ' +
  'next_update = excluded.next_update, crl_number = excluded.crl_number, revoked_count = excluded.revoked_count, ' +
  'updated_at = excluded.updated_at, issuer_certificate = excluded.issuer_certificate RETURNING *'

export function revocationQueries ({ read, tx }: PostgresAccess): RevocationQueries {
  return {
    listRevocations: async () => (await read<RevocationRow>('SELECT * FROM revocations ORDER BY thumbprint')).map(toRevocation),
    putRevocation: async (thumbprint, reason) => await tx(async (c) => {
      const row = await one<RevocationRow & { inserted: boolean }>(c, UPSERT_REVOCATION, [thumbprint, reason, nowIso()])
      return { result: { record: toRevocation(row as RevocationRow), created: row?.inserted === true }, changes: [{ kind: 'revocation' }] }
    }),
    deleteRevocation: async (thumbprint) => await tx(async (c) => {
      const deleted = await touched(c, 'DELETE FROM revocations WHERE thumbprint = $1', [thumbprint])
      return { result: deleted, changes: deleted ? [{ kind: 'revocation' }] : [] }
    }),
    getCrl: async (name, issuer) => {
      const [r] = await read<CrlRow>('SELECT * FROM crls WHERE ca_name = $1 AND issuer_thumbprint = $2', [name, issuer ?? ''])
      return r === undefined ? undefined : toCrl(r)
    },
    listCrls: async () => (await read<CrlRow>('SELECT * FROM crls ORDER BY ca_name, issuer_thumbprint')).map(toCrl),
    putCrl: async (crl) => await tx<Awaited<ReturnType<Registry['putCrl']>>>(async (c) => {
      const ca = await one<CaRow>(c, 'SELECT * FROM cas WHERE name = $1 FOR UPDATE', [crl.caName])
      if (ca?.thumbprint !== crl.caThumbprint) return { result: 'ca_changed' as const, changes: [] }
      const issuer = crl.issuerThumbprint ?? ''
      const held = await one<CrlRow>(c, 'SELECT * FROM crls WHERE ca_name = $1 AND issuer_thumbprint = $2 FOR UPDATE', [crl.caName, issuer])
      const older = held !== undefined && held.ca_thumbprint === crl.caThumbprint &&
        isOlderCrl(crl, { crlNumber: held.crl_number, thisUpdate: held.this_update })
      if (older) return { result: 'stale' as const, changes: [] }
      const row = await one<CrlRow>(c, UPSERT_CRL, [
        crl.caName, crl.caThumbprint, Buffer.from(crl.der), crl.issuer, crl.thisUpdate, crl.nextUpdate, crl.crlNumber, crl.revokedCount, nowIso(),
        issuer, crl.issuerCertificateDer === null ? null : Buffer.from(crl.issuerCertificateDer)
      ])
      return { result: toCrl(row as CrlRow), changes: [{ kind: 'revocation' }] }
    }),
    deleteCrl: async (name, issuer) => await tx(async (c) => {
      const deleted = await touched(c, 'DELETE FROM crls WHERE ca_name = $1 AND issuer_thumbprint = $2', [name, issuer ?? ''])
      return { result: deleted, changes: deleted ? [{ kind: 'revocation' }] : [] }
    })
  }
}
