/** The bytes a kernel driver writes on stdout and stderr once a cell is over. */
export function cellSentinel(cellId: string): Buffer {
  return Buffer.from(`\0hutch-cell-end:${cellId}\0`, 'latin1')
}

/** Output that comes while no cell runs is kept for the next one, up to this many bytes. */
const maxOrphanBytes = 64 * 1024

/**
 * One of a kernel's output streams, cut into cells by the sentinel the driver writes after each
 * cell: what comes before it is the cell's (its subprocesses' output included), what comes after
 * belongs to the next cell. A partial sentinel at the end of a chunk is held back until the next
 * chunk says whether it is one.
 */
export class CellOutput {
  #cell: { sentinel: Buffer; deliver: (chunk: Buffer) => void; ended: () => void } | undefined
  #held = Buffer.alloc(0)
  #orphans: Buffer[] = []
  #orphanBytes = 0

  /** Starts a cell: output goes to `deliver` until its sentinel, then `ended` is called. */
  begin(cellId: string, deliver: (chunk: Buffer) => void, ended: () => void): void {
    this.#cell = { sentinel: cellSentinel(cellId), deliver, ended }
    const orphans = Buffer.concat(this.#orphans)
    this.#orphans = []
    this.#orphanBytes = 0
    if (orphans.length > 0) this.push(orphans)
  }

  /** Stops delivering to the cell (it ended without its sentinel, or was abandoned). */
  end(): void {
    if (this.#cell !== undefined && this.#held.length > 0) this.#cell.deliver(this.#held)
    this.#held = Buffer.alloc(0)
    this.#cell = undefined
  }

  push(chunk: Buffer): void {
    const cell = this.#cell
    if (cell === undefined) {
      this.#keepOrphan(chunk)
      return
    }
    const data = this.#held.length === 0 ? chunk : Buffer.concat([this.#held, chunk])
    this.#held = Buffer.alloc(0)
    const at = data.indexOf(cell.sentinel)
    if (at !== -1) {
      if (at > 0) cell.deliver(data.subarray(0, at))
      this.#cell = undefined
      cell.ended()
      const rest = data.subarray(at + cell.sentinel.length)
      if (rest.length > 0) this.#keepOrphan(rest)
      return
    }
    const keep = partialSuffix(data, cell.sentinel)
    if (data.length - keep > 0) cell.deliver(data.subarray(0, data.length - keep))
    this.#held = Buffer.from(data.subarray(data.length - keep))
  }

  #keepOrphan(chunk: Buffer): void {
    const room = maxOrphanBytes - this.#orphanBytes
    if (room <= 0) return
    const kept = chunk.subarray(0, room)
    this.#orphans.push(Buffer.from(kept))
    this.#orphanBytes += kept.length
  }
}

/** Length of the longest suffix of `data` that is a proper prefix of `marker`. */
function partialSuffix(data: Buffer, marker: Buffer): number {
  const longest = Math.min(data.length, marker.length - 1)
  for (let length = longest; length > 0; length--) {
    if (data.subarray(data.length - length).equals(marker.subarray(0, length))) return length
  }
  return 0
}
