// Bounds how many OCSP exchanges run at once; the rest wait their turn in arrival order.
/** A counting semaphore: at most `n` holders, the rest wait in order. */
export function createSlots (n: number): { take: () => Promise<void>, give: () => void } {
  let free = n
  const waiting: Array<() => void> = []
  return {
    take: async () => {
      if (free > 0) { free--; return }
      await new Promise<void>((resolve) => { waiting.push(resolve) })
    },
    give: () => {
      const next = waiting.shift()
      if (next !== undefined) next()
      else free++
    }
  }
}
