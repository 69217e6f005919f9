// The PostgreSQL registry's CA queries: registration, and proof of possession through a
// single-use verification code.
import type { Registry } from './types.js'
import { toCa, type CaRow } from './postgres-schema.js'
import { settingsJson } from './settings-column.js'
import { checkMatch, newEtag, nowIso, one, touched, type PostgresAccess } from './postgres-access.js'

export type CaQueries = Pick<Registry, 'getCa' | 'listCas' | 'putCa' | 'setVerificationCode' | 'consumeVerificationCode' | 'deleteCa'>

const INSERT_CA = 'INSERT INTO cas (name, certificate, subject, thumbprint, not_after, is_verified, etag, created_at, updated_at, revocation_settings) ' +
  'VALUES ($1, $2, $3, $4, $5, false, $6, $7, $7, $8) RETURNING *'
const REPLACE_CA = 'UPDATE cas SET certificate = $2, subject = $3, thumbprint = $4, not_after = $5, is_verified = false, etag = $6, updated_at = $7, ' +
  'revocation_settings = $8 WHERE name = $1 RETURNING *'
const SET_SETTINGS = 'UPDATE cas SET revocation_settings = $2, etag = $3, updated_at = $4 WHERE name = $1 RETURNING *'
const SET_CODE = 'UPDATE cas SET verification_code = $2, verification_code_expiry = $3, verification_code_thumbprint = thumbprint, ' +
  'etag = $4, updated_at = $5 WHERE name = $1 RETURNING *'
const CLEAR_CODE = 'UPDATE cas SET verification_code = NULL, verification_code_expiry = NULL, verification_code_thumbprint = NULL, ' +
  'etag = $2, updated_at = $3 WHERE name = $1'
const VERIFY = 'UPDATE cas SET is_verified = true, verification_code = NULL, verification_code_expiry = NULL, verification_code_thumbprint = NULL, ' +
  'etag = $2, updated_at = $3 WHERE name = $1 RETURNING *'

type Consumed = Awaited<ReturnType<Registry['consumeVerificationCode']>>

export function caQueries ({ read, tx }: PostgresAccess): CaQueries {
  return {
    getCa: async (name) => { const [r] = await read<CaRow>('SELECT * FROM cas WHERE name = $1', [name]); return r === undefined ? undefined : toCa(r) },
    listCas: async () => (await read<CaRow>('SELECT * FROM cas ORDER BY name')).map(toCa),
    putCa: async (ca, ifMatch) => await tx(async (c) => {
      const existing = await one<CaRow>(c, 'SELECT * FROM cas WHERE name = $1 FOR UPDATE', [ca.name])
      checkMatch(existing, ifMatch)
      const settings = ca.settings === undefined ? null : settingsJson(ca.settings)
      if (existing?.thumbprint === ca.thumbprint) {
        if (existing.revocation_settings === settings) return { result: { record: toCa(existing), created: false }, changes: [] }
        // The same certificate with other settings: only the settings change (it stays verified).
        const updated = await one<CaRow>(c, SET_SETTINGS, [ca.name, settings, newEtag(), nowIso()])
        return { result: { record: toCa(updated as CaRow), created: false }, changes: [{ kind: 'ca', name: ca.name }] }
      }
      const p = [ca.name, Buffer.from(ca.certificateDer), ca.subject, ca.thumbprint, ca.notAfter, newEtag(), nowIso(), settings]
      const row = await one<CaRow>(c, existing === undefined ? INSERT_CA : REPLACE_CA, p)
      return { result: { record: toCa(row as CaRow), created: existing === undefined }, changes: [{ kind: 'ca', name: ca.name }] }
    }),
    setVerificationCode: async (name, code, expiry) => {
      const [r] = await read<CaRow>(SET_CODE, [name, code, expiry, newEtag(), nowIso()])
      return r === undefined ? undefined : toCa(r)
    },
    consumeVerificationCode: async (name, code, thumbprint, now) => await tx<Consumed>(async (c) => {
      const row = await one<CaRow>(c, 'SELECT * FROM cas WHERE name = $1 FOR UPDATE', [name])
      if (row === undefined) return { result: undefined, changes: [] }
      if (row.verification_code === null) return { result: 'no_code' as const, changes: [] }
      if (row.verification_code !== code) return { result: 'wrong_code' as const, changes: [] }
      // Single use: a matching code is spent whatever happens next.
      const clear = [name, newEtag(), nowIso()]
      if (row.verification_code_thumbprint !== row.thumbprint || row.thumbprint !== thumbprint) {
        await c.query(CLEAR_CODE, clear)
        return { result: 'certificate_replaced' as const, changes: [] }
      }
      if ((row.verification_code_expiry ?? '') <= now) { await c.query(CLEAR_CODE, clear); return { result: 'expired_code' as const, changes: [] } }
      const verified = await one<CaRow>(c, VERIFY, clear)
      return { result: toCa(verified as CaRow), changes: [{ kind: 'ca', name }] }
    }),
    deleteCa: async (name, ifMatch) => await tx(async (c) => {
      checkMatch(await one<CaRow>(c, 'SELECT * FROM cas WHERE name = $1 FOR UPDATE', [name]), ifMatch)
      const deleted = await touched(c, 'DELETE FROM cas WHERE name = $1', [name])
      return { result: deleted, changes: deleted ? [{ kind: 'ca', name }] : [] }
    })
  }
}
