// Piscina worker entry: validates one device chain against this thread's trust snapshot.
// Holds the snapshot (parsed anchors, keyed by the trust epoch) and this thread's cache of
// verified intermediates; a new epoch empties the cache, so nothing outlives a trust change.
import { workerData } from 'node:worker_threads'
import { createExpiringLru } from '../cache/expiring-lru.js'
import { buildAnchorSet, validatePath, type AnchorSet, type IntermediateCache } from './validate-chain.js'
import { OID } from './certificate.js'
import type { ValidationReply, ValidationTask, WorkerConfig } from './types.js'

const { cacheEntries } = workerData as WorkerConfig

let epoch = -1
let anchors: AnchorSet = buildAnchorSet([]).set
// 0 entries turns the cache off (benchmarks measure the cold path that way).
const cache: IntermediateCache | undefined = cacheEntries > 0 ? createExpiringLru({ maxEntries: cacheEntries }) : undefined

export default function validate (task: ValidationTask): ValidationReply {
  if (task.anchors !== undefined) {
    anchors = buildAnchorSet(task.anchors).set
    epoch = task.epoch
    cache?.clear()
  } else if (task.epoch !== epoch) {
    return { kind: 'stale', workerEpoch: epoch }
  }
  const started = process.hrtime.bigint()
  const outcome = validatePath(task.leaf, task.intermediates, anchors, { at: task.at, requiredEku: OID.clientAuth, cache })
  const { hits, misses } = cache?.takeStats() ?? { hits: 0, misses: 0 }
  return { kind: 'done', outcome, cacheHits: hits, cacheMisses: misses, cacheSize: cache?.size ?? 0, micros: Number(process.hrtime.bigint() - started) / 1000 }
}
