import { randomUUID } from 'node:crypto'
import path from 'node:path'
import type { MimeBundle, NetworkMode, OutputFile, RunError, RunStatus } from '@hutch/protocol'
import { languages, networkModes, resolveLanguage, type Language } from '@hutch/protocol'
import type { Backend, ProcessResult, Slot } from './backends/backend.ts'
import type { BubblewrapOptions } from './backends/bubblewrap/bubblewrap-backend.ts'
import { BubblewrapBackend } from './backends/bubblewrap/bubblewrap-backend.ts'
import { ForkServerBackend } from './backends/forkserver/fork-server-backend.ts'
import { parsePythonError } from './errors/python-traceback.ts'
import type { OutputCaps, OutputSink } from './files/output-files.ts'
import { collectOutputFiles, snapshotTree, type TreeSnapshot } from './files/output-files.ts'
import { validateRelativePath } from './files/paths.ts'
import { copyHostFileInto, writeFileInto } from './files/write-files.ts'
import type { Logger } from './logger.ts'
import { silentLogger } from './logger.ts'
import type { Limits } from './policy/limits.ts'
import { defaultLimits, defaultMaxLimits, resolveLimits } from './policy/limits.ts'
import type { Mount } from './policy/policy.ts'
import { sandboxWorkdir } from './policy/policy.ts'
import type { RuntimeOptions } from './runtimes/runtimes.ts'
import { createRuntimes } from './runtimes/runtimes.ts'
import { matplotlibFontCache } from './runtimes/matplotlib-font-cache.ts'
import { importsOnlyStandardLibrary, standardLibraryModules } from './runtimes/stdlib-imports.ts'
import { defaultCacheDir } from './seccomp/seccomp.ts'
import type { Runtime } from './runtimes/runtime.ts'
import { SandboxError } from './sandbox-error.ts'
import { pythonModuleRequirements } from './host/requirements.ts'
import type { Kernel, KernelOptions, KernelLanguage } from './kernels/kernel.ts'
import type { KernelDriver } from './kernels/kernel-drivers.ts'
import { loadKernelDrivers } from './kernels/kernel-drivers.ts'
import { openKernel } from './kernels/open-kernel.ts'
import type { NotebookCell } from './notebooks/run-notebook.ts'
import { notebookPath, runNotebook } from './notebooks/run-notebook.ts'
import type { KernelTimings } from './kernels/sandbox-kernel.ts'
import { defaultKernelTimings } from './kernels/sandbox-kernel.ts'

/** A file put in the workdir before the run: given inline, or copied from a host path. */
export type InputFile =
  | { path: string; content: string | Uint8Array }
  | { path: string; hostPath: string }
  | { path: string; body: AsyncIterable<Uint8Array> }

/** The stages of a run, in order, for callers that record them. */
export type RunPhase = 'syncing_in' | 'running' | 'syncing_out'

/** One program to run. */
export interface RunOptions {
  /** A language or alias: python, bash (shell, sh), javascript (js, node), typescript (ts), go. */
  language: string
  /** The program's source. Written to `path` (or the language's default file). */
  code?: string
  /** Where the program is, relative to the workdir; with no `code`, a file among `files`. */
  path?: string
  files?: readonly InputFile[]
  stdin?: string | Uint8Array
  args?: readonly string[]
  /** Extra environment variables of the program. */
  env?: Readonly<Record<string, string>>
  /** Limits asked for; missing ones take the sandbox's defaults, all are clamped to its maxima. */
  limits?: Partial<Record<keyof Limits, unknown>>
  network?: NetworkMode
  /** Extra host paths for this run. */
  mounts?: readonly Mount[]
  onStdout?: (chunk: Buffer) => void
  onStderr?: (chunk: Buffer) => void
  /** Copies new and changed files into this host directory after the run. */
  outputDir?: string
  /** Receives each new and changed file after the run, as a stream. */
  onOutputFile?: OutputSink
  /** Called as the run enters each phase. */
  onPhase?: (phase: RunPhase) => void
  /**
   * A sandbox prepared ahead (from a warm pool) with limits equal to this run's memory, pids
   * and disk limits; it is used once and released. Without one, a sandbox is prepared now.
   */
  slot?: Slot
  signal?: AbortSignal
}

/** Everything a run produced. Wire names of DESIGN section 5. */
export interface RunResult {
  id: string
  language: string
  status: RunStatus
  exitCode: number | null
  signal: string | null
  stdout: string
  stderr: string
  stdoutTruncated: boolean
  stderrTruncated: boolean
  results: MimeBundle[]
  error?: RunError
  outputFiles: OutputFile[]
  /** Files the run made that were not copied out, and why. */
  skippedFiles: { path: string; reason: string }[]
  usage: { wallMs: number; cpuMs: number; peakMemoryBytes: number }
  timings: { queueMs: number; syncInMs: number; runMs: number; syncOutMs: number }
  /** Why hutch stopped the run, when it did. */
  reason?: string
  /** A notebook's code cells and what each produced (see `runNotebook`). */
  cells?: NotebookCell[]
}

/** How a `Sandbox` is set up. */
export interface SandboxOptions {
  backend?: Backend
  bubblewrap?: BubblewrapOptions
  runtimes?: RuntimeOptions
  /** Limits of a run that asks for none. */
  defaultLimits?: Partial<Limits>
  /** The most a run may ask for. */
  maxLimits?: Partial<Limits>
  /** Network of a run that names none; default `none`. */
  defaultNetwork?: NetworkMode
  /** How long kernels wait between the steps of an interrupt, and for their interpreter. */
  kernelTimings?: Partial<KernelTimings>
  /** Caps on the files copied out of one run. */
  outputCaps?: Partial<OutputCaps>
  /**
   * The fast path (DESIGN section 4): sandboxes forked from a fork server that has imported the
   * heavy Python libraries, for runs with network `none` or `loopback` and no extra mounts.
   * Off by default in the library; `true` takes the defaults.
   */
  fastPath?: boolean | FastPathOptions
  logger?: Logger
}

/** How the fast path's fork servers are run. */
export interface FastPathOptions {
  /** Python modules a fork server imports before forking; default numpy, pandas, matplotlib.pyplot. */
  preload?: readonly string[]
  /** A fork server is replaced after this many sandboxes; default 5000. */
  maxRunsPerServer?: number
  /** ... or after this long, milliseconds; default 10 minutes. */
  maxServerAgeMs?: number
}

const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/
const maxArgs = 256
const maxArgBytes = 64 * 1024
const maxEnvEntries = 128
const maxEnvValueBytes = 32 * 1024
const maxCodeBytes = 10 * 1024 * 1024
/** Names a caller may not set: the sandbox decides them. */
const reservedEnv = new Set(['LD_PRELOAD', 'LD_LIBRARY_PATH', 'LD_AUDIT'])

const defaultOutputCaps: OutputCaps = {
  maxFiles: 100,
  maxFileBytes: 64 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
  maxDepth: 16,
  maxEntries: 10_000,
}

/**
 * Runs untrusted programs, each in a fresh sandbox that a backend enforces. Results are data: a
 * program failing, timing out or running out of memory is a `RunResult`, never an exception;
 * bad input is a `SandboxError`.
 *
 * ```ts
 * const sandbox = await Sandbox.create()
 * const result = await sandbox.run({ language: 'python', code: 'print(1 + 1)' })
 * ```
 */
export class Sandbox {
  readonly #backend: Backend
  readonly #fastPath: FastPath | undefined
  /** The python runtime's standard library modules; none without the fast path. */
  readonly #stdlibModules: ReadonlySet<string>
  readonly #runtimes: Record<string, Runtime>
  readonly #defaults: Limits
  readonly #maxima: Limits
  readonly #defaultNetwork: NetworkMode
  readonly #outputCaps: OutputCaps
  readonly #logger: Logger
  readonly #releasing = new Set<Promise<void>>()
  readonly #kernelTimings: KernelTimings
  #kernelDrivers: Promise<Record<KernelLanguage, KernelDriver>> | undefined

  private constructor(
    backend: Backend,
    fastPath: FastPath | undefined,
    stdlibModules: ReadonlySet<string>,
    options: SandboxOptions,
  ) {
    this.#stdlibModules = stdlibModules
    this.#backend = backend
    this.#fastPath = fastPath
    this.#runtimes = createRuntimes(options.runtimes)
    this.#maxima = Object.freeze({ ...defaultMaxLimits, ...options.maxLimits })
    this.#defaults = Object.freeze(
      resolveLimits(options.defaultLimits, defaultLimits, this.#maxima),
    )
    this.#defaultNetwork = options.defaultNetwork ?? 'none'
    this.#outputCaps = Object.freeze({ ...defaultOutputCaps, ...options.outputCaps })
    this.#logger = options.logger ?? silentLogger
    this.#kernelTimings = Object.freeze({ ...defaultKernelTimings, ...options.kernelTimings })
  }

  /** Sets up the backend (bubblewrap by default), refusing a host that cannot enforce it. */
  static async create(options: SandboxOptions = {}): Promise<Sandbox> {
    const backend =
      options.backend ??
      (await BubblewrapBackend.create({
        ...(options.logger === undefined ? {} : { logger: options.logger }),
        ...options.bubblewrap,
      }))
    const pythonPath =
      options.runtimes?.virtualEnv === undefined
        ? (options.runtimes?.pythonPath ?? '/usr/bin/python3')
        : path.join(options.runtimes.virtualEnv, 'bin/python')
    const fontCache =
      options.runtimes?.pythonFiles === undefined
        ? await matplotlibFontCache(pythonPath, defaultCacheDir(), options.logger ?? silentLogger)
        : undefined
    const resolved: SandboxOptions = {
      ...options,
      runtimes: {
        ...options.runtimes,
        ...(fontCache === undefined ? {} : { pythonFiles: [fontCache] }),
      },
    }
    const fastPath =
      options.fastPath === undefined || options.fastPath === false
        ? undefined
        : await createFastPath(
            pythonPath,
            resolved,
            options.fastPath === true ? {} : options.fastPath,
          )
    const stdlibModules =
      fastPath === undefined
        ? new Set<string>()
        : await standardLibraryModules(pythonPath).catch((error: unknown) => {
            // Without the list every python run takes the fork server with the libraries.
            options.logger?.warn({ err: error }, 'cannot list the standard library modules')
            return new Set<string>()
          })
    return new Sandbox(backend, fastPath, stdlibModules, resolved)
  }

  /**
   * Opens a stateful kernel (python, bash, javascript) in a sandbox of its own, validated and
   * limited as a run is. Close it when done: it holds its sandbox until then.
   */
  async openKernel(options: KernelOptions): Promise<Kernel> {
    const request = this.#validate({
      language: options.language,
      code: '',
      ...(options.files === undefined ? {} : { files: options.files }),
      ...(options.env === undefined ? {} : { env: options.env }),
      ...(options.limits === undefined ? {} : { limits: options.limits }),
      ...(options.network === undefined ? {} : { network: options.network }),
    })
    this.#kernelDrivers ??= loadKernelDrivers()
    const drivers = this.#kernelDrivers
    return openKernel(
      {
        backend: this.#backend,
        drivers: () => drivers,
        outputCaps: this.#outputCaps,
        timings: this.#kernelTimings,
        logger: this.#logger,
      },
      { ...request, restoreState: options.restoreState, preload: options.preload },
    )
  }

  get backend(): Backend {
    return this.#backend
  }

  /** The limits a run gets when it asks for none, and the most it may ask for. */
  get limits(): { defaults: Readonly<Limits>; maxima: Readonly<Limits> } {
    return { defaults: this.#defaults, maxima: this.#maxima }
  }

  /** Resolves a run's requested limits against this sandbox's defaults and maxima. */
  resolveLimits(requested?: Partial<Record<keyof Limits, unknown>>): Limits {
    return resolveLimits(requested, this.#defaults, this.#maxima)
  }

  /** The fast path's fork servers by language, when it is on. */
  get fastPath(): FastPath | undefined {
    return this.#fastPath
  }

  /**
   * Prepares a sandbox ahead of a run, for a warm pool; `limits` default to the defaults and
   * `network` to the default network (a fast-path sandbox is made for one network mode).
   */
  prepare(
    limits: Limits = this.#defaults,
    network: NetworkMode = this.#defaultNetwork,
    kind: PreparedKind = 'python',
  ): Promise<Slot> {
    return this.#prepareFor(randomUUID(), limits, network, [], kind)
  }

  /**
   * Whether a sandbox from `prepare(defaults, defaultNetwork, kind)` can run this request: a warm
   * pool of that kind lends one only then. Bad input is a `SandboxError`, as from `check`.
   */
  fitsPrepared(options: RunOptions, kind: PreparedKind = 'python'): boolean {
    const request = this.#validate(options)
    // A notebook takes a sandbox of its own, with loopback (see runNotebook).
    if (notebookPath(options) !== undefined) return false
    if (!fixedLimitsEqual(request.limits, this.#defaults)) return false
    if (this.#fastBackend(this.#defaults, this.#defaultNetwork, [], kind) === undefined) {
      return kind !== 'python-stdlib'
    }
    // A fast-path sandbox is made for one image and network, without extra mounts; python's
    // image runs any python code, python-stdlib's only code that imports no more than the
    // standard library.
    const image = kind === 'python-stdlib' ? this.#imageOf(request) : request.runtime.language
    return image === kind && request.network === this.#defaultNetwork && request.mounts.length === 0
  }

  /**
   * The fast path's image for a run: its language's, or for python code that imports only the
   * standard library, given no files (which it could import), the image with nothing preloaded.
   */
  #imageOf(request: ValidatedRun): PreparedKind {
    const language = request.runtime.language
    if (
      language === 'python' &&
      this.#stdlibModules.size > 0 &&
      request.files.length === 0 &&
      request.code !== undefined &&
      importsOnlyStandardLibrary(request.code, this.#stdlibModules)
    ) {
      return 'python-stdlib'
    }
    return language
  }

  #fastBackend(
    limits: Limits,
    network: NetworkMode,
    mounts: readonly Mount[],
    kind: PreparedKind,
  ): ForkServerBackend | undefined {
    const backend = this.#fastPath?.[kind as FastImage]
    // Below 3 processes not even the sandbox's init and its program fit: the slow path, where
    // bwrap cannot start either, reports the run as killed by its process limit.
    if (backend === undefined || limits.pids < 3 || !backend.serves(network, mounts)) {
      return undefined
    }
    return backend
  }

  #prepareFor(
    runId: string,
    limits: Limits,
    network: NetworkMode,
    mounts: readonly Mount[],
    kind: PreparedKind,
  ): Promise<Slot> {
    const fast = this.#fastBackend(limits, network, mounts, kind)
    if (fast !== undefined && (network === 'none' || network === 'loopback')) {
      return fast.prepare({ runId, limits, network }).catch((error: unknown) => {
        // A fork server that cannot start costs speed, not service.
        if (!(error instanceof SandboxError) || error.code !== 'backend_unavailable') throw error
        this.#logger.error({ err: error }, 'the fast path failed; this run takes the slow path')
        return this.#backend.prepare({ runId, limits })
      })
    }
    return this.#backend.prepare({ runId, limits })
  }

  /** Validates a run as `run` would, without running it: a `SandboxError` for bad input. */
  check(options: RunOptions): void {
    this.#validate(options)
  }

  async run(options: RunOptions): Promise<RunResult> {
    const notebook = notebookPath(options)
    if (notebook !== undefined) {
      return runNotebook(
        (run) => this.run(run),
        (limits) => this.resolveLimits(limits),
        options,
        notebook,
      )
    }
    const queuedAt = performance.now()
    let slot = options.slot
    try {
      const request = this.#validate(options)
      if (slot !== undefined && !slotFits(slot, request.limits)) {
        throw new SandboxError(
          'invalid_request',
          'the prepared sandbox has other memory, pids or disk limits than this run',
        )
      }
      if (
        slot?.network !== undefined &&
        (slot.network !== request.network || request.mounts.length > 0)
      ) {
        throw new SandboxError(
          'invalid_request',
          `the prepared sandbox is for network ${slot.network} without extra mounts`,
        )
      }
      slot ??= await this.#prepareFor(
        randomUUID(),
        request.limits,
        request.network,
        request.mounts,
        this.#imageOf(request),
      )
      return await this.#runIn(slot, request, options, queuedAt)
    } finally {
      // Every process of the run is dead by now; removing its workdir and cgroup need not hold
      // up the result. `close()` waits for what is still being removed.
      if (slot !== undefined) this.#releaseLater(slot)
    }
  }

  /** Waits until every finished run's sandbox is removed. Call before the process exits. */
  async close(): Promise<void> {
    while (this.#releasing.size > 0) await Promise.all(this.#releasing)
    await Promise.all(Object.values(this.#fastPath ?? {}).map((fast) => fast.close()))
  }

  #releaseLater(slot: Slot): void {
    const releasing = slot
      .release()
      .catch((error: unknown) => {
        this.#logger.error({ err: error, runId: slot.runId }, 'could not release a sandbox')
      })
      .finally(() => this.#releasing.delete(releasing))
    this.#releasing.add(releasing)
  }

  async #runIn(
    slot: Slot,
    request: ValidatedRun,
    options: RunOptions,
    queuedAt: number,
  ): Promise<RunResult> {
    const id = slot.runId
    options.onPhase?.('syncing_in')
    const syncInStart = performance.now()
    let before: Promise<TreeSnapshot>
    if (slot.putFiles !== undefined) {
      // Sent now, written by the sandbox's own user: its snapshot comes back while it runs.
      const { written } = await slot.putFiles([
        ...request.files.map((file) => ({
          path: file.path,
          content:
            'hostPath' in file
              ? { hostPath: file.hostPath }
              : 'body' in file
                ? file.body
                : file.content,
        })),
        ...(request.code === undefined ? [] : [{ path: request.codePath, content: request.code }]),
      ])
      before = written
    } else {
      const owner = { uid: slot.uid, gid: slot.gid }
      for (const file of request.files) {
        if ('hostPath' in file)
          await copyHostFileInto(slot.workdir, file.path, file.hostPath, owner)
        else if ('body' in file) await writeFileInto(slot.workdir, file.path, file.body, owner)
        else await writeFileInto(slot.workdir, file.path, file.content, owner)
      }
      if (request.code !== undefined) {
        await writeFileInto(slot.workdir, request.codePath, request.code, owner)
      }
      // Taken before the program runs: it could change the files under a later walk.
      before = Promise.resolve(await snapshotTree(slot.workdir, this.#outputCaps))
    }
    options.onPhase?.('running')
    const runStart = performance.now()
    const processResult = await slot.run({
      argv: request.runtime.command(
        path.posix.join(sandboxWorkdir, request.codePath),
        request.args,
      ),
      policy: {
        mounts: [...request.runtime.mounts, ...request.mounts],
        files: request.runtime.files,
        network: request.network,
        env: request.env,
        limits: request.limits,
      },
      ...(options.stdin === undefined ? {} : { stdin: options.stdin }),
      ...(options.onStdout === undefined ? {} : { onStdout: options.onStdout }),
      ...(options.onStderr === undefined ? {} : { onStderr: options.onStderr }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    })
    options.onPhase?.('syncing_out')
    const syncOutStart = performance.now()
    const collected = await collectOutputFiles(slot.workdir, await before, this.#outputCaps, {
      ...(options.outputDir === undefined ? {} : { destDir: options.outputDir }),
      ...(options.onOutputFile === undefined ? {} : { sink: options.onOutputFile }),
    })
    const finished = performance.now()
    return this.#result(id, request, processResult, collected, {
      queueMs: syncInStart - queuedAt,
      syncInMs: runStart - syncInStart,
      runMs: syncOutStart - runStart,
      syncOutMs: finished - syncOutStart,
    })
  }

  #result(
    id: string,
    request: ValidatedRun,
    processResult: ProcessResult,
    collected: Awaited<ReturnType<typeof collectOutputFiles>>,
    timings: RunResult['timings'],
  ): RunResult {
    const error =
      request.runtime.language === 'python' && processResult.status !== 'ok'
        ? parsePythonError(processResult.stderr, {
            ...(request.code === undefined ? {} : { code: request.code }),
            codePath: path.posix.join(sandboxWorkdir, request.codePath),
            installedModules: pythonModuleRequirements.map((r) => r.module),
          })
        : undefined
    const round = (ms: number): number => Math.round(ms * 100) / 100
    return {
      id,
      language: request.runtime.language,
      status: processResult.status,
      exitCode: processResult.exitCode,
      signal: processResult.signal,
      stdout: processResult.stdout,
      stderr: processResult.stderr,
      stdoutTruncated: processResult.stdoutTruncated,
      stderrTruncated: processResult.stderrTruncated,
      results: [],
      ...(error === undefined ? {} : { error }),
      outputFiles: collected.files.map((file) => ({
        path: file.path,
        mediaType: file.mediaType,
        size: file.size,
      })),
      skippedFiles: collected.skipped,
      usage: processResult.usage,
      timings: {
        queueMs: round(timings.queueMs),
        syncInMs: round(timings.syncInMs),
        runMs: round(timings.runMs),
        syncOutMs: round(timings.syncOutMs),
      },
      ...(processResult.reason === undefined ? {} : { reason: processResult.reason }),
    }
  }

  #validate(options: RunOptions): ValidatedRun {
    const language = resolveLanguage(String(options.language))
    if (language === undefined) {
      throw new SandboxError(
        'unsupported_language',
        `unknown language ${JSON.stringify(String(options.language).slice(0, 40))}; use one of ${languages.join(', ')}`,
      )
    }
    const runtime = this.#runtimes[language]
    if (runtime === undefined) {
      throw new SandboxError('unsupported_language', `no runtime for ${language}`)
    }
    const network = options.network ?? this.#defaultNetwork
    if (!networkModes.includes(network)) {
      throw new SandboxError(
        'invalid_request',
        `network must be one of ${networkModes.join(', ')}, got ${JSON.stringify(network)}`,
      )
    }
    if (options.code !== undefined && typeof options.code !== 'string') {
      throw new SandboxError('invalid_request', 'code must be a string')
    }
    if (options.code !== undefined && Buffer.byteLength(options.code) > maxCodeBytes) {
      throw new SandboxError('payload_too_large', `code is over ${maxCodeBytes} bytes`)
    }
    const codePath = validateRelativePath(options.path ?? runtime.defaultPath)
    const files = (options.files ?? []).map((file) => ({
      ...file,
      path: validateRelativePath(file.path),
    }))
    if (options.code === undefined && !files.some((file) => file.path === codePath)) {
      throw new SandboxError(
        'invalid_request',
        `no code given and ${codePath} is not among the files to run`,
      )
    }
    const args = [...(options.args ?? [])]
    if (args.length > maxArgs)
      throw new SandboxError('invalid_request', `more than ${maxArgs} args`)
    for (const arg of args) {
      if (typeof arg !== 'string' || arg.includes('\0') || Buffer.byteLength(arg) > maxArgBytes) {
        throw new SandboxError('invalid_request', 'each arg must be a string without NUL bytes')
      }
    }
    const userEnv = Object.entries(options.env ?? {})
    if (userEnv.length > maxEnvEntries) {
      throw new SandboxError('invalid_request', `more than ${maxEnvEntries} env variables`)
    }
    for (const [name, value] of userEnv) {
      if (!envNamePattern.test(name) || reservedEnv.has(name)) {
        throw new SandboxError('invalid_request', `env name ${JSON.stringify(name)} is not allowed`)
      }
      if (
        typeof value !== 'string' ||
        value.includes('\0') ||
        Buffer.byteLength(value) > maxEnvValueBytes
      ) {
        throw new SandboxError('invalid_request', `env ${name} must be a string without NUL bytes`)
      }
    }
    const limits = resolveLimits(options.limits, this.#defaults, this.#maxima)
    return {
      runtime,
      code: options.code,
      codePath,
      files,
      args,
      network,
      limits,
      mounts: options.mounts ?? [],
      env: {
        HOME: '/tmp',
        USER: 'user',
        LOGNAME: 'user',
        LANG: 'C.UTF-8',
        LC_ALL: 'C.UTF-8',
        TMPDIR: '/tmp',
        ...runtime.env,
        ...Object.fromEntries(userEnv),
      },
    }
  }
}

/**
 * Whether a prepared sandbox can run a program with these limits: the cgroup's memory and pids
 * limits and the workdir's size were set when it was prepared.
 */
export function slotFits(slot: Slot, limits: Limits): boolean {
  return fixedLimitsEqual(slot.limits, limits)
}

/** Whether two sets of limits agree on those fixed when a sandbox is prepared. */
export function fixedLimitsEqual(a: Limits, b: Limits): boolean {
  return a.memoryBytes === b.memoryBytes && a.pids === b.pids && a.diskBytes === b.diskBytes
}

/** Languages the fast path serves. */
export const fastLanguages = ['python', 'bash'] as const
/**
 * The fast path's fork server images: one per language it serves, and python's with nothing
 * preloaded for code that imports only the standard library (`python-stdlib`: forking a small
 * interpreter costs a fraction of forking one with numpy, pandas and matplotlib imported).
 */
export const fastImages = ['python', 'python-stdlib', 'bash'] as const
export type FastImage = (typeof fastImages)[number]
/** The fast path's fork servers, one per image. */
export type FastPath = Readonly<Record<FastImage, ForkServerBackend>>
/** What a sandbox is prepared for: a language, or a fast-path image. */
export type PreparedKind = Language | FastImage

/**
 * The fast path: a fork server image per language, each mounting what its runtime needs and no
 * more (a bash run sees no more of the host on the fast path than on the slow one). Python's
 * preloads the heavy libraries, python-stdlib (python's runtime) nothing; bash's preloads
 * nothing and execs bash in each child.
 */
async function createFastPath(
  pythonPath: string,
  options: SandboxOptions,
  fastPath: FastPathOptions,
): Promise<FastPath | undefined> {
  const runtimes = createRuntimes(options.runtimes)
  const bubblewrap = options.bubblewrap ?? {}
  // Each child mounts its own /tmp, /dev/shm, /proc and workdir over the fork server's: a runtime
  // kept under one of them (a virtualenv in /tmp) would vanish, so such runs take the slow path.
  const covered = fastLanguages
    .flatMap((language) => runtimes[language].mounts)
    .find((mount) =>
      ['/tmp', '/dev', '/proc', sandboxWorkdir].some(
        (dir) => mount.target === dir || mount.target.startsWith(`${dir}/`),
      ),
    )
  if (covered !== undefined) {
    options.logger?.warn(
      { target: covered.target },
      'the fast path is off: a runtime lives where each sandbox mounts its own files',
    )
    return undefined
  }
  const shared = {
    pythonPath,
    ...(bubblewrap.stateDir === undefined ? {} : { stateDir: bubblewrap.stateDir }),
    ...(bubblewrap.bwrapPath === undefined ? {} : { bwrapPath: bubblewrap.bwrapPath }),
    ...(bubblewrap.pythonPath === undefined ? {} : { seccompPythonPath: bubblewrap.pythonPath }),
    ...(bubblewrap.firstSandboxUid === undefined
      ? {}
      : { firstSandboxUid: bubblewrap.firstSandboxUid }),
    ...(bubblewrap.sandboxUidCount === undefined
      ? {}
      : { sandboxUidCount: bubblewrap.sandboxUidCount }),
    ...(bubblewrap.cgroupParent === undefined ? {} : { cgroupParent: bubblewrap.cgroupParent }),
    ...(bubblewrap.cpuQuotaCores === undefined ? {} : { cpuQuotaCores: bubblewrap.cpuQuotaCores }),
    ...(bubblewrap.cpuPollMs === undefined ? {} : { cpuPollMs: bubblewrap.cpuPollMs }),
    ...(fastPath.maxRunsPerServer === undefined
      ? {}
      : { maxRunsPerServer: fastPath.maxRunsPerServer }),
    ...(fastPath.maxServerAgeMs === undefined ? {} : { maxServerAgeMs: fastPath.maxServerAgeMs }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  }
  const baseEnv = { HOME: '/tmp', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' }
  const [python, pythonStdlib, bash] = await Promise.all([
    ForkServerBackend.create({
      ...shared,
      image: 'python',
      mounts: runtimes.python.mounts,
      childFiles: runtimes.python.files,
      env: { ...runtimes.python.env, ...baseEnv },
      ...(fastPath.preload === undefined ? {} : { preload: fastPath.preload }),
    }),
    ForkServerBackend.create({
      ...shared,
      image: 'python-stdlib',
      mounts: runtimes.python.mounts,
      childFiles: runtimes.python.files,
      env: { ...runtimes.python.env, ...baseEnv },
      preload: [],
    }),
    ForkServerBackend.create({
      ...shared,
      image: 'bash',
      mounts: runtimes.bash.mounts,
      childFiles: runtimes.bash.files,
      env: { ...runtimes.bash.env, ...baseEnv },
      preload: [],
    }),
  ])
  return { python, 'python-stdlib': pythonStdlib, bash }
}

interface ValidatedRun {
  runtime: Runtime
  code: string | undefined
  codePath: string
  files: InputFile[]
  args: string[]
  network: NetworkMode
  limits: Limits
  mounts: readonly Mount[]
  env: Record<string, string>
}
