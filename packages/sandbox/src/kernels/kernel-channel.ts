import type { Readable, Writable } from 'node:stream'

/** One event a kernel driver sent: a JSON object, and the raw bytes that followed it, if any. */
export interface DriverEvent {
  fields: Record<string, unknown>
  payload: Buffer | undefined
}

/** Bounds on what a driver may send, so that a hostile cell cannot make the server hold much. */
export interface ChannelBounds {
  /** Longest JSON line, bytes; longer lines are dropped whole. */
  maxLineBytes: number
  /** Largest payload after a line, bytes; a larger one is dropped whole. */
  maxPayloadBytes: number
  /**
   * Whether a line may be followed by a payload (an answer the kernel waits for). Any other
   * line's `payloadBytes` is ignored, so that a cell cannot make the channel swallow the rest.
   */
  acceptsPayload: (fields: Record<string, unknown>) => boolean
}

/**
 * The control pipes of a kernel driver. Commands go out as a header line `<type> <id> <bytes>`
 * and the payload; events come back as JSON lines, each followed by `payloadBytes` raw bytes
 * when it says so. Anything else on the pipe (a cell writing garbage to it) is dropped: a line
 * that is not a JSON object, a line or payload over its bound.
 */
export class KernelChannel {
  readonly #commands: Writable
  readonly #bounds: ChannelBounds
  readonly #onEvent: (event: DriverEvent) => void
  #buffered: Buffer[] = []
  #bufferedBytes = 0
  /** Skipping the rest of an oversized line, or `n` bytes of a payload. */
  #skipLine = false
  #skipPayload = 0
  #pending: { fields: Record<string, unknown>; remaining: number; chunks: Buffer[] } | undefined
  /** How many lines or payloads were dropped. */
  dropped = 0

  constructor(
    commands: Writable,
    events: Readable,
    bounds: ChannelBounds,
    onEvent: (event: DriverEvent) => void,
  ) {
    this.#commands = commands
    this.#bounds = bounds
    this.#onEvent = onEvent
    events.on('data', (chunk: Buffer) => this.#read(chunk))
  }

  /** Sends a command; resolves once the pipe took it (rejects when the driver is gone). */
  send(type: string, id: string, payload: Uint8Array = Buffer.alloc(0)): Promise<void> {
    const header = Buffer.from(`${type} ${id} ${payload.byteLength}\n`, 'ascii')
    return new Promise((resolve, reject) => {
      this.#commands.write(Buffer.concat([header, payload]), (error) => {
        if (error === null || error === undefined) resolve()
        else reject(error)
      })
    })
  }

  #read(chunk: Buffer): void {
    let rest = chunk
    while (rest.length > 0) {
      if (this.#skipPayload > 0) {
        const skipped = Math.min(this.#skipPayload, rest.length)
        this.#skipPayload -= skipped
        rest = rest.subarray(skipped)
        continue
      }
      if (this.#pending !== undefined) {
        const taken = rest.subarray(0, this.#pending.remaining)
        this.#pending.chunks.push(taken)
        this.#pending.remaining -= taken.length
        rest = rest.subarray(taken.length)
        if (this.#pending.remaining === 0) {
          const { fields, chunks } = this.#pending
          this.#pending = undefined
          this.#onEvent({ fields, payload: Buffer.concat(chunks) })
        }
        continue
      }
      const newline = rest.indexOf(10)
      const end = newline === -1 ? rest.length : newline
      if (this.#skipLine) {
        if (newline !== -1) this.#skipLine = false
      } else if (this.#bufferedBytes + end > this.#bounds.maxLineBytes) {
        this.dropped++
        this.#buffered = []
        this.#bufferedBytes = 0
        this.#skipLine = newline === -1
      } else {
        this.#buffered.push(rest.subarray(0, end))
        this.#bufferedBytes += end
        if (newline !== -1) {
          const line = Buffer.concat(this.#buffered).toString('utf8')
          this.#buffered = []
          this.#bufferedBytes = 0
          this.#line(line)
        }
      }
      rest = newline === -1 ? Buffer.alloc(0) : rest.subarray(newline + 1)
    }
  }

  #line(line: string): void {
    // Drivers start each event on a fresh line.
    if (line === '') return
    let fields: unknown
    try {
      fields = JSON.parse(line)
    } catch {
      this.dropped++
      return
    }
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) {
      this.dropped++
      return
    }
    const record = fields as Record<string, unknown>
    const payloadBytes = record['payloadBytes']
    if (payloadBytes === undefined || !this.#bounds.acceptsPayload(record)) {
      this.#onEvent({ fields: record, payload: undefined })
      return
    }
    if (
      typeof payloadBytes !== 'number' ||
      !Number.isSafeInteger(payloadBytes) ||
      payloadBytes < 0
    ) {
      this.dropped++
      return
    }
    if (payloadBytes > this.#bounds.maxPayloadBytes) {
      this.dropped++
      this.#skipPayload = payloadBytes
      return
    }
    if (payloadBytes === 0) {
      this.#onEvent({ fields: record, payload: Buffer.alloc(0) })
      return
    }
    this.#pending = { fields: record, remaining: payloadBytes, chunks: [] }
  }
}
