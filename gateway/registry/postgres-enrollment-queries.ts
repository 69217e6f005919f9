// The PostgreSQL registry's enrollment group queries (the devices a group registered are in
// postgres-device-queries.ts).
import type { Registry } from './types.js'
import { toGroup, type GroupRow } from './enrollment-rows.js'
import { checkMatch, newEtag, nowIso, one, touched, type PostgresAccess } from './postgres-access.js'

export type EnrollmentGroupQueries = Pick<Registry, 'getEnrollmentGroup' | 'listEnrollmentGroups' | 'putEnrollmentGroup' | 'deleteEnrollmentGroup'>

const UPSERT_GROUP = 'INSERT INTO enrollment_groups VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (enrollment_group_id) DO UPDATE SET ' +
  'primary_ca = excluded.primary_ca, secondary_ca = excluded.secondary_ca, provisioning_status = excluded.provisioning_status, ' +
  'device_id_pattern = excluded.device_id_pattern, initial_status = excluded.initial_status, etag = excluded.etag, updated_at = excluded.updated_at RETURNING *'

export function enrollmentGroupQueries ({ read, tx }: PostgresAccess): EnrollmentGroupQueries {
  return {
    getEnrollmentGroup: async (id) => {
      const [r] = await read<GroupRow>('SELECT * FROM enrollment_groups WHERE enrollment_group_id = $1', [id])
      return r === undefined ? undefined : toGroup(r)
    },
    listEnrollmentGroups: async () => (await read<GroupRow>('SELECT * FROM enrollment_groups ORDER BY enrollment_group_id')).map(toGroup),
    putEnrollmentGroup: async (g, ifMatch) => await tx(async (c) => {
      const existing = await one<GroupRow>(c, 'SELECT * FROM enrollment_groups WHERE enrollment_group_id = $1 FOR UPDATE', [g.enrollmentGroupId])
      checkMatch(existing, ifMatch)
      const row = await one<GroupRow>(c, UPSERT_GROUP,
        [g.enrollmentGroupId, g.primaryCa, g.secondaryCa, g.provisioningStatus, g.deviceIdPattern, g.initialStatus, newEtag(), nowIso()])
      return {
        result: { record: toGroup(row as GroupRow), created: existing === undefined },
        changes: [{ kind: 'enrollmentGroup', enrollmentGroupId: g.enrollmentGroupId }]
      }
    }),
    deleteEnrollmentGroup: async (id, ifMatch) => await tx(async (c) => {
      checkMatch(await one<GroupRow>(c, 'SELECT * FROM enrollment_groups WHERE enrollment_group_id = $1 FOR UPDATE', [id]), ifMatch)
      const deleted = await touched(c, 'DELETE FROM enrollment_groups WHERE enrollment_group_id = $1', [id])
      return { result: deleted, changes: deleted ? [{ kind: 'enrollmentGroup', enrollmentGroupId: id }] : [] }
    })
  }
}
