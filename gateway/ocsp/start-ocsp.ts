// Starts OCSP checking for a gateway: every responder exchange is counted and logged (a failure at
// warn, with the responder and why; answers at debug). Closing and refusing is the checker's.
import type { Logger } from 'pino'
import type { LiveConnections } from '../live/live-connections.js'
import type { Metrics } from '../metrics.js'
import type { Registry } from '../registry/types.js'
import { createOcspChecker, type OcspChecker, type OcspTiming } from './ocsp-checker.js'

export function startOcspFor (registry: Registry, live: LiveConnections, timing: Partial<OcspTiming> | undefined, metrics: Metrics, log: Logger): OcspChecker {
  return createOcspChecker({
    registry,
    live,
    ...(timing === undefined ? {} : { timing }),
    onExchange: (e) => {
      metrics.ocspExchanged(e.ca, e.status, e.seconds, e.failure?.reason)
      const fields = { ca: e.ca, responder: e.responder, status: e.status, deviceId: e.deviceId, ms: Math.round(e.seconds * 1000) }
      if (e.failure !== undefined) log.warn({ event: 'ocsp_failed', ...fields, reason: e.failure.reason, detail: e.failure.detail }, 'no usable OCSP answer from this responder')
      else log.debug({ event: 'ocsp_answer', ...fields }, 'OCSP answer')
    },
    onHeld: (ca, deviceId, status) => { log.debug({ event: 'ocsp_held', ca, deviceId, status }, 'OCSP answer already held: not asked again') },
    onError: (err) => { log.error({ err }, 'OCSP checking failed') }
  })
}
