// gateway/metrics.ts keeps each authenticated connection's statistics as plain numbers and hands
// them to prom-client when the metrics are read. This proves a scrape never reads them behind:
// every recorder's effect is in the very next scrape, the counts and sums are exact past the
// batch size (OBSERVATIONS_HELD, when a batch is handed over unasked), a second scrape adds
// nothing twice, and a value prom-client would reject is dropped without spoiling the scrape.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createMetrics, OBSERVATIONS_HELD, type Metrics } from '../metrics.js'

const fleet = async (): Promise<{ cas: [], devices: { enabled: number, disabled: number } }> => ({ cas: [], devices: { enabled: 0, disabled: 0 } })

/** The value of one sample line of a scrape (name with its labels, exactly as exposed). */
async function sample (metrics: Metrics, series: string): Promise<number> {
  const line = (await metrics.metricsText()).split('\n').find((l) => l.startsWith(series + ' '))
  assert.ok(line !== undefined, `no sample ${series}`)
  return Number(line.slice(series.length + 1))
}

test('what a connection records is in the very next scrape', async () => {
  const m = createMetrics(['device'], fleet)
  m.connectionAccepted('device')
  m.validated({ micros: 250, cacheHits: 2, cacheMisses: 1, cacheSize: 7 })
  m.upstreamConnected('device', 0.0004)
  m.authenticated('device', 0.0015)
  m.certificateLifetime(40 * 86_400)
  m.forwarded('device', 10, 20)
  const expected: Array<[string, number]> = [
    ['certgate_connections_accepted_total{listener="device"}', 1],
    ['certgate_auth_total{listener="device",result="authenticated",reason="none"}', 1],
    ['certgate_auth_duration_seconds_count{listener="device",result="authenticated"}', 1],
    ['certgate_auth_duration_seconds_sum{listener="device",result="authenticated"}', 0.0015],
    ['certgate_auth_duration_seconds_bucket{le="0.002",listener="device",result="authenticated"}', 1],
    ['certgate_auth_duration_seconds_bucket{le="0.001",listener="device",result="authenticated"}', 0],
    ['certgate_validation_duration_seconds_sum', 0.00025],
    ['certgate_intermediate_cache_hits_total', 2],
    ['certgate_intermediate_cache_misses_total', 1],
    ['certgate_intermediate_cache_entries', 7],
    ['certgate_upstream_connect_duration_seconds_count{listener="device"}', 1],
    ['certgate_device_certificate_remaining_seconds_bucket{le="7776000"}', 1],
    ['certgate_device_certificate_remaining_seconds_bucket{le="2592000"}', 0],
    ['certgate_forwarded_bytes_total{listener="device",direction="from_device"}', 10],
    ['certgate_forwarded_bytes_total{listener="device",direction="to_device"}', 20]
  ]
  for (const [series, value] of expected) assert.equal(await sample(m, series), value, series)
})

test('past the batch size the counts and sums are exact, and a second scrape adds nothing', async () => {
  const m = createMetrics(['device'], fleet)
  const n = OBSERVATIONS_HELD * 2 + 500
  let sum = 0
  let fast = 0
  for (let i = 0; i < n; i++) {
    const seconds = (i % 40) / 10_000 // 0 to 3.9 ms
    sum += seconds
    if (seconds <= 0.001) fast++
    m.authenticated('device', seconds)
    m.connectionAccepted('device')
  }
  for (let scrape = 0; scrape < 2; scrape++) {
    assert.equal(await sample(m, 'certgate_auth_total{listener="device",result="authenticated",reason="none"}'), n)
    assert.equal(await sample(m, 'certgate_connections_accepted_total{listener="device"}'), n)
    assert.equal(await sample(m, 'certgate_auth_duration_seconds_count{listener="device",result="authenticated"}'), n)
    assert.equal(await sample(m, 'certgate_auth_duration_seconds_bucket{le="0.001",listener="device",result="authenticated"}'), fast)
    const got = await sample(m, 'certgate_auth_duration_seconds_sum{listener="device",result="authenticated"}')
    assert.ok(Math.abs(got - sum) < 1e-9, `sum ${got} vs ${sum}`)
  }
})

test('a value prom-client would reject is dropped; the scrape and the other values stand', async () => {
  const m = createMetrics(['device'], fleet)
  m.authenticated('device', Number.NaN)
  m.certificateLifetime(Number.POSITIVE_INFINITY)
  m.authenticated('device', 0.002)
  assert.equal(await sample(m, 'certgate_auth_duration_seconds_count{listener="device",result="authenticated"}'), 1)
  assert.equal(await sample(m, 'certgate_auth_total{listener="device",result="authenticated",reason="none"}'), 2)
  assert.equal(await sample(m, 'certgate_device_certificate_remaining_seconds_count'), 0)
})
