// Piscina worker entry: validates one device chain against this thread's trust snapshot.
// Holds the snapshot (parsed anchors, keyed by the trust epoch) and this thread's cache of
// verified intermediates; a new epoch empties the cache, so nothing outlives a trust change.
import { createExpiringLru } from '../cache/expiring-lru.js'
import { buildAnchorSet, validatePath, type AnchorSet, type IntermediateCache } from './validate-chain.js'
import { OID } from './certificate.js'
import type { ValidationReply, ValidationTask } from './types.js'

const CACHE_ENTRIES = 10_000

let epoch = -1
let anchors: AnchorSet = buildAnchorSet([]).set
const cache: IntermediateCache = createExpiringLru({ maxEntries: CACHE_ENTRIES })

export default function validate (task: ValidationTask): ValidationReply {
  if (task.anchors !== undefined) {
    anchors = buildAnchorSet(task.anchors).set
    epoch = task.epoch
    cache.clear()
  } else if (task.epoch !== epoch) {
    return { kind: 'stale', workerEpoch: epoch }
  }
  const started = process.hrtime.bigint()
  const outcome = validatePath(task.leaf, task.intermediates, anchors, { at: task.at, requiredEku: OID.clientAuth, cache })
  const { hits, misses } = cache.takeStats()
  return { kind: 'done', outcome, cacheHits: hits, cacheMisses: misses, cacheSize: cache.size, micros: Number(process.hrtime.bigint() - started) / 1000 }
}
