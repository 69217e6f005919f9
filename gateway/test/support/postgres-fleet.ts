// A fleet for end-to-end tests: one throwaway PostgreSQL cluster with one database, and gateways
// (in-process harnesses) sharing it as their registry. Each gateway's env names it; its registry
// URL defaults to the database over TCP (an env made from the cluster may name another way in). Started in order and closed in reverse, then the cluster;
// a start that fails closes what had started, so the test file's process can still exit.
import { startHarness, type Harness } from './harness.js'
import { startPostgres, type Postgres } from './postgres.js'

type Env = Record<string, string>
type EnvFor = Env | ((pg: Postgres) => Env | Promise<Env>)

export interface PostgresFleet<K extends string> {
  readonly pg: Postgres
  readonly gateways: Readonly<Record<K, Harness>>
  close: () => Promise<void>
}

export async function startPostgresFleet<K extends string> (database: string, envs: Readonly<Record<K, EnvFor>>): Promise<PostgresFleet<K>> {
  const pg = await startPostgres()
  const started: Harness[] = []
  const close = async (): Promise<void> => {
    for (const h of started.splice(0).reverse()) await h.close()
    await pg.destroy()
  }
  try {
    await pg.createDatabase(database)
    const gateways: Partial<Record<K, Harness>> = {}
    for (const [name, env] of Object.entries(envs) as Array<[K, EnvFor]>) {
      const h = await startHarness({ CERTGATE_REGISTRY_URL: pg.url(database), ...(typeof env === 'function' ? await env(pg) : env) })
      started.push(h)
      gateways[name] = h
    }
    return { pg, gateways: gateways as Record<K, Harness>, close }
  } catch (err) {
    await close()
    throw err
  }
}
