import { randomBytes } from 'node:crypto'
import type { MimeBundle, RunError, RunStatus } from '@hutch/protocol'
import type { Slot, SlotProcess } from '../backends/backend.ts'
import { parsePythonError } from '../errors/python-traceback.ts'
import type { OutputCaps, OutputSink, TreeSnapshot } from '../files/output-files.ts'
import { collectOutputFiles, snapshotTree } from '../files/output-files.ts'
import type { Logger } from '../logger.ts'
import type { Limits } from '../policy/limits.ts'
import type { Policy } from '../policy/policy.ts'
import { BoundedOutput, OutputBudget } from '../process/bounded-output.ts'
import { SandboxError } from '../sandbox-error.ts'
import { CellOutput } from './cell-output.ts'
import type {
  CellOptions,
  CellResult,
  Kernel,
  KernelAdoption,
  KernelLanguage,
  KernelPreload,
  KernelRestore,
  KernelSnapshot,
} from './kernel.ts'
import { kernelLimitsFit } from './kernel.ts'
import type { DriverEvent } from './kernel-channel.ts'
import { KernelChannel } from './kernel-channel.ts'
import { writeInputFiles } from './kernel-files.ts'

/** Timing of interrupts and waits; tests shorten them. */
export interface KernelTimings {
  /** From the interrupt (SIGINT) to killing the cell's child processes. */
  interruptGraceMs: number
  /** From killing the children to killing the interpreter and starting a fresh one. */
  killGraceMs: number
  /** How long the interpreter may take to start (imports, restore). */
  startTimeoutMs: number
  /** How often a cell's CPU time is checked. */
  cpuPollMs: number
}

/** Two seconds from an interrupt to killing the cell's children, two more to a restart. */
export const defaultKernelTimings: Readonly<KernelTimings> = Object.freeze({
  interruptGraceMs: 2000,
  killGraceMs: 2000,
  startTimeoutMs: 60_000,
  cpuPollMs: 100,
})

/** Everything a kernel is made of, resolved by `Sandbox.openKernel`. */
export interface KernelSetup {
  id: string
  language: KernelLanguage
  limits: Limits
  slot: Slot
  policy: Policy
  argv: readonly string[]
  outputCaps: OutputCaps
  /** Python modules installed, for the hints of Python errors. */
  installedModules: readonly string[]
  timings: KernelTimings
  logger: Logger
  /** Called once the kernel is closed, to release its slot. */
  release: () => Promise<void>
}

/** Bounds on one cell's display results, beside the output limit of stdout and stderr. */
const maxDisplayBytesPerCell = 32 * 1024 * 1024
const maxDisplayValueChars = 16 * 1024 * 1024
/** Waiting for the sentinels after `done`: they were written first, so they are in the pipes. */
const sentinelWaitMs = 1000

interface RunningCell {
  id: string
  results: MimeBundle[]
  displayBytes: number
  onDisplay: ((bundle: MimeBundle) => void) | undefined
  stop: { status: RunStatus; reason: string } | undefined
  done: (fields: Record<string, unknown>) => void
  escalation: NodeJS.Timeout | undefined
}

/** A slot that can start programs and freeze them. */
type KernelSlot = Slot & Required<Pick<Slot, 'start' | 'freeze' | 'thaw' | 'stats' | 'cpuUsageMs'>>

interface Waiter {
  resolve: (event: DriverEvent) => void
  types: readonly string[]
}

/**
 * A kernel in a prepared slot: the driver of its language runs in the slot's sandbox and takes
 * cells over the control pipes. When the interpreter dies (OOM, `os._exit`, a kill after an
 * interrupt that did not take), a fresh one starts in the same sandbox and the cell says so.
 */
export class SandboxKernel implements Kernel {
  readonly id: string
  readonly language: KernelLanguage
  /** What it runs with; its limits change once, when it is adopted. */
  #setup: KernelSetup
  /** No cell has run, no state was restored and nobody adopted it yet. */
  #fresh = true
  #preloaded: KernelPreload | undefined
  readonly #slot: KernelSlot
  #state: 'running' | 'frozen' | 'closed' = 'running'
  #restored: KernelRestore | undefined
  #process: SlotProcess | undefined
  #channel: KernelChannel | undefined
  #driverPid = 0
  /** Why the interpreter is gone while no cell ran, told by the next cell. */
  #deathReason: string | undefined
  readonly #stdout = new CellOutput()
  readonly #stderr = new CellOutput()
  #cell: RunningCell | undefined
  /** The cell being executed, settled once its result is built. */
  #executing: Promise<unknown> | undefined
  readonly #waiters = new Map<string, Waiter>()
  #queue: Promise<unknown> = Promise.resolve()
  #oomKills = 0
  #closing: Promise<void> | undefined
  /**
   * The workdir's snapshot for the next cell, taken as soon as the previous cell's files were
   * collected, so that the walk is not on the path of the next cell.
   */
  #nextSnapshot: Promise<TreeSnapshot> | undefined

  private constructor(setup: KernelSetup) {
    const slot = setup.slot
    if (
      slot.start === undefined ||
      slot.freeze === undefined ||
      slot.thaw === undefined ||
      slot.stats === undefined ||
      slot.cpuUsageMs === undefined
    ) {
      throw new SandboxError('backend_unavailable', 'this backend cannot run kernels')
    }
    this.#slot = slot as KernelSlot
    this.#setup = { ...setup, limits: Object.freeze({ ...setup.limits }) }
    this.id = setup.id
    this.language = setup.language
  }

  /**
   * Starts the interpreter, imports the `preload` modules and restores `restoreState` into it.
   * A module that fails to import is only reported ({@link preloaded}).
   */
  static async open(
    setup: KernelSetup,
    options: {
      restoreState?: Uint8Array | undefined
      preload?: readonly string[] | undefined
    } = {},
  ): Promise<SandboxKernel> {
    const kernel = new SandboxKernel(setup)
    try {
      await kernel.#start()
      if (options.preload !== undefined && options.preload.length > 0) {
        kernel.#preloaded = await kernel.#preload(options.preload)
      }
      if (options.restoreState !== undefined) {
        kernel.#fresh = false
        kernel.#restored = await kernel.#restore(options.restoreState)
      }
    } catch (error) {
      await kernel.close().catch(() => {})
      throw error
    }
    return kernel
  }

  get limits(): Readonly<Limits> {
    return this.#setup.limits
  }

  get state(): 'running' | 'frozen' | 'closed' {
    return this.#state
  }

  get restored(): KernelRestore | undefined {
    return this.#restored
  }

  get preloaded(): KernelPreload | undefined {
    return this.#preloaded
  }

  adopt(options: KernelAdoption = {}): Promise<void> {
    return this.#serialize(async () => {
      this.#assertOpen()
      if (!this.#fresh) {
        throw new SandboxError(
          'invalid_request',
          `kernel ${this.id} was used already: only a kernel that ran nothing can be adopted`,
        )
      }
      const limits = options.limits
      if (limits !== undefined && !kernelLimitsFit(this.#setup.limits, limits)) {
        throw new SandboxError(
          'invalid_request',
          `kernel ${this.id} started with other memory, pids, disk, open files or file size limits`,
        )
      }
      if (options.restoreState !== undefined && !(options.restoreState instanceof Uint8Array)) {
        throw new SandboxError('invalid_request', 'restoreState must be bytes')
      }
      // Used from here on, even when a step below fails: the caller closes it then.
      this.#fresh = false
      this.#nextSnapshot = undefined
      if (this.#state === 'frozen') await this.thaw()
      if (limits !== undefined) {
        const adopted = Object.freeze({ ...limits })
        this.#setup = {
          ...this.#setup,
          limits: adopted,
          policy: { ...this.#setup.policy, limits: adopted },
        }
      }
      await writeInputFiles(this.#slot, options.files ?? [])
      if (options.restoreState !== undefined) {
        this.#restored = await this.#restore(options.restoreState)
      }
    })
  }

  execute(code: string, options: CellOptions = {}): Promise<CellResult> {
    if (typeof code !== 'string') throw new SandboxError('invalid_request', 'code must be a string')
    this.#fresh = false
    return this.#serialize(() => {
      const executing = this.#execute(code, options)
      this.#executing = executing
      return executing
    })
  }

  async interrupt(): Promise<void> {
    const cell = this.#cell
    if (cell !== undefined) await this.#stopCell(cell, 'killed', 'the cell was interrupted')
  }

  restart(): Promise<void> {
    return this.#serialize(async () => {
      this.#assertOpen()
      this.#fresh = false
      if (this.#state === 'frozen') await this.thaw()
      await this.#stopProcess()
      await this.#start()
    })
  }

  async freeze(): Promise<void> {
    this.#assertOpen()
    if (this.#state === 'frozen') return
    await this.#slot.freeze()
    this.#state = 'frozen'
  }

  async thaw(): Promise<void> {
    this.#assertOpen()
    if (this.#state !== 'frozen') return
    await this.#slot.thaw()
    this.#state = 'running'
  }

  snapshot(): Promise<KernelSnapshot> {
    return this.#serialize(async () => {
      this.#assertOpen()
      const wasFrozen = this.#state === 'frozen'
      if (wasFrozen) await this.thaw()
      try {
        if (this.#process === undefined) return { state: undefined, saved: [], lost: [] }
        const event = await this.#request('snapshot', ['snapshot'])
        return {
          state:
            event.payload === undefined || event.payload.length === 0
              ? undefined
              : new Uint8Array(event.payload),
          saved: names(event.fields['saved']),
          lost: lostNames(event.fields['lost']),
        }
      } finally {
        if (wasFrozen) await this.freeze()
      }
    })
  }

  exportWorkdir(sink: OutputSink): Promise<{ files: number; bytes: number }> {
    return this.#serialize(async () => {
      this.#assertOpen()
      const wasFrozen = this.#state === 'frozen'
      if (!wasFrozen) await this.freeze()
      try {
        const caps = { ...this.#setup.outputCaps, maxFiles: this.#setup.outputCaps.maxEntries }
        const collected = await collectOutputFiles(this.#slot.workdir, new Map(), caps, { sink })
        return {
          files: collected.files.length,
          bytes: collected.files.reduce((sum, file) => sum + file.size, 0),
        }
      } finally {
        if (!wasFrozen) await this.thaw()
      }
    })
  }

  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  async #close(): Promise<void> {
    const wasFrozen = this.#state === 'frozen'
    this.#state = 'closed'
    try {
      if (wasFrozen) await this.#slot.thaw().catch(() => {})
      const cell = this.#cell
      if (cell !== undefined) await this.#stopCell(cell, 'killed', 'the kernel was closed')
      await this.#stopProcess()
      // The cell's result is built from the workdir and the cgroup: wait before removing them.
      await this.#executing?.catch(() => {})
    } finally {
      await this.#setup.release()
    }
  }

  #assertOpen(): void {
    if (this.#state === 'closed') {
      throw new SandboxError('invalid_request', `kernel ${this.id} is closed`)
    }
  }

  #serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task)
    this.#queue = run.catch(() => {})
    return run
  }

  async #start(): Promise<void> {
    const { argv, policy, timings } = this.#setup
    this.#deathReason = undefined
    const started = await this.#slot.start({
      argv,
      policy,
      onStdout: (chunk) => this.#stdout.push(chunk),
      onStderr: (chunk) => this.#stderr.push(chunk),
    })
    this.#process = started
    const startupErrors: Buffer[] = []
    this.#stderr.begin(
      'startup',
      (chunk) => startupErrors.push(chunk),
      () => {},
    )
    this.#channel = new KernelChannel(
      started.control,
      started.events,
      {
        maxLineBytes: maxDisplayBytesPerCell,
        maxPayloadBytes: this.#setup.limits.memoryBytes + 64 * 1024 * 1024,
        acceptsPayload: (fields) =>
          fields['type'] === 'snapshot' &&
          typeof fields['id'] === 'string' &&
          this.#waiters.has(fields['id']),
      },
      // Handled once the loop has read every descriptor that was ready with it: the interpreter
      // flushes its stdout and stderr pipes before it writes a display or a cell's end on the
      // control pipe, but one wake-up of the loop may find all three ready and read the control
      // pipe first. A turn later the output that came before is in, and events keep their order.
      (event) => setImmediate(() => this.#onEvent(started, event)),
    )
    void started.exited.then((exit) => this.#onExit(started, exit))
    try {
      const ready = await this.#waitFor('ready', ['ready'], timings.startTimeoutMs, started)
      this.#driverPid = Number(ready.fields['pid'])
      this.#oomKills = (await this.#slot.stats()).oomKills
    } catch (error) {
      const stderr = Buffer.concat(startupErrors).toString('utf8').slice(0, 2000)
      await this.#stopProcess()
      throw new SandboxError(
        'backend_unavailable',
        `the ${this.language} kernel did not start${stderr === '' ? '' : `: ${stderr.split('\n').find((line) => line.trim() !== '') ?? ''}`}`,
        { stderr },
        { cause: error },
      )
    } finally {
      this.#stderr.end()
    }
  }

  async #stopProcess(): Promise<void> {
    const current = this.#process
    this.#process = undefined
    this.#channel = undefined
    if (current !== undefined) await current.kill()
  }

  #onEvent(from: SlotProcess, event: DriverEvent): void {
    if (from !== this.#process) return
    const type = event.fields['type']
    const id = event.fields['id']
    const cell = this.#cell
    if (type === 'ready') {
      this.#waiters.get('ready')?.resolve(event)
      return
    }
    if (typeof id !== 'string') return
    if (cell !== undefined && id === cell.id) {
      if (type === 'display') this.#onDisplay(cell, event.fields['bundle'])
      else if (type === 'done') cell.done(event.fields)
      return
    }
    const waiter = this.#waiters.get(id)
    if (waiter !== undefined && typeof type === 'string' && waiter.types.includes(type)) {
      waiter.resolve(event)
    } else if (waiter !== undefined && type === 'failed') {
      waiter.resolve(event)
    }
  }

  #onDisplay(cell: RunningCell, value: unknown): void {
    const bundle = asBundle(value)
    if (bundle === undefined) return
    const bytes = JSON.stringify(bundle).length
    if (cell.displayBytes + bytes > maxDisplayBytesPerCell) return
    cell.displayBytes += bytes
    cell.results.push(bundle)
    cell.onDisplay?.(bundle)
  }

  #onExit(from: SlotProcess, exit: { exitCode: number | null; signal: string | null }): void {
    if (from !== this.#process) return
    this.#process = undefined
    this.#channel = undefined
    this.#deathReason = describeExit(exit)
    for (const waiter of this.#waiters.values()) {
      waiter.resolve({ fields: { type: 'exited' }, payload: undefined })
    }
  }

  /** Waits for one event of the driver, or its death, or the timeout. */
  #waitFor(
    key: string,
    types: readonly string[],
    timeoutMs: number,
    from: SlotProcess | undefined = this.#process,
  ): Promise<DriverEvent> {
    return new Promise((resolve, reject) => {
      if (from === undefined || from !== this.#process) {
        reject(new SandboxError('internal', 'the interpreter is gone'))
        return
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(key)
        reject(
          new SandboxError('internal', `the interpreter did not answer within ${timeoutMs} ms`),
        )
      }, timeoutMs)
      this.#waiters.set(key, {
        types,
        resolve: (event) => {
          clearTimeout(timer)
          this.#waiters.delete(key)
          if (event.fields['type'] === 'exited') {
            reject(
              new SandboxError('internal', `the interpreter died (${this.#deathReason ?? ''})`),
            )
          } else if (event.fields['type'] === 'failed') {
            reject(
              new SandboxError(
                'internal',
                typeof event.fields['message'] === 'string' ? event.fields['message'] : 'failed',
              ),
            )
          } else {
            resolve(event)
          }
        },
      })
    })
  }

  async #request(
    type: 'snapshot' | 'restore' | 'preload',
    answers: readonly string[],
    payload?: Uint8Array,
  ): Promise<DriverEvent> {
    const channel = this.#channel
    if (channel === undefined) throw new SandboxError('internal', 'the interpreter is gone')
    const id = randomBytes(8).toString('hex')
    const answer = this.#waitFor(id, answers, this.#setup.timings.startTimeoutMs)
    await channel.send(type, id, payload).catch(() => {})
    return answer
  }

  async #preload(modules: readonly string[]): Promise<KernelPreload> {
    const event = await this.#request(
      'preload',
      ['preloaded'],
      Buffer.from(JSON.stringify(modules), 'utf8'),
    )
    const preloaded = {
      loaded: names(event.fields['loaded']),
      failed: lostNames(event.fields['failed']),
    }
    if (preloaded.failed.length > 0) {
      this.#setup.logger.warn(
        { kernelId: this.id, failed: preloaded.failed },
        'a kernel could not preload some modules',
      )
    }
    return preloaded
  }

  async #restore(state: Uint8Array): Promise<KernelRestore> {
    try {
      const event = await this.#request('restore', ['restored'], state)
      return { restored: names(event.fields['restored']), lost: lostNames(event.fields['lost']) }
    } catch (error) {
      if (this.#process === undefined) await this.#start()
      const reason = error instanceof Error ? error.message : String(error)
      return {
        restored: [],
        lost: [{ name: '*', reason: `the state was not restored: ${reason}` }],
      }
    }
  }

  async #stopCell(cell: RunningCell, status: RunStatus, reason: string): Promise<void> {
    if (cell.stop !== undefined || this.#cell !== cell) return
    cell.stop = { status, reason }
    const current = this.#process
    if (current === undefined) return
    const { interruptGraceMs, killGraceMs } = this.#setup.timings
    const pid = this.#driverPid
    const interrupt = async (): Promise<void> => {
      await current.signal(pid, 'SIGINT', { descendants: true }).catch(() => 0)
      await current.signal(pid, 'SIGINT').catch(() => 0)
    }
    await interrupt()
    // Once more halfway: a SIGINT that came before the cell armed its handler was ignored.
    cell.escalation = setTimeout(() => {
      if (this.#cell !== cell) return
      void interrupt()
      cell.escalation = setTimeout(() => {
        if (this.#cell !== cell) return
        void current.signal(pid, 'SIGKILL', { descendants: true }).catch(() => 0)
        cell.escalation = setTimeout(() => {
          if (this.#cell !== cell || this.#process !== current) return
          this.#setup.logger.warn({ kernelId: this.id }, 'a cell did not stop: killing the kernel')
          void current.kill().catch(() => {})
        }, killGraceMs)
      }, interruptGraceMs / 2)
    }, interruptGraceMs / 2)
  }

  async #execute(code: string, options: CellOptions): Promise<CellResult> {
    this.#assertOpen()
    if (this.#state === 'frozen') await this.thaw()
    let restarted: { reason: string } | undefined
    if (this.#process === undefined) {
      restarted = { reason: this.#deathReason ?? 'the interpreter was not running' }
      await this.#start()
    }
    const current = this.#process
    const channel = this.#channel
    if (current === undefined || channel === undefined) {
      throw new SandboxError('internal', 'the interpreter is gone')
    }
    const { limits, timings } = this.#setup
    const timeoutMs = Math.max(
      1,
      Math.min(options.timeoutMs ?? limits.wallTimeMs, limits.wallTimeMs),
    )
    const id = randomBytes(8).toString('hex')
    const budget = new OutputBudget(limits.outputBytes)
    const stdout = new BoundedOutput(budget)
    const stderr = new BoundedOutput(budget)
    const [before, cpuBeforeMs] = await Promise.all([this.#takeSnapshot(), this.#slot.cpuUsageMs()])
    const startedMs = performance.now()

    let finish!: (fields: Record<string, unknown>) => void
    const done = new Promise<Record<string, unknown>>((resolve) => {
      finish = resolve
    })
    const cell: RunningCell = {
      id,
      results: [],
      displayBytes: 0,
      onDisplay: options.onDisplay,
      stop: undefined,
      done: finish,
      escalation: undefined,
    }
    const outputLimit = (): void => {
      if (budget.exceeded) {
        void this.#stopCell(cell, 'output_limit', `output passed ${limits.outputBytes} bytes`)
      }
    }
    const streamEnded = (output: CellOutput, into: BoundedOutput, forward?: (c: Buffer) => void) =>
      new Promise<void>((resolve) => {
        output.begin(
          id,
          (chunk) => {
            const kept = into.push(chunk)
            if (kept.length > 0) forward?.(kept)
            outputLimit()
          },
          resolve,
        )
      })
    const stdoutEnded = streamEnded(this.#stdout, stdout, options.onStdout)
    const stderrEnded = streamEnded(this.#stderr, stderr, options.onStderr)
    this.#cell = cell

    const wallTimer = setTimeout(() => {
      void this.#stopCell(cell, 'timeout', `wall time passed ${timeoutMs} ms`)
    }, timeoutMs)
    const cpuTimer = setInterval(() => {
      this.#slot
        .cpuUsageMs()
        .then((cpuMs) => {
          if (cpuMs - cpuBeforeMs > limits.cpuTimeMs) {
            void this.#stopCell(cell, 'timeout', `CPU time passed ${limits.cpuTimeMs} ms`)
          }
        })
        .catch(() => {})
    }, timings.cpuPollMs)
    const onAbort = (): void => void this.#stopCell(cell, 'killed', 'the cell was cancelled')
    options.signal?.addEventListener('abort', onAbort, { once: true })
    if (options.signal?.aborted === true) onAbort()

    let outcome:
      | { kind: 'done'; fields: Record<string, unknown> }
      | { kind: 'died'; exit: { exitCode: number | null; signal: string | null } }
    try {
      await channel.send('execute', id, Buffer.from(code, 'utf8')).catch(() => {})
      outcome = await Promise.race([
        done.then((fields) => ({ kind: 'done' as const, fields })),
        current.exited.then((exit) => ({ kind: 'died' as const, exit })),
      ])
      if (outcome.kind === 'done') {
        let waited: NodeJS.Timeout | undefined
        await Promise.race([
          Promise.all([stdoutEnded, stderrEnded]),
          new Promise((resolve) => (waited = setTimeout(resolve, sentinelWaitMs))),
        ])
        clearTimeout(waited)
      }
    } finally {
      clearTimeout(wallTimer)
      clearInterval(cpuTimer)
      clearTimeout(cell.escalation)
      options.signal?.removeEventListener('abort', onAbort)
      this.#stdout.end()
      this.#stderr.end()
      this.#cell = undefined
    }

    const wallMs = Math.round(performance.now() - startedMs)
    const [stats, collected] = await Promise.all([
      this.#slot.stats(),
      collectOutputFiles(this.#slot.workdir, before, this.#setup.outputCaps, {
        ...(options.onOutputFile === undefined ? {} : { sink: options.onOutputFile }),
      }),
    ])
    // What the next cell starts from: what this one left. Whatever changes from here on (a
    // process the cell left running) is the next cell's.
    if (this.#state !== 'closed') this.#prefetchSnapshot()
    let status: RunStatus
    let error: RunError | undefined
    let executionCount: number
    if (outcome.kind === 'died') {
      const oom = stats.oomKills > this.#oomKills
      const death = oom
        ? `the interpreter ran out of memory (limit ${limits.memoryBytes} bytes)`
        : cell.stop === undefined
          ? describeExit(outcome.exit)
          : `the cell did not stop after it was interrupted (${cell.stop.reason})`
      status = oom
        ? 'memory_limit'
        : (cell.stop?.status ?? (outcome.exit.signal === null ? 'error' : 'killed'))
      executionCount = 0
      // Closing kills the interpreter on purpose: nothing is restarted then.
      if (this.#state !== 'closed') {
        restarted = { reason: death }
        await this.#start()
      }
    } else {
      const fields = outcome.fields
      executionCount = Number.isSafeInteger(fields['executionCount'])
        ? Number(fields['executionCount'])
        : 0
      const result = asBundle(fields['result'])
      if (result !== undefined) cell.results.push(result)
      error = this.#error(fields['error'], code)
      status = cell.stop?.status ?? (fields['ok'] === true ? 'ok' : 'error')
    }
    const reason =
      restarted?.reason !== undefined && outcome.kind === 'died'
        ? restarted.reason
        : cell.stop?.reason
    return {
      status,
      stdout: stdout.text(),
      stderr: stderr.text(),
      stdoutTruncated: stdout.truncated,
      stderrTruncated: stderr.truncated,
      results: cell.results,
      ...(error === undefined ? {} : { error }),
      executionCount,
      outputFiles: collected.files.map((file) => ({
        path: file.path,
        mediaType: file.mediaType,
        size: file.size,
      })),
      skippedFiles: collected.skipped,
      usage: {
        wallMs,
        cpuMs: Math.max(0, Math.round(stats.cpuUsageMs - cpuBeforeMs)),
        peakMemoryBytes: stats.peakMemoryBytes,
      },
      ...(restarted === undefined ? {} : { restarted }),
      ...(reason === undefined ? {} : { reason }),
    }
  }

  /**
   * The workdir's sizes and mtimes, no hashes: a session's workdir holds its data (a CSV of
   * hundreds of MB), hashed twice per cell otherwise. A file rewritten at the same size whose
   * mtime the cell set back is missed: only the cell's own output can hide that way.
   */
  #snapshotWorkdir(): Promise<TreeSnapshot> {
    return snapshotTree(this.#slot.workdir, { ...this.#setup.outputCaps, maxTotalBytes: 0 })
  }

  #prefetchSnapshot(): void {
    // Once the cell's result is on its way: a walk does its directory work synchronously.
    const snapshot = new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
      this.#snapshotWorkdir(),
    )
    // A failed prefetch is taken again, and fails (or not) on the cell's own path.
    snapshot.catch(() => {})
    this.#nextSnapshot = snapshot
  }

  /** The prefetched snapshot, or a fresh one. */
  async #takeSnapshot(): Promise<TreeSnapshot> {
    const prefetched = this.#nextSnapshot
    this.#nextSnapshot = undefined
    if (prefetched !== undefined) {
      try {
        return await prefetched
      } catch {
        // Taken again below.
      }
    }
    return await this.#snapshotWorkdir()
  }

  #error(value: unknown, code: string): RunError | undefined {
    if (typeof value !== 'object' || value === null) return undefined
    const fields = value as Record<string, unknown>
    const text = (key: string, max: number): string =>
      typeof fields[key] === 'string' ? fields[key].slice(0, max) : ''
    const traceback = text('traceback', 256 * 1024)
    const raw: RunError = {
      name: text('name', 200),
      value: text('value', 64 * 1024),
      traceback,
    }
    if (this.language !== 'python') return raw
    const parsed = parsePythonError(traceback, {
      code,
      installedModules: this.#setup.installedModules,
    })
    return parsed ?? raw
  }
}

function describeExit(exit: { exitCode: number | null; signal: string | null }): string {
  if (exit.signal !== null) return `the interpreter was killed by ${exit.signal}`
  const code = exit.exitCode
  if (code !== null && code > 128) return `the interpreter was killed by signal ${code - 128}`
  return `the interpreter exited with code ${code ?? 'unknown'}`
}

/** A display bundle from the driver, checked: MIME type keys, bounded string values. */
function asBundle(value: unknown): MimeBundle | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined
  const bundle: MimeBundle = {}
  let count = 0
  for (const [mime, content] of Object.entries(value as Record<string, unknown>)) {
    if (++count > 32 || !/^[a-z]+\/[A-Za-z0-9.+_-]{1,100}$/.test(mime)) continue
    if (typeof content === 'string') {
      bundle[mime] =
        content.length > maxDisplayValueChars ? content.slice(0, maxDisplayValueChars) : content
    } else if (mime.endsWith('json')) {
      bundle[mime] = content
    }
  }
  return Object.keys(bundle).length === 0 ? undefined : bundle
}

function names(value: unknown): string[] {
  if (!Array.isArray(value)) return []
  return value
    .filter((name): name is string => typeof name === 'string')
    .map((name) => name.slice(0, 200))
    .slice(0, 10_000)
}

function lostNames(value: unknown): { name: string; reason: string }[] {
  if (!Array.isArray(value)) return []
  return value
    .filter(
      (entry): entry is { name: string; reason: string } =>
        typeof entry === 'object' &&
        entry !== null &&
        typeof (entry as Record<string, unknown>)['name'] === 'string' &&
        typeof (entry as Record<string, unknown>)['reason'] === 'string',
    )
    .slice(0, 10_000)
    .map((entry) => ({ name: entry.name.slice(0, 200), reason: entry.reason.slice(0, 500) }))
}
