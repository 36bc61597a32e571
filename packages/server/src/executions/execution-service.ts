import type { MimeBundle, NetworkMode, OutputFile, RunError } from '@hutch/protocol'
import { resolveLanguage } from '@hutch/protocol'
import type { RequestLimits } from '@hutch/protocol/schemas'
import type {
  InputFile,
  Logger,
  NotebookCell,
  PreparedKind,
  RunResult,
  Sandbox,
  Slot,
} from '@hutch/sandbox'
import { SandboxError } from '@hutch/sandbox'
import { AppError } from '../app-error.ts'
import type { Namespace } from '../namespace.ts'
import type { WarmPool } from '../pool/warm-pool.ts'
import type { Storage } from '../storage/storage.ts'
import type {
  ExecutionOutcome,
  ExecutionRecord,
  ExecutionRepository,
  RunPhaseStatus,
} from './execution-repository.ts'
import type { RunQueue } from './run-queue.ts'

/** One execution as the native API takes it (DESIGN section 5). */
export interface ExecuteRequest {
  language: string
  code?: string | undefined
  path?: string | undefined
  /** Names of files in the caller's namespace to copy into the workdir. */
  files?: readonly string[] | undefined
  /** Files given inline, by name. */
  inlineFiles?: Readonly<Record<string, string>> | undefined
  stdin?: string | undefined
  args?: readonly string[] | undefined
  env?: Readonly<Record<string, string>> | undefined
  timeoutMs?: number | undefined
  limits?: RequestLimits | undefined
  network?: NetworkMode | undefined
  /**
   * Copy every file of the namespace in (up to the input cap), as the NVIDIA toolkit's clients
   * expect: their files persist from one run to the next without being named.
   */
  allNamespaceFiles?: boolean | undefined
}

/** What an execution returns: the run result with its record's id and times. */
export interface ExecuteResult {
  id: string
  status: ExecutionRecord['status']
  exitCode: number | null
  signal: string | null
  stdout: string
  stderr: string
  stdoutTruncated: boolean
  stderrTruncated: boolean
  results: MimeBundle[]
  error: RunError | null
  reason: string | null
  outputFiles: OutputFile[]
  /** Files the run made that were not copied out (links, special files, caps), and why. */
  skippedFiles: { path: string; reason: string }[]
  usage: { wallMs: number; cpuMs: number; peakMemoryBytes: number } | null
  timings: { queueMs: number; syncInMs: number; runMs: number; syncOutMs: number } | null
  createdAt: string
  finishedAt: string | null
  /** A notebook's code cells (a `.ipynb` path, or a notebook as code), as the run returned them. */
  cells?: NotebookCell[]
}

/** Live output of one execution, for streaming. */
export interface ExecuteHooks {
  onStart?: (id: string) => void
  onStdout?: (chunk: Buffer) => void
  onStderr?: (chunk: Buffer) => void
  signal?: AbortSignal
}

/** Observers of finished executions (metrics). */
export interface ExecutionObserver {
  executionFinished(language: string, status: string, durationMs: number): void
}

/** Limits of the execution service itself. */
export interface ExecutionServiceOptions {
  maxInputFiles: number
  maxOutputFileBytes: number
  /** How long a run waits for a warm sandbox once admitted, milliseconds. */
  sandboxWaitMs: number
  allowedNetworks: readonly NetworkMode[]
  defaultNetwork: NetworkMode
  /** Builds the download URL of a file in a namespace. */
  fileUrl: (namespace: Namespace, path: string) => string
  /**
   * How long the end of a run the database could not take is kept in memory and retried,
   * milliseconds, before it is given up (logged as an error).
   */
  recordRetryMs: number
}

/**
 * The end of a run the database was unavailable for: its record stays unfinished until this is
 * written, which is retried with backoff.
 */
interface PendingFinish {
  readonly id: string
  readonly outcome: ExecutionOutcome
  /** `Date.now()` after which a failed attempt is the last. */
  readonly giveUpAt: number
  nextDelayMs: number
  timer: NodeJS.Timeout | undefined
  /** The attempt under way; the record once written, undefined while it is still pending. */
  attempt: Promise<ExecutionRecord | undefined> | undefined
}

const firstRecordRetryDelayMs = 250
const maxRecordRetryDelayMs = 5_000

/**
 * Runs one-shot executions: admission through the run queue, input files from storage into a
 * sandbox (from the warm pool when its limits fit), output files back to storage, and a record
 * of every step.
 */
export class ExecutionService {
  readonly #sandbox: Sandbox
  readonly #repository: ExecutionRepository
  readonly #storage: Storage
  readonly #pool: WarmPool<Slot> | undefined
  readonly #languagePools: ReadonlyMap<PreparedKind, WarmPool<Slot>>
  readonly #queue: RunQueue
  readonly #observer: ExecutionObserver | undefined
  readonly #options: ExecutionServiceOptions
  readonly #logger: Logger
  readonly #running = new Set<AbortController>()
  readonly #pendingFinishes = new Map<string, PendingFinish>()
  #closed = false

  constructor(collaborators: {
    sandbox: Sandbox
    repository: ExecutionRepository
    storage: Storage
    pool?: WarmPool<Slot> | undefined
    /** Pools of fast-path sandboxes made for one language other than python (bash). */
    languagePools?: ReadonlyMap<PreparedKind, WarmPool<Slot>>
    queue: RunQueue
    observer?: ExecutionObserver | undefined
    options: ExecutionServiceOptions
    logger: Logger
  }) {
    this.#sandbox = collaborators.sandbox
    this.#repository = collaborators.repository
    this.#storage = collaborators.storage
    this.#pool = collaborators.pool
    this.#languagePools = collaborators.languagePools ?? new Map()
    this.#queue = collaborators.queue
    this.#observer = collaborators.observer
    this.#options = collaborators.options
    this.#logger = collaborators.logger
  }

  async execute(
    namespace: Namespace,
    request: ExecuteRequest,
    hooks: ExecuteHooks = {},
  ): Promise<ExecuteResult> {
    const network = request.network ?? this.#options.defaultNetwork
    if (!this.#options.allowedNetworks.includes(network)) {
      throw new AppError('invalid_request', `network ${network} is not allowed on this server`, {
        allowed: this.#options.allowedNetworks,
      })
    }
    const limits = this.#limitsOf(request)
    const inputNames =
      request.allNamespaceFiles === true
        ? (await this.#storage.list(namespace, { limit: this.#options.maxInputFiles })).files.map(
            (file) => file.path,
          )
        : [...new Set(request.files ?? [])]
    if (inputNames.length > this.#options.maxInputFiles) {
      throw new AppError('invalid_request', `at most ${this.#options.maxInputFiles} input files`)
    }
    const missing: string[] = []
    for (const name of inputNames) {
      if ((await this.#storage.stat(namespace, name)) === undefined) missing.push(name)
    }
    if (missing.length > 0) {
      throw new AppError(
        'file_not_found',
        `not in this namespace: ${missing.join(', ')}; upload them first (PUT /v1/files/{path})`,
        { missing },
      )
    }
    const files: InputFile[] = [
      ...inputNames.map((name) => ({ path: name, body: this.#lazyBody(namespace, name) })),
      ...Object.entries(request.inlineFiles ?? {}).map(([name, content]) => ({
        path: name,
        content,
      })),
    ]
    const runOptions = {
      language: request.language,
      ...(request.code === undefined ? {} : { code: request.code }),
      ...(request.path === undefined ? {} : { path: request.path }),
      files,
      ...(request.stdin === undefined ? {} : { stdin: request.stdin }),
      ...(request.args === undefined ? {} : { args: request.args }),
      ...(request.env === undefined ? {} : { env: request.env }),
      limits,
      network,
    }
    // Bad input (language, path, limits) fails here, before a record or a queue slot is taken.
    await this.#translate(() => this.#sandbox.check(runOptions))
    // The language's own name, never the caller's spelling ('PyThOn', 'js'): it labels metrics,
    // and a label per spelling would let callers mint time series at will.
    const resolved = resolveLanguage(request.language)
    const language = resolved ?? request.language
    // Python code that imports only the standard library takes a sandbox forked from the fork
    // server with nothing preloaded, when there is a pool of those.
    const stdlibPool = resolved === 'python' ? this.#languagePools.get('python-stdlib') : undefined
    const stdlib =
      stdlibPool !== undefined && this.#sandbox.fitsPrepared(runOptions, 'python-stdlib')
    const languagePool = stdlib
      ? stdlibPool
      : resolved === undefined
        ? undefined
        : this.#languagePools.get(resolved)
    const pool = languagePool ?? this.#pool
    // Asked once: what fits python-stdlib's pool was asked above.
    const usePool =
      stdlib ||
      (pool !== undefined &&
        this.#sandbox.fitsPrepared(runOptions, languagePool === undefined ? 'python' : resolved))
    const record = await this.#repository.create({
      id: crypto.randomUUID(),
      namespace,
      language,
      path: request.path ?? '',
      code: request.code ?? '',
      inputFiles: [...inputNames, ...Object.keys(request.inlineFiles ?? {})],
    })
    hooks.onStart?.(record.id)
    const started = performance.now()
    const stopper = new AbortController()
    this.#running.add(stopper)
    const signal =
      hooks.signal === undefined ? stopper.signal : AbortSignal.any([stopper.signal, hooks.signal])
    let outcome: RunResult | undefined
    const phases = new PhaseRecorder(record.id, this.#repository, this.#logger)
    try {
      outcome = await this.#queue.run(async () => {
        const lease = usePool
          ? await pool?.acquire({ signal, timeoutMs: this.#options.sandboxWaitMs })
          : undefined
        try {
          return await this.#translate(() =>
            this.#sandbox.run({
              ...runOptions,
              ...(lease === undefined ? {} : { slot: lease.item }),
              ...(hooks.onStdout === undefined ? {} : { onStdout: hooks.onStdout }),
              ...(hooks.onStderr === undefined ? {} : { onStderr: hooks.onStderr }),
              signal,
              onPhase: (phase) => phases.enter(phase),
              onOutputFile: async (file) => {
                await this.#storage.put(namespace, file.path, file.content, {
                  maxBytes: this.#options.maxOutputFileBytes,
                  mediaType: file.mediaType,
                })
              },
            }),
          )
        } finally {
          await lease?.release()
        }
      })
    } catch (error) {
      const appError = toAppError(error)
      const unrecordedPhases = await phases.stop()
      this.#observer?.executionFinished(language, 'failed', performance.now() - started)
      await this.#finish(record.id, {
        ...failedOutcome(appError.message),
        unrecordedPhases,
      }).catch((finishError: unknown) => {
        if (isUnavailable(finishError)) return
        this.#logger.error(
          { err: finishError, executionId: record.id },
          'could not record a failure',
        )
      })
      throw appError
    } finally {
      this.#running.delete(stopper)
    }
    const unrecordedPhases = await phases.stop()
    this.#observer?.executionFinished(outcome.language, outcome.status, performance.now() - started)
    const finished = await this.#finish(record.id, {
      status: outcome.status,
      exitCode: outcome.exitCode,
      signal: outcome.signal,
      stdout: outcome.stdout,
      stderr: outcome.stderr,
      stdoutTruncated: outcome.stdoutTruncated,
      stderrTruncated: outcome.stderrTruncated,
      error: outcome.error ?? null,
      reason: outcome.reason ?? null,
      outputFiles: outcome.outputFiles,
      skippedFiles: outcome.skippedFiles,
      usage: outcome.usage,
      timings: outcome.timings,
      unrecordedPhases,
    }).catch((error: unknown) => {
      if (!isUnavailable(error)) throw error
      // The run ended and its files are stored; only its record waits. The answer is still a
      // 503 (the record is not durable yet: a restart before the database returns fails it),
      // but it says so, so that a client fetches the record rather than running the code again.
      throw new AppError(
        'backend_unavailable',
        `${error.message}; the run ended, and its record is written once the database returns (GET /v1/executions/${record.id})`,
        { executionId: record.id },
        { cause: error },
      )
    })
    return {
      ...this.toResult(namespace, finished),
      results: outcome.results,
      ...(outcome.cells === undefined ? {} : { cells: outcome.cells }),
    }
  }

  /** Stops every running execution (they end `killed`, with `reason`); for shutdown. */
  stopAll(reason: string): void {
    for (const stopper of this.#running) stopper.abort(new Error(reason))
  }

  /**
   * For shutdown, once no execution runs: one last attempt at writing each end the database could
   * not take yet; what still fails is logged as an error (the next start fails those records).
   */
  async close(): Promise<void> {
    this.#closed = true
    await Promise.all(
      [...this.#pendingFinishes.values()].flatMap((pending) => pending.attempt ?? []),
    )
    await Promise.all(
      [...this.#pendingFinishes.values()].map((pending) => this.#retryFinish(pending)),
    )
  }

  /** Executions of this namespace, newest first. */
  async list(
    namespace: Namespace,
    page: { limit: number; cursor?: string },
  ): Promise<{ items: ExecuteResult[]; nextCursor: string | null }> {
    const listed = await this.#repository.list(namespace, page)
    const records = await Promise.all(listed.items.map((record) => this.#current(record)))
    return {
      items: records.map((record) => this.toResult(namespace, record)),
      nextCursor: listed.nextCursor,
    }
  }

  /** An execution of this namespace, as the API returns it. */
  async get(namespace: Namespace, id: string): Promise<ExecuteResult> {
    const record = await this.#repository.get(namespace, id)
    if (record === undefined) throw new AppError('not_found', `no execution ${id} here`)
    return this.toResult(namespace, await this.#current(record))
  }

  /** The record shaped as the API returns it, with download URLs. */
  toResult(namespace: Namespace, record: ExecutionRecord): ExecuteResult {
    return {
      id: record.id,
      status: record.status,
      exitCode: record.exitCode,
      signal: record.signal,
      stdout: record.stdout,
      stderr: record.stderr,
      stdoutTruncated: record.stdoutTruncated,
      stderrTruncated: record.stderrTruncated,
      results: [],
      error: record.error,
      reason: record.reason,
      outputFiles: record.outputFiles.map((file) => ({
        ...file,
        url: this.#options.fileUrl(namespace, file.path),
      })),
      skippedFiles: record.skippedFiles,
      usage: record.usage,
      timings: record.timings,
      createdAt: record.createdAt,
      finishedAt: record.finishedAt,
    }
  }

  /**
   * Records how an execution ended. When the database is unavailable the end is kept, and written
   * with backoff until it returns (or `recordRetryMs` passes); the error is thrown all the same.
   */
  async #finish(id: string, outcome: ExecutionOutcome): Promise<ExecutionRecord> {
    try {
      return await this.#repository.finish(id, outcome)
    } catch (error) {
      if (isUnavailable(error) && !this.#closed) {
        const pending: PendingFinish = {
          id,
          outcome,
          giveUpAt: Date.now() + this.#options.recordRetryMs,
          nextDelayMs: firstRecordRetryDelayMs,
          timer: undefined,
          attempt: undefined,
        }
        this.#pendingFinishes.set(id, pending)
        this.#logger.warn(
          { err: error, executionId: id, status: outcome.status },
          'the database is unavailable: the end of the execution is kept and written when it returns',
        )
        this.#scheduleFinish(pending)
      }
      throw error
    }
  }

  #scheduleFinish(pending: PendingFinish): void {
    const delayMs = Math.min(pending.nextDelayMs, Math.max(0, pending.giveUpAt - Date.now()))
    pending.nextDelayMs = Math.min(pending.nextDelayMs * 2, maxRecordRetryDelayMs)
    // Unreferenced: a kept end does not hold the process up; shutdown makes its last attempt.
    pending.timer = setTimeout(() => {
      pending.timer = undefined
      void this.#retryFinish(pending)
    }, delayMs).unref()
  }

  /** An attempt at writing a kept end now, or the one under way. */
  #retryFinish(pending: PendingFinish): Promise<ExecutionRecord | undefined> {
    if (pending.attempt !== undefined) return pending.attempt
    clearTimeout(pending.timer)
    pending.timer = undefined
    pending.attempt = this.#attemptFinish(pending).finally(() => {
      pending.attempt = undefined
    })
    return pending.attempt
  }

  async #attemptFinish(pending: PendingFinish): Promise<ExecutionRecord | undefined> {
    const fields = { executionId: pending.id, status: pending.outcome.status }
    try {
      const record = await this.#repository.finish(pending.id, pending.outcome)
      this.#pendingFinishes.delete(pending.id)
      this.#logger.info(fields, 'the database is back: recorded the end of the execution it missed')
      return record
    } catch (error) {
      if (isUnavailable(error) && !this.#closed && Date.now() < pending.giveUpAt) {
        this.#scheduleFinish(pending)
        return undefined
      }
      this.#pendingFinishes.delete(pending.id)
      // The operator needs to know which runs' files are stored while their records do not list
      // them (a start fails an unfinished record).
      this.#logger.error(
        {
          err: error,
          ...fields,
          outputFiles: pending.outcome.outputFiles.map((file) => file.path),
        },
        `could not record the end of an execution: ${this.#whyNotRecorded(error)}`,
      )
      return undefined
    }
  }

  #whyNotRecorded(error: unknown): string {
    if (isUnavailable(error)) {
      const when = this.#closed
        ? 'the server is shutting down'
        : `it stayed unavailable for ${this.#options.recordRetryMs} ms`
      return `the database is unavailable and ${when}; the record stays unfinished while the output files are stored`
    }
    const endedAs = error instanceof AppError ? error.details['status'] : undefined
    return typeof endedAs === 'string'
      ? `the record had already ended (${endedAs}): an attempt the database took without answering, or another server's start, ended it`
      : 'the database refused it'
  }

  /** The record, with its end written first when this process holds it and the database answers. */
  async #current(record: ExecutionRecord): Promise<ExecutionRecord> {
    const pending = this.#pendingFinishes.get(record.id)
    if (pending === undefined || record.finishedAt !== null) return record
    return (await this.#retryFinish(pending)) ?? record
  }

  #limitsOf(request: ExecuteRequest): Record<string, number> {
    const limits: Record<string, number> = {}
    for (const [name, value] of Object.entries(request.limits ?? {})) {
      if (value !== undefined) limits[name] = value
    }
    if (request.timeoutMs !== undefined) {
      limits['wallTimeMs'] = request.timeoutMs
      limits['cpuTimeMs'] ??= request.timeoutMs
    }
    return limits
  }

  #lazyBody(namespace: Namespace, name: string): AsyncIterable<Uint8Array> {
    const storage = this.#storage
    return {
      async *[Symbol.asyncIterator]() {
        const found = await storage.get(namespace, name)
        if (found === undefined) throw new AppError('file_not_found', `${name} disappeared`)
        yield* found.body
      },
    }
  }

  async #translate<T>(task: () => T | Promise<T>): Promise<T> {
    try {
      return await task()
    } catch (error) {
      throw toAppError(error)
    }
  }
}

function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error
  if (error instanceof SandboxError) {
    return new AppError(error.code, error.message, error.details, { cause: error })
  }
  return new AppError('internal', 'the execution failed inside hutch', {}, { cause: error })
}

function isUnavailable(error: unknown): error is AppError {
  return error instanceof AppError && error.code === 'backend_unavailable'
}

function failedOutcome(reason: string): ExecutionOutcome {
  return {
    status: 'failed',
    exitCode: null,
    signal: null,
    stdout: '',
    stderr: '',
    stdoutTruncated: false,
    stderrTruncated: false,
    error: null,
    reason,
    outputFiles: [],
    usage: null,
    timings: null,
  }
}

/**
 * How long a run stays in a phase before the phase is written to its record. A run that is past
 * its phases sooner (most runs: a trivial one takes milliseconds) writes them all with its end,
 * each with the time it began, rather than one database write per phase.
 */
export const phaseRecordDelayMs = 25

/**
 * Records a run's phases (syncing in, running, syncing out) in order: those the run is still in
 * after `phaseRecordDelayMs` in one write then, the rest with the record's end. Once a write
 * fails, the rest wait for the end too: each would wait out the database's timeout again, and the
 * answer with it.
 */
class PhaseRecorder {
  readonly #executionId: string
  readonly #repository: ExecutionRepository
  readonly #logger: Logger
  readonly #pending: { status: RunPhaseStatus; at: string }[] = []
  #writing: Promise<void> = Promise.resolve()
  #timer: NodeJS.Timeout | undefined
  #failed = false
  #stopped = false

  constructor(executionId: string, repository: ExecutionRepository, logger: Logger) {
    this.#executionId = executionId
    this.#repository = repository
    this.#logger = logger
  }

  enter(status: RunPhaseStatus): void {
    if (this.#stopped) return
    this.#pending.push({ status, at: new Date().toISOString() })
    if (this.#failed || this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#writing = this.#writing.then(() => this.#write())
    }, phaseRecordDelayMs)
  }

  /** Stops recording; returns the phases not written, for the record's end. */
  async stop(): Promise<{ status: RunPhaseStatus; at: string }[]> {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#writing
    return this.#pending.splice(0)
  }

  async #write(): Promise<void> {
    if (this.#failed || this.#stopped || this.#pending.length === 0) return
    const phases = [...this.#pending]
    try {
      await this.#repository.recordPhases(this.#executionId, phases)
      this.#pending.splice(0, phases.length)
    } catch (error) {
      this.#failed = true
      this.#logger.warn({ err: error, executionId: this.#executionId }, 'could not record a phase')
    }
  }
}
