import type { MimeBundle, OutputFile, RunError, RunStatus } from '@hutch/protocol'
import { resolveLanguage } from '@hutch/protocol'
import type { RequestLimits } from '@hutch/protocol/schemas'
import type { CellResult, InputFile, Kernel, KernelOptions, Limits, Logger } from '@hutch/sandbox'
import { kernelLanguages, SandboxError } from '@hutch/sandbox'
import { AppError } from '../app-error.ts'
import type { Namespace } from '../namespace.ts'
import type { Storage } from '../storage/storage.ts'
import { KernelStandby } from './kernel-standby.ts'
import type {
  LostName,
  SessionPageOptions,
  SessionRecord,
  SessionRepository,
  SessionState,
  SessionTransition,
} from './session-repository.ts'
import type { SessionStateStore } from './session-state-store.ts'
import { boundedLost, boundedNames } from './session-state-store.ts'

/** `POST /v1/sessions` (DESIGN section 5). */
export interface CreateSessionRequest {
  language: string
  /** Default timeout of a cell, milliseconds. */
  timeoutMs?: number | undefined
  warmAfterMs?: number | undefined
  coldAfterMs?: number | undefined
  limits?: RequestLimits | undefined
}

/** `POST /v1/sessions/:id/execute`. */
export interface CellRequest {
  code: string
  timeoutMs?: number | undefined
}

/** A session as the API returns it. */
export interface SessionView {
  id: string
  language: string
  state: Exclude<SessionState, 'deleted'>
  createdAt: string
  lastActiveAt: string
  executionCount: number
  warmAfterMs: number
  coldAfterMs: number
  limits: Record<string, number>
  /** What the last COLD save could not keep (reported again by the cell that restores it). */
  lost: LostName[]
  /** The latest transitions, oldest first. */
  transitions: SessionTransition[]
}

/** What one cell returns: the run result of `/v1/execute`, plus the session's own fields. */
export interface CellResponse {
  id: string
  sessionId: string
  executionCount: number
  status: RunStatus
  exitCode: null
  signal: null
  stdout: string
  stderr: string
  stdoutTruncated: boolean
  stderrTruncated: boolean
  results: MimeBundle[]
  error: RunError | null
  reason: string | null
  outputFiles: OutputFile[]
  skippedFiles: { path: string; reason: string }[]
  usage: { wallMs: number; cpuMs: number; peakMemoryBytes: number }
  /** queueMs: behind earlier cells; syncInMs: thawing a WARM or restoring a COLD session. */
  timings: { queueMs: number; syncInMs: number; runMs: number; syncOutMs: number }
  /** Set when the interpreter died during the cell and was started again, all state lost. */
  restarted: { reason: string } | null
  /** Set on the cell that brought a COLD session back: what came back and what did not. */
  restored: { names: string[]; lost: LostName[] } | null
  createdAt: string
  finishedAt: string
}

/** Live output of one cell, for streaming. */
export interface CellHooks {
  onStart?: (id: string) => void
  onStdout?: (chunk: Buffer) => void
  onStderr?: (chunk: Buffer) => void
  onDisplay?: (bundle: MimeBundle) => void
  signal?: AbortSignal
}

/** Settings of the session service. */
export interface SessionServiceOptions {
  defaultWarmAfterMs: number
  maxWarmAfterMs: number
  defaultColdAfterMs: number
  maxColdAfterMs: number
  /** Idle HOT sessions past this many are frozen (WARM), least recently used first. */
  maxHotSessions: number
  /** WARM sessions past this many are saved and closed (COLD), least recently used first. */
  maxWarmSessions: number
  /** Sessions (of any state but deleted) one namespace may have. */
  maxSessionsPerNamespace: number
  /** Largest output file of a cell stored in the namespace, bytes. */
  maxOutputFileBytes: number
  /** Builds the download URL of a file in a namespace. */
  fileUrl: (namespace: Namespace, path: string) => string
}

/** A session this process has touched: its kernel while HOT or WARM, its queue of operations. */
interface Live {
  readonly id: string
  readonly namespace: Namespace
  record: SessionRecord
  kernel: Kernel | undefined
  /** Operations (cells, transitions) run one at a time, in arrival order. */
  readonly queue: SerialQueue
  /** Cells running or waiting: an idle transition never takes a session someone waits for. */
  cells: number
  /** Date.now() when the last cell ended, or the session came to this process. */
  lastActiveMs: number
  timer: NodeJS.Timeout | undefined
  /** The record of the last cell being written. */
  persisting: Promise<void>
  /** A cell's record waits to be written: later cells join it. */
  recordPending: boolean
  /** What a COLD restore brought back, reported by the cell that caused it. */
  restored: { names: string[]; lost: LostName[] } | undefined
}

/**
 * Stateful sessions (DESIGN section 4): one kernel per session, cells run one after the other,
 * and the lifecycle HOT (running) -> WARM (frozen, after `warmAfterMs` idle or past the HOT cap)
 * -> COLD (state and workdir saved, kernel closed, after `coldAfterMs` idle or past the WARM cap)
 * -> HOT again on the next cell, which restores it. Idle times count from the end of the last
 * cell. Every transition is recorded with its reason. Sessions are scoped to their namespace:
 * another namespace's session is not found.
 */
export class SessionService {
  readonly #openKernel: (options: KernelOptions) => Promise<Kernel>
  readonly #repository: SessionRepository
  readonly #states: SessionStateStore
  readonly #storage: Storage
  readonly #options: SessionServiceOptions
  readonly #logger: Logger
  readonly #standby: KernelStandby | undefined
  readonly #live = new Map<string, Live>()
  /** Creations under way per namespace (`userId/chatId`). */
  readonly #starting = new Map<string, number>()
  /**
   * Saves and restores under way, two at most: each holds a session's whole interpreter state in
   * this process's memory, so many sessions going COLD at once must not hold all of theirs.
   */
  readonly #stateMoves = new Limiter(2)
  #enforcing: Promise<void> | undefined
  #enforceAgain = false
  #closed = false

  constructor(collaborators: {
    openKernel: (options: KernelOptions) => Promise<Kernel>
    repository: SessionRepository
    states: SessionStateStore
    storage: Storage
    options: SessionServiceOptions
    logger: Logger
    /**
     * Python kernels started ahead (`size` of them, with `preload` imported), taken by a creation
     * or a COLD restore whose limits fit the defaults. They count against `maxHotSessions`.
     */
    standby?: {
      size: number
      preload: readonly string[]
      resolveLimits: (requested: Partial<Record<keyof Limits, unknown>>) => Limits
    }
  }) {
    this.#openKernel = collaborators.openKernel
    const standby = collaborators.standby
    this.#standby =
      standby === undefined || standby.size === 0
        ? undefined
        : new KernelStandby(
            {
              open: (options) => this.#openKernel(options),
              resolveLimits: standby.resolveLimits,
              room: () => this.#standbyRoom(),
              started: () => this.#enforceCaps(),
              logger: collaborators.logger,
            },
            { size: standby.size, language: 'python', preload: standby.preload },
          )
    this.#repository = collaborators.repository
    this.#states = collaborators.states
    this.#storage = collaborators.storage
    this.#options = collaborators.options
    this.#logger = collaborators.logger
  }

  /** Opens a kernel and records a HOT session. */
  async create(namespace: Namespace, request: CreateSessionRequest): Promise<SessionView> {
    this.#refuseWhenClosed()
    const language = resolveLanguage(request.language)
    if (language === undefined || !isKernelLanguage(language)) {
      throw new AppError(
        'unsupported_language',
        `sessions run ${kernelLanguages.join(', ')}; not ${request.language}`,
        { supported: kernelLanguages },
      )
    }
    // Creations under way count too, so that concurrent ones cannot pass the cap together.
    const key = `${namespace.userId}/${namespace.chatId}`
    const starting = this.#starting.get(key) ?? 0
    this.#starting.set(key, starting + 1)
    let record: SessionRecord
    let kernel: Kernel
    try {
      const count = (await this.#repository.count(namespace)) + starting
      if (count >= this.#options.maxSessionsPerNamespace) {
        throw new AppError(
          'too_many_sessions',
          `this namespace has ${count} sessions, the most it may have; delete one first`,
          { maxSessions: this.#options.maxSessionsPerNamespace },
        )
      }
      ;({ record, kernel } = await this.#open(namespace, language, request))
    } finally {
      const left = (this.#starting.get(key) ?? 1) - 1
      if (left === 0) this.#starting.delete(key)
      else this.#starting.set(key, left)
    }
    const live = this.#track(namespace, record, kernel)
    if (this.#closed) {
      // Shutdown began while the kernel started, after close() took its list: save it too.
      await this.#evict(live, 'the server shut down', true)
      return viewOf(live.record)
    }
    this.#schedule(live)
    this.#enforceCaps()
    return viewOf(record)
  }

  /** Opens a kernel and records its session; no record is left when the kernel fails. */
  async #open(
    namespace: Namespace,
    language: string,
    request: CreateSessionRequest,
  ): Promise<{ record: SessionRecord; kernel: Kernel }> {
    const limits = limitsOf(request)
    const kernel = await translate(() => this.#kernelFor({ language, limits }))
    try {
      const record = await this.#repository.create({
        id: crypto.randomUUID(),
        namespace,
        language,
        limits,
        warmAfterMs: clamp(
          request.warmAfterMs ?? this.#options.defaultWarmAfterMs,
          this.#options.maxWarmAfterMs,
        ),
        coldAfterMs: clamp(
          request.coldAfterMs ?? this.#options.defaultColdAfterMs,
          this.#options.maxColdAfterMs,
        ),
        reason: 'created',
      })
      return { record, kernel }
    } catch (error) {
      await kernel.close()
      throw error
    }
  }

  /** A session of this namespace. */
  async get(namespace: Namespace, id: string): Promise<SessionView> {
    await this.#live.get(id)?.persisting
    return viewOf(await this.#record(namespace, id))
  }

  /** Sessions of this namespace, newest first. */
  async list(
    namespace: Namespace,
    page: SessionPageOptions,
  ): Promise<{ items: SessionView[]; nextCursor: string | null }> {
    const listed = await this.#repository.list(namespace, page)
    return { items: listed.items.map(viewOf), nextCursor: listed.nextCursor }
  }

  /**
   * Runs a cell after the cells before it. A WARM session is thawed first, a COLD one restored
   * (its workdir and saved state in a new kernel), and the result says what was lost.
   */
  async execute(
    namespace: Namespace,
    id: string,
    request: CellRequest,
    hooks: CellHooks = {},
  ): Promise<CellResponse> {
    this.#refuseWhenClosed()
    const live = await this.#liveOf(namespace, id)
    const cellId = crypto.randomUUID()
    const createdAt = new Date().toISOString()
    const arrived = performance.now()
    live.cells += 1
    this.#cancelTimer(live)
    try {
      return await live.queue.run(async () => {
        const queueMs = performance.now() - arrived
        const kernel = await this.#wake(live)
        const syncInMs = performance.now() - arrived - queueMs
        hooks.onStart?.(cellId)
        const cell = await translate(() =>
          kernel.execute(request.code, {
            ...(request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs }),
            ...(hooks.onStdout === undefined ? {} : { onStdout: hooks.onStdout }),
            ...(hooks.onStderr === undefined ? {} : { onStderr: hooks.onStderr }),
            ...(hooks.onDisplay === undefined ? {} : { onDisplay: hooks.onDisplay }),
            ...(hooks.signal === undefined ? {} : { signal: hooks.signal }),
            onOutputFile: async (file) => {
              await this.#storage.put(namespace, file.path, file.content, {
                maxBytes: this.#options.maxOutputFileBytes,
                mediaType: file.mediaType,
              })
            },
          }),
        )
        const runMs = performance.now() - arrived - queueMs - syncInMs
        if (cell.restarted !== undefined) {
          await this.#move(
            live,
            'hot',
            `the interpreter died (${cell.restarted.reason}) and was started again; its state is lost`,
            { executionCount: 0 },
          )
        }
        const executionCount = live.record.executionCount + 1
        live.record = { ...live.record, executionCount, lastActiveAt: new Date().toISOString() }
        this.#recordCell(live)
        const restored = live.restored ?? null
        live.restored = undefined
        return this.#responseOf(namespace, cell, {
          id: cellId,
          sessionId: id,
          executionCount,
          restored,
          timings: { queueMs, syncInMs, runMs, syncOutMs: 0 },
          createdAt,
        })
      })
    } finally {
      live.cells -= 1
      live.lastActiveMs = Date.now()
      this.#schedule(live)
      // A session the caps passed over while it ran a cell can go now.
      this.#enforceCaps()
      // And the standby may have room again.
      this.#standby?.fill()
    }
  }

  /** Interrupts the running cell of a session, if any; its state survives. */
  async interrupt(namespace: Namespace, id: string): Promise<SessionView> {
    const record = await this.#record(namespace, id)
    const kernel = this.#live.get(id)?.kernel
    if (kernel !== undefined) await translate(() => kernel.interrupt())
    return viewOf(record)
  }

  /**
   * Starts the session's interpreter afresh, after the cells queued before: every variable is
   * dropped, the workdir kept. A COLD session drops its saved state and keeps its saved files.
   */
  async restart(namespace: Namespace, id: string): Promise<SessionView> {
    this.#refuseWhenClosed()
    const live = await this.#liveOf(namespace, id)
    live.cells += 1
    try {
      return await live.queue.run(async () => {
        this.#refuseDeleted(live)
        const reason = 'restarted by the client'
        if (live.kernel === undefined) {
          const saved = live.record.savedState
          await this.#move(live, live.record.state, reason, {
            executionCount: 0,
            lostNames: [],
            ...(saved === null ? {} : { savedState: { ...saved, stateKey: null } }),
          })
        } else {
          const kernel = live.kernel
          await translate(async () => {
            if (kernel.state === 'frozen') await kernel.thaw()
            await kernel.restart()
          })
          await this.#move(live, 'hot', reason, {
            executionCount: 0,
          })
        }
        live.restored = undefined
        return viewOf(live.record)
      })
    } finally {
      live.cells -= 1
      live.lastActiveMs = Date.now()
      this.#schedule(live)
    }
  }

  /** Interrupts a running cell, closes the kernel, removes the saved state; the record stays. */
  async delete(namespace: Namespace, id: string): Promise<void> {
    const live = await this.#liveOf(namespace, id)
    const kernel = live.kernel
    if (kernel !== undefined) await kernel.interrupt().catch(() => undefined)
    await live.queue.run(async () => {
      this.#refuseDeleted(live)
      this.#cancelTimer(live)
      await live.kernel?.close()
      live.kernel = undefined
      await this.#move(live, 'deleted', 'deleted by the client')
      this.#live.delete(id)
      this.#standby?.fill()
      await this.#states.remove(namespace, `${id}/`).catch((error: unknown) => {
        this.#logger.warn({ err: error, sessionId: id }, 'could not remove saved session state')
      })
    })
  }

  /**
   * For shutdown: refuses new cells, lets running ones end within `graceMs` (then interrupts
   * them), and saves every HOT or WARM session to COLD, so that the next process restores them.
   */
  async close(reason: string, graceMs: number): Promise<void> {
    this.#closed = true
    const standbyClosed = this.#standby?.close()
    const graceEnds = Date.now() + graceMs
    const busy = () => [...this.#live.values()].filter((live) => live.cells > 0)
    while (busy().length > 0 && Date.now() < graceEnds) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    for (const live of busy()) await live.kernel?.interrupt().catch(() => undefined)
    const pending = [...this.#live.values()]
    // Two at a time: each save walks a workdir and writes to storage.
    const workers = Array.from({ length: 2 }, async () => {
      for (let live = pending.shift(); live !== undefined; live = pending.shift()) {
        this.#cancelTimer(live)
        await this.#evict(live, reason, true)
      }
    })
    await Promise.all([...workers, standbyClosed])
  }

  /** Starts filling the standby of kernels (when there is one); call once the server listens. */
  start(): void {
    this.#standby?.fill()
  }

  /** HOT and WARM sessions this process holds, and standby kernels, for tests and metrics. */
  stats(): {
    hot: number
    warm: number
    standby: { ready: number; starting: number; taken: number }
  } {
    let hot = 0
    let warm = 0
    for (const live of this.#live.values()) {
      if (live.kernel === undefined) continue
      if (live.record.state === 'hot') hot += 1
      if (live.record.state === 'warm') warm += 1
    }
    return { hot, warm, standby: this.#standby?.stats() ?? { ready: 0, starting: 0, taken: 0 } }
  }

  /** Brings a session's kernel to HOT for a cell: thawing it, or restoring it from COLD. */
  async #wake(live: Live): Promise<Kernel> {
    this.#refuseDeleted(live)
    const kernel = live.kernel
    if (kernel !== undefined && live.record.state === 'hot') return kernel
    if (kernel !== undefined) {
      await translate(() => kernel.thaw())
      await this.#move(live, 'hot', 'a cell arrived')
      this.#enforceCaps()
      return kernel
    }
    const restored = await this.#restore(live)
    this.#enforceCaps()
    return restored
  }

  async #restore(live: Live): Promise<Kernel> {
    const saved = live.record.savedState
    const lostBefore: LostName[] =
      saved === null
        ? live.record.executionCount > 0
          ? [{ name: '*', reason: 'the session was never saved before its server stopped' }]
          : []
        : live.record.lostNames
    // A saved state is held whole in memory while it moves (up to the kernel's memory limit).
    const kernel = await this.#stateMoves.run(() =>
      translate(async () =>
        this.#kernelFor({
          language: live.record.language,
          limits: live.record.limits,
          ...(saved === null ? {} : { files: this.#states.files(live.namespace, saved) }),
          ...(saved === null
            ? {}
            : await this.#states
                .state(live.namespace, saved)
                .then((state) => (state === undefined ? {} : { restoreState: state }))),
        }),
      ),
    )
    try {
      await this.#move(live, 'hot', 'a cell arrived')
    } catch (error) {
      await kernel.close()
      throw error
    }
    live.kernel = kernel
    live.restored = {
      names: boundedNames(kernel.restored?.restored ?? []),
      lost: boundedLost([...lostBefore, ...(kernel.restored?.lost ?? [])]),
    }
    return kernel
  }

  /**
   * A kernel for a session: a standby kernel when one fits (adopted with the session's limits,
   * files and state), else a new one.
   */
  async #kernelFor(
    options: KernelOptions & { limits: Record<string, number>; files?: readonly InputFile[] },
  ): Promise<Kernel> {
    const taken = this.#standby?.take(options.language, options.limits)
    if (taken === undefined) return await this.#openKernel(options)
    const { kernel, limits } = taken
    try {
      await kernel.adopt({
        limits,
        ...(options.files === undefined ? {} : { files: options.files }),
        ...(options.restoreState === undefined ? {} : { restoreState: options.restoreState }),
      })
    } catch (error) {
      await kernel.close().catch(() => undefined)
      throw error
    }
    return kernel
  }

  /**
   * Whether the standby may start one more kernel. Running kernels — HOT sessions and standby
   * kernels — stay within `maxHotSessions`: idle HOT sessions are frozen to make room (least
   * recently used first), sessions running a cell are not, so those leave no room.
   */
  #standbyRoom(): boolean {
    let busy = 0
    for (const live of this.#live.values()) {
      if (live.kernel !== undefined && live.record.state === 'hot' && live.cells > 0) busy += 1
    }
    const held = this.#standby?.held ?? 0
    return !this.#closed && busy + held < this.#options.maxHotSessions
  }

  /** HOT -> WARM, unless a cell came meanwhile. */
  async #freeze(live: Live, reason: string): Promise<void> {
    await live.queue.run(async () => {
      const kernel = live.kernel
      if (kernel === undefined || live.record.state !== 'hot' || live.cells > 0) return
      try {
        await kernel.freeze()
        await this.#move(live, 'warm', reason)
      } catch (error) {
        this.#logger.warn({ err: error, sessionId: live.id }, 'could not freeze a session')
      }
    })
    this.#schedule(live)
  }

  /** HOT or WARM -> COLD, unless a cell came meanwhile (or `force`, at shutdown). */
  async #evict(live: Live, reason: string, force = false): Promise<void> {
    await live.queue.run(async () => {
      const kernel = live.kernel
      if (kernel === undefined || (live.cells > 0 && !force)) return
      const previous = live.record.savedState
      let saved: Awaited<ReturnType<SessionStateStore['save']>> | undefined
      try {
        saved = await this.#stateMoves.run(() => this.#states.save(live.namespace, live.id, kernel))
      } catch (error) {
        this.#logger.error({ err: error, sessionId: live.id }, 'could not save a session')
      }
      await kernel.close().catch((error: unknown) => {
        this.#logger.warn({ err: error, sessionId: live.id }, 'could not close a kernel')
      })
      live.kernel = undefined
      this.#standby?.fill()
      await this.#move(
        live,
        'cold',
        reason,
        saved === undefined
          ? {
              lostNames: [{ name: '*', reason: 'the session could not be saved' }],
              savedState: null,
            }
          : { savedState: saved.savedState, lostNames: saved.lost },
      )
      if (previous !== null) {
        await this.#states.remove(live.namespace, previous.prefix).catch((error: unknown) => {
          this.#logger.warn({ err: error, sessionId: live.id }, 'could not remove an old save')
        })
      }
    })
  }

  /**
   * Records the session's execution count and activity behind the answer (after the response
   * is written: SQLite writes block the event loop), in order: every transition and read waits
   * for it first. Cells that end before the write begins share it: it records the latest.
   */
  #recordCell(live: Live): void {
    if (live.recordPending) return
    live.recordPending = true
    live.persisting = live.persisting
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(() => {
        live.recordPending = false
        return this.#repository.touch(live.id, live.record.executionCount)
      })
      .then(
        () => undefined,
        (error: unknown) => {
          live.recordPending = false
          this.#logger.warn({ err: error, sessionId: live.id }, 'could not record a cell')
        },
      )
  }

  /** Records a transition, after the cell records before it. */
  async #move(
    live: Live,
    to: SessionState,
    reason: string,
    changes?: Parameters<SessionRepository['transition']>[3],
  ): Promise<void> {
    await live.persisting
    live.record = await this.#repository.transition(live.id, to, reason, changes)
  }

  /** Sets the idle timer of a session: to WARM after `warmAfterMs`, to COLD after `coldAfterMs`. */
  #schedule(live: Live): void {
    this.#cancelTimer(live)
    if (this.#closed || live.cells > 0 || live.kernel === undefined) return
    const { warmAfterMs, coldAfterMs } = live.record
    const idleMs = Date.now() - live.lastActiveMs
    const state = live.record.state
    const freezeFirst = state === 'hot' && warmAfterMs < coldAfterMs
    const dueMs = freezeFirst ? warmAfterMs : coldAfterMs
    live.timer = setTimeout(
      () => {
        live.timer = undefined
        const task = freezeFirst
          ? this.#freeze(live, `idle for ${warmAfterMs} ms`)
          : this.#evict(live, `idle for ${coldAfterMs} ms`)
        task.catch((error: unknown) => {
          this.#logger.error({ err: error, sessionId: live.id }, 'an idle transition failed')
        })
      },
      Math.max(0, dueMs - idleMs),
    )
    live.timer.unref()
  }

  #cancelTimer(live: Live): void {
    if (live.timer !== undefined) clearTimeout(live.timer)
    live.timer = undefined
  }

  /**
   * Freezes idle HOT sessions past the HOT cap and evicts WARM ones past the WARM cap, least
   * recently used first. One pass at a time; a call during a pass runs another after it.
   */
  #enforceCaps(): void {
    if (!this.#overCaps()) return
    if (this.#enforcing !== undefined) {
      this.#enforceAgain = true
      return
    }
    this.#enforcing = (async () => {
      do {
        this.#enforceAgain = false
        await this.#enforceOnce()
      } while (this.#enforceAgain && !this.#closed)
    })()
      .catch((error: unknown) => {
        this.#logger.error({ err: error }, 'enforcing the session caps failed')
      })
      .finally(() => {
        this.#enforcing = undefined
      })
  }

  #overCaps(): boolean {
    const { hot, warm } = this.stats()
    const running = hot + (this.#standby?.held ?? 0)
    return running > this.#options.maxHotSessions || warm > this.#options.maxWarmSessions
  }

  async #enforceOnce(): Promise<void> {
    const { maxHotSessions, maxWarmSessions } = this.#options
    const idleIn = (state: SessionState) =>
      [...this.#live.values()]
        .filter((live) => live.kernel !== undefined && live.record.state === state)
        .sort((a, b) => a.lastActiveMs - b.lastActiveMs)
    const hot = idleIn('hot')
    // Standby kernels run too: they count against the HOT cap.
    const excessHot = Math.max(0, hot.length + (this.#standby?.held ?? 0) - maxHotSessions)
    for (const live of hot.filter((one) => one.cells === 0).slice(0, excessHot)) {
      await this.#freeze(live, `more than ${maxHotSessions} HOT sessions; least recently used`)
    }
    const warm = idleIn('warm')
    for (const live of warm.slice(0, Math.max(0, warm.length - maxWarmSessions))) {
      if (live.cells > 0) continue
      await this.#evict(live, `more than ${maxWarmSessions} WARM sessions; least recently used`)
    }
  }

  /** The live state of a session of this namespace, made from its record on first use. */
  async #liveOf(namespace: Namespace, id: string): Promise<Live> {
    const known = this.#live.get(id)
    if (known !== undefined) {
      if (!sameNamespace(known.namespace, namespace) || known.record.state === 'deleted') {
        throw notFound(id)
      }
      return known
    }
    const record = await this.#record(namespace, id)
    // Another request may have made it while the record was read.
    return this.#live.get(id) ?? this.#track(namespace, record, undefined)
  }

  #track(namespace: Namespace, record: SessionRecord, kernel: Kernel | undefined): Live {
    const live: Live = {
      id: record.id,
      namespace,
      record,
      kernel,
      queue: new SerialQueue(),
      cells: 0,
      lastActiveMs: Date.now(),
      timer: undefined,
      persisting: Promise.resolve(),
      recordPending: false,
      restored: undefined,
    }
    this.#live.set(record.id, live)
    return live
  }

  async #record(namespace: Namespace, id: string): Promise<SessionRecord> {
    const record = await this.#repository.get(namespace, id)
    if (record === undefined) throw notFound(id)
    return record
  }

  #refuseDeleted(live: Live): void {
    if (live.record.state === 'deleted') throw notFound(live.id)
  }

  #refuseWhenClosed(): void {
    if (this.#closed) {
      throw new AppError('server_shutting_down', 'the server is shutting down', {
        retryAfterSeconds: 5,
      })
    }
  }

  #responseOf(
    namespace: Namespace,
    cell: CellResult,
    extra: Pick<
      CellResponse,
      'id' | 'sessionId' | 'executionCount' | 'restored' | 'timings' | 'createdAt'
    >,
  ): CellResponse {
    return {
      id: extra.id,
      sessionId: extra.sessionId,
      executionCount: extra.executionCount,
      status: cell.status,
      exitCode: null,
      signal: null,
      stdout: cell.stdout,
      stderr: cell.stderr,
      stdoutTruncated: cell.stdoutTruncated,
      stderrTruncated: cell.stderrTruncated,
      results: cell.results,
      error: cell.error ?? null,
      reason: cell.reason ?? null,
      outputFiles: cell.outputFiles.map((file) => ({
        ...file,
        url: this.#options.fileUrl(namespace, file.path),
      })),
      skippedFiles: cell.skippedFiles,
      usage: cell.usage,
      timings: extra.timings,
      restarted: cell.restarted ?? null,
      restored: extra.restored,
      createdAt: extra.createdAt,
      finishedAt: new Date().toISOString(),
    }
  }
}

/** Runs tasks one at a time, in the order they were given. */
class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve()
  #pending = 0

  /** Tasks given and not yet settled, the running one included. */
  get pending(): number {
    return this.#pending
  }

  run<T>(task: () => Promise<T>): Promise<T> {
    this.#pending += 1
    const result = this.#tail.then(task)
    this.#tail = result.catch(() => undefined)
    return result.finally(() => {
      this.#pending -= 1
    })
  }
}

/** Runs at most `limit` tasks at once; the others wait their turn, in order. */
class Limiter {
  readonly #limit: number
  readonly #waiting: (() => void)[] = []
  #running = 0

  constructor(limit: number) {
    this.#limit = limit
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#limit) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve))
    } else {
      this.#running += 1
    }
    try {
      return await task()
    } finally {
      const next = this.#waiting.shift()
      // The slot passes straight to the next task, so none can overtake it.
      if (next === undefined) this.#running -= 1
      else next()
    }
  }
}

function viewOf(record: SessionRecord): SessionView {
  return {
    id: record.id,
    language: record.language,
    state: record.state === 'deleted' ? 'cold' : record.state,
    createdAt: record.createdAt,
    lastActiveAt: record.lastActiveAt,
    executionCount: record.executionCount,
    warmAfterMs: record.warmAfterMs,
    coldAfterMs: record.coldAfterMs,
    limits: record.limits,
    lost: record.lostNames,
    transitions: record.transitions,
  }
}

function limitsOf(request: CreateSessionRequest): Record<string, number> {
  const limits: Record<string, number> = {}
  for (const [name, value] of Object.entries(request.limits ?? {})) {
    if (value !== undefined) limits[name] = value
  }
  if (request.timeoutMs !== undefined) limits['wallTimeMs'] = request.timeoutMs
  return limits
}

function isKernelLanguage(language: string): language is (typeof kernelLanguages)[number] {
  return (kernelLanguages as readonly string[]).includes(language)
}

function clamp(valueMs: number, maxMs: number): number {
  return Math.min(Math.max(0, valueMs), maxMs)
}

function sameNamespace(a: Namespace, b: Namespace): boolean {
  return a.userId === b.userId && a.chatId === b.chatId
}

function notFound(id: string): AppError {
  return new AppError('not_found', `no session ${id} here`)
}

async function translate<T>(task: () => T | Promise<T>): Promise<T> {
  try {
    return await task()
  } catch (error) {
    if (error instanceof AppError) throw error
    if (error instanceof SandboxError) {
      throw new AppError(error.code, error.message, error.details, { cause: error })
    }
    throw new AppError('internal', 'the session failed inside hutch', {}, { cause: error })
  }
}
