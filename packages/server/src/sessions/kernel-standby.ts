import type { Kernel, KernelOptions, Limits, Logger } from '@hutch/sandbox'
import { kernelLimitsFit } from '@hutch/sandbox'

/** What a standby kernel preloads: the libraries of the fast path's Python fork server. */
export const defaultStandbyPreload: readonly string[] = Object.freeze([
  'numpy',
  'pandas',
  'matplotlib',
  'matplotlib.pyplot',
])

/** How a {@link KernelStandby} is sized and what its kernels are. */
export interface KernelStandbyOptions {
  /** Kernels kept ready; 0 keeps none. */
  size: number
  /** The language of its kernels. */
  language: string
  /** Modules each kernel imports before it is ready (python). */
  preload: readonly string[]
  /** Pause after a failed start, doubling with each further failure; default 1 s. */
  initialBackoffMs?: number
  /** Longest pause between failed starts; default 30 s. */
  maxBackoffMs?: number
}

/** What a {@link KernelStandby} uses. */
export interface KernelStandbyCollaborators {
  /** Opens a kernel, as for a session: the sandbox's `openKernel`. */
  open: (options: KernelOptions) => Promise<Kernel>
  /** Resolves requested limits against the sandbox's defaults and maxima. */
  resolveLimits: (requested: Partial<Record<keyof Limits, unknown>>) => Limits
  /**
   * Whether one more kernel may start now. Standby kernels run, as HOT sessions do, and count
   * against the same cap: the owner says whether there is room.
   */
  room: () => boolean
  /** Told when a kernel starts, so that the owner can enforce its cap. */
  started?: () => void
  logger: Logger
}

/**
 * Session kernels started ahead of their sessions (DESIGN section 4): python with IPython and
 * the heavy libraries already imported, in sandboxes of the same isolation and the default
 * limits, so that creating a session or restoring a COLD one takes a ready kernel and only
 * writes its workdir and loads its state. A kernel is handed out once — {@link take} removes it
 * and `adopt` refuses a kernel that ran anything — and only to a session whose fixed limits
 * (memory, pids, disk, open files, file size) are those it started with; its per-cell limits are
 * set on adoption. Taken kernels are replaced in the background while there is room.
 */
export class KernelStandby {
  readonly #collaborators: KernelStandbyCollaborators
  readonly #options: Required<KernelStandbyOptions>
  /** The limits its kernels start with: the sandbox's defaults. */
  readonly #limits: Limits
  readonly #ready: Kernel[] = []
  #starting = 0
  /** Starts under way, so that closing waits for them. */
  readonly #starts = new Set<Promise<void>>()
  #failures = 0
  #retry: NodeJS.Timeout | undefined
  #closed = false
  #taken = 0

  constructor(collaborators: KernelStandbyCollaborators, options: KernelStandbyOptions) {
    if (!Number.isSafeInteger(options.size) || options.size < 0) {
      throw new RangeError(`standby size must be a whole number >= 0, got ${options.size}`)
    }
    this.#collaborators = collaborators
    this.#options = { initialBackoffMs: 1000, maxBackoffMs: 30_000, ...options }
    this.#limits = collaborators.resolveLimits({})
  }

  /** Kernels ready to take, and kernels starting. */
  stats(): { ready: number; starting: number; taken: number } {
    return { ready: this.#ready.length, starting: this.#starting, taken: this.#taken }
  }

  /** Kernels this standby holds: ready or starting. Each counts as a running kernel. */
  get held(): number {
    return this.#ready.length + this.#starting
  }

  /** Starts kernels until `size` are ready or starting, while the owner says there is room. */
  fill(): void {
    if (this.#closed || this.#retry !== undefined) return
    while (this.held < this.#options.size && this.#collaborators.room()) {
      this.#startOne()
    }
  }

  /**
   * A ready kernel for a session of `language` asking for `requested` limits, removed from the
   * standby for good (a replacement starts in the background), or undefined when none fits.
   * Throws what resolving the limits throws. The caller adopts the kernel with the returned
   * limits, and closes it if that fails.
   */
  take(
    language: string,
    requested: Partial<Record<keyof Limits, unknown>>,
  ): { kernel: Kernel; limits: Limits } | undefined {
    const limits = this.#collaborators.resolveLimits(requested)
    if (this.#closed || language !== this.#options.language) return undefined
    if (!kernelLimitsFit(this.#limits, limits)) return undefined
    for (;;) {
      const kernel = this.#ready.shift()
      if (kernel === undefined) break
      if (kernel.state !== 'running' || !kernelLimitsFit(kernel.limits, limits)) {
        void this.#discard(kernel)
        continue
      }
      this.#taken += 1
      this.fill()
      return { kernel, limits }
    }
    this.fill()
    return undefined
  }

  /** Closes every kernel it holds; those still starting are closed when they are up. */
  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retry)
    this.#retry = undefined
    const kernels = this.#ready.splice(0)
    await Promise.all([...kernels.map((kernel) => this.#discard(kernel)), ...this.#starts])
  }

  #startOne(): void {
    this.#starting += 1
    queueMicrotask(() => this.#collaborators.started?.())
    const { language, preload } = this.#options
    const start: Promise<void> = this.#collaborators
      .open({ language, preload })
      .then(
        async (kernel) => {
          this.#failures = 0
          if (this.#closed) {
            await this.#discard(kernel)
          } else {
            this.#ready.push(kernel)
          }
        },
        (error: unknown) => {
          this.#failures += 1
          const { initialBackoffMs, maxBackoffMs } = this.#options
          const pauseMs = Math.min(maxBackoffMs, initialBackoffMs * 2 ** (this.#failures - 1))
          this.#collaborators.logger.error(
            { err: error, failures: this.#failures, retryInMs: pauseMs },
            'a standby session kernel did not start',
          )
          if (this.#closed) return
          clearTimeout(this.#retry)
          this.#retry = setTimeout(() => {
            this.#retry = undefined
            this.fill()
          }, pauseMs)
          this.#retry.unref()
        },
      )
      .finally(() => {
        this.#starting -= 1
        this.#starts.delete(start)
      })
      .catch(() => {})
    this.#starts.add(start)
  }

  async #discard(kernel: Kernel): Promise<void> {
    await kernel.close().catch((error: unknown) => {
      this.#collaborators.logger.warn({ err: error }, 'could not close a standby kernel')
    })
  }
}
