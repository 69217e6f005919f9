// Follows the packet framing of an MQTT stream (fixed header and remaining length, MQTT §2.1;
// bodies skipped, never parsed or copied) only to know whether what was passed on so far ends on
// a packet boundary: a DISCONNECT certgate writes to a device must not land inside a packet the
// broker was half way through sending.
export interface PacketBoundary {
  /** Sees every chunk, in order, as it is passed on. */
  feed: (chunk: Buffer) => void
  /** True when everything fed so far is whole packets (and the framing made sense). */
  atBoundary: () => boolean
}

export function mqttPacketBoundary (): PacketBoundary {
  let skip = 0 // body bytes of the current packet still to come
  let header = 0 // bytes of the current fixed header seen so far
  let length = 0
  let lost = false // a remaining length longer than 4 bytes: the framing cannot be followed
  return {
    feed (chunk) {
      let i = 0
      while (i < chunk.length && !lost) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length - i)
          skip -= n
          i += n
          continue
        }
        const byte = chunk[i++] as number
        header++
        if (header === 1) { length = 0; continue }
        length += (byte & 0x7f) * 128 ** (header - 2)
        if ((byte & 0x80) === 0) { skip = length; header = 0 } else if (header === 5) lost = true
      }
    },
    atBoundary: () => !lost && skip === 0 && header === 0
  }
}
