// After the CONNECT certgate checked, the device's MQTT stream is framed (fixed header and
// remaining length only; bodies are skipped, not parsed or copied) so a second CONNECT, which
// could claim another identity, never reaches the broker: [MQTT-3.1.0-2] it is a protocol
// violation, and the device is disconnected (MQTT 5: DISCONNECT 0x82 "Protocol Error" first).
import type { StreamGuard } from './forwarder.js'

const DISCONNECT_PROTOCOL_ERROR = Buffer.from([0xe0, 0x02, 0x82, 0x00])

const PACKET_NAMES = ['reserved type 0', 'CONNECT', 'CONNACK', 'PUBLISH', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP', 'SUBSCRIBE', 'SUBACK',
  'UNSUBSCRIBE', 'UNSUBACK', 'PINGREQ', 'PINGRESP', 'DISCONNECT', 'AUTH']

/** A guard for one connection; `protocolVersion` is the CONNECT's (4 = 3.1.1, 5 = 5.0). */
export function mqttStreamGuard (protocolVersion: number): StreamGuard {
  let skip = 0 // body bytes of the current packet still to pass
  let header: number[] = [] // a fixed header split across chunks
  const violation = (detail: string, at: number): ReturnType<StreamGuard> =>
    protocolVersion === 5 ? { detail, at, farewell: DISCONNECT_PROTOCOL_ERROR } : { detail, at }
  return (chunk) => {
    let i = 0
    while (i < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - i)
        skip -= n
        i += n
        continue
      }
      const byte = chunk[i++] as number
      header.push(byte)
      if (header.length === 1) {
        const type = byte >> 4
        // Only a client's packets may come from a device; AUTH only in MQTT 5.
        if (type === 1 || type === 0 || type === 2 || type === 9 || type === 11 || type === 13 || (type === 15 && protocolVersion !== 5)) {
          return violation(type === 1 ? 'a second CONNECT on the same connection' : `the device sent a ${PACKET_NAMES[type] ?? type} packet, which only a server may send`, i - 1)
        }
        continue
      }
      if ((byte & 0x80) === 0) {
        let length = 0
        for (let k = 1; k < header.length; k++) length += ((header[k] as number) & 0x7f) * 128 ** (k - 1)
        skip = length
        header = []
      } else if (header.length === 5) {
        return violation('malformed remaining length (more than 4 bytes)', Math.max(0, i - 5))
      }
    }
    return undefined
  }
}
