// The reader behind `npm run load:perf`: perf script's text as it comes (thread ids padded or not,
// symbols with offsets, JS frames with spaces), and the per-connection totals it prints.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { frameTimes, parsePerfScript } from '../support/perf-script.js'

// Two threads; the main one (4242) has three samples, one of them worth twice the others (its
// period, ns). Shaped like `perf script -F tid,period,ip,sym,dso`
// after `perf inject --jit`, JS frames marked as Node 22 and 24 mark them.
const TEXT = [
  ' 4242    500000 ',
  '\t          108cae epoll_pwait+0x4e (/usr/lib/x86_64-linux-gnu/libc.so.6)',
  '\t         1f7e0c9 uv__io_poll (/usr/bin/node)',
  '',
  '4242 1000000',
  '\t             318 JS:*verifySignature file:///x/dist/workers/validate-chain.js:247:26 (/x/jitted-4242-10.so)',
  '\t             49b JS:*handleConnection file:///x/dist/gateway/connection.js:3:39 (/x/jitted-4242-11.so)',
  '\t         1f7e0c9 uv__io_poll (/usr/bin/node)',
  '',
  '17/4242   500000 ',
  '\t             2c0 JS:~readPeerChain file:///x/dist/gateway/tls/peer-chain.js:2:30 (/x/jitted-4242-12.so)',
  '\t             318 JS:+\'handleConnection file:///x/dist/gateway/connection.js:3:39 (/x/jitted-4242-13.so)',
  '\t         1f7e0c9 uv__io_poll (/usr/bin/node)',
  '',
  ' 4250    500000 ',
  '\t          2a0c3b v8::internal::Scavenger::ScavengeObject<v8::internal::FullHeapObjectSlot> (/usr/bin/node)',
  ''
].join('\n')

test('perf script text: samples by thread with their periods, innermost frame first, offsets, objects and JS tier marks dropped, JS names whole', () => {
  const threads = parsePerfScript(TEXT)
  assert.deepEqual([...threads.keys()], ['4242', '4250'])
  const main = threads.get('4242') ?? []
  assert.equal(main.length, 3)
  assert.deepEqual(main[0], { frames: ['epoll_pwait', 'uv__io_poll'], ns: 500_000 })
  assert.deepEqual(main[1], { frames: ['JS:verifySignature file:///x/dist/workers/validate-chain.js:247:26', 'JS:handleConnection file:///x/dist/gateway/connection.js:3:39', 'uv__io_poll'], ns: 1_000_000 })
})

test('totals per connection, each sample by its period: inclusive counts a frame once per sample, self the innermost; --under charges the frame beneath the match', () => {
  const main = parsePerfScript(TEXT).get('4242') ?? []
  // 10 connections: the samples stand for 50, 100 and 50 µs per connection.
  const all = frameTimes(main, 10)
  assert.equal(all.total, 200)
  assert.equal(all.inclusive.get('uv__io_poll'), 200)
  assert.equal(all.inclusive.get('JS:handleConnection file:///x/dist/gateway/connection.js:3:39'), 150)
  assert.equal(all.self.get('epoll_pwait'), 50)
  const under = frameTimes(main, 10, /handleConnection/)
  assert.equal(under.total, 150)
  assert.deepEqual([...under.inclusive.entries()].sort(), [
    ['JS:readPeerChain file:///x/dist/gateway/tls/peer-chain.js:2:30', 50],
    ['JS:verifySignature file:///x/dist/workers/validate-chain.js:247:26', 100]
  ])
  assert.equal(under.self.get('epoll_pwait'), undefined)
})
