// Piscina worker entry: validates device chains against this thread's trust snapshot, one task
// or a batch of them per message. Holds the snapshot (parsed anchors and the revocation look-ups,
// keyed by the trust epoch)
// and this thread's cache of verified intermediates; a new epoch empties the cache, so nothing
// outlives a trust change.
import { workerData } from 'node:worker_threads'
import { createExpiringLru } from '../cache/expiring-lru.js'
import { buildAnchorSet, validatePath, type AnchorSet, type IntermediateCache } from './validate-chain.js'
import { OID } from './certificate.js'
import { EMPTY_REVOCATION, buildRevocationSet, withLeafDenial, type RevocationSet } from './revocation.js'
import type { DoneReply, ValidationBatch, ValidationBatchReply, ValidationItem, ValidationReply, ValidationTask, WorkerConfig } from './types.js'

const { cacheEntries } = workerData as WorkerConfig

let epoch = -1
let anchors: AnchorSet = buildAnchorSet([]).set
let revocation: RevocationSet = buildRevocationSet(EMPTY_REVOCATION)
// 0 entries turns the cache off (benchmarks measure the cold path that way).
const cache: IntermediateCache | undefined = cacheEntries > 0 ? createExpiringLru({ maxEntries: cacheEntries }) : undefined

function one (item: ValidationItem, at: number): DoneReply {
  const started = performance.now()
  const outcome = withLeafDenial(validatePath(item.leaf, item.intermediates, anchors, { at, requiredEku: OID.clientAuth, cache, revocation }), revocation)
  const { hits, misses } = cache?.takeStats() ?? { hits: 0, misses: 0 }
  return { kind: 'done', outcome, cacheHits: hits, cacheMisses: misses, cacheSize: cache?.size ?? 0, micros: (performance.now() - started) * 1000 }
}

export default function validate (task: ValidationTask | ValidationBatch): ValidationReply | ValidationBatchReply {
  if (task.anchors !== undefined) {
    anchors = buildAnchorSet(task.anchors).set
    revocation = buildRevocationSet(task.revocation ?? EMPTY_REVOCATION)
    epoch = task.epoch
    cache?.clear()
  } else if (task.epoch !== epoch) {
    return { kind: 'stale', workerEpoch: epoch }
  }
  if ('items' in task) return { kind: 'batch', replies: task.items.map((item) => one(item, task.at)) }
  return one(task, task.at)
}
