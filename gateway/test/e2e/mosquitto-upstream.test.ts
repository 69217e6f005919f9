// What this proves: certgate in front of a real Mosquitto broker (Debian's package, started by
// the test) passes authenticated devices' MQTT 3.1.1 and 5.0 sessions through in `mqtt` mode and
// as a plain byte pump in `tcp` mode; the broker sees exactly the devices certgate let in
// (its log names their client ids), and never a refused one.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { issue, issueHierarchy, type Issued } from '../../pki/issue.js'
import { startHarness, type Harness } from '../support/harness.js'
import { connectDevice, nextMessage } from '../support/device.js'
import { startMosquitto, type Mosquitto } from '../support/mosquitto.js'
import { sha256Hex } from '../../../workers/validate-chain.js'

let broker: Mosquitto
let pki: { root: Issued, int1: Issued, int2: Issued }

before(async () => {
  broker = await startMosquitto()
  pki = await issueHierarchy()
})
after(async () => { await broker.stop() })

async function gatewayFor (protocol: 'mqtt' | 'tcp'): Promise<Harness> {
  const h = await startHarness({ CERTGATE_UPSTREAM: `127.0.0.1:${broker.port}`, CERTGATE_PROTOCOL: protocol })
  await h.registerCa('root', pki.root)
  return h
}

for (const protocol of ['mqtt', 'tcp'] as const) {
  test(`${protocol} mode: CA-signed (MQTT 5 and 3.1.1) and self-signed devices talk through Mosquitto`, async () => {
    const h = await gatewayFor(protocol)
    try {
      const pubId = `${protocol}-pub`
      const subId = `${protocol}-sub`
      const selfId = `${protocol}-self`
      await h.addDevice(pubId)
      await h.addDevice(subId)
      const selfCert = await issue({ cn: selfId })
      await h.addDevice(selfId, { authType: 'selfSigned', primaryThumbprint: sha256Hex(selfCert.der), secondaryThumbprint: null })
      const port = h.gw.device.port
      const pub = await connectDevice({ port, serverCa: h.serverCa, leaf: await issue({ cn: pubId, issuer: pki.int2 }), chain: [pki.int2, pki.int1], protocolVersion: 5 })
      const sub = await connectDevice({ port, serverCa: h.serverCa, leaf: await issue({ cn: subId, issuer: pki.int2 }), chain: [pki.int1, pki.int2], protocolVersion: 4 })
      const self = await connectDevice({ port, serverCa: h.serverCa, leaf: selfCert, protocolVersion: 5 })
      const topic = `t/${protocol}`
      await sub.subscribeAsync(topic, { qos: 1 })
      const first = nextMessage(sub, topic)
      await pub.publishAsync(topic, 'from-pub', { qos: 1 })
      assert.equal(await first, 'from-pub')
      const second = nextMessage(sub, topic)
      await self.publishAsync(topic, 'from-self', { qos: 1 })
      assert.equal(await second, 'from-self')
      await Promise.all([pub.endAsync(), sub.endAsync(), self.endAsync()])

      const refusedId = `${protocol}-refused`
      await assert.rejects(connectDevice({ port, serverCa: h.serverCa, leaf: await issue({ cn: refusedId, issuer: pki.int2 }), chain: [pki.int2, pki.int1] }))
      await h.waitForLog((l) => l.event === 'refused' && l.deviceId === refusedId)
      for (const id of [pubId, subId, selfId]) assert.match(broker.log(), new RegExp(`New client connected .* as ${id}`))
      assert.doesNotMatch(broker.log(), new RegExp(refusedId))
    } finally {
      await h.close()
    }
  })
}
