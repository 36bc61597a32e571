import type { MimeBundle, NetworkMode, OutputFile, RunError, RunStatus } from '@hutch/protocol'
import type { OutputSink } from '../files/output-files.ts'
import type { Limits } from '../policy/limits.ts'
import type { InputFile } from '../sandbox.ts'

/** Languages that have a stateful kernel. */
export const kernelLanguages = ['python', 'bash', 'javascript'] as const
export type KernelLanguage = (typeof kernelLanguages)[number]

/** How `Sandbox.openKernel` starts a kernel. */
export interface KernelOptions {
  /** A language or alias with a kernel: python, bash (shell, sh), javascript (js, node). */
  language: string
  /**
   * Limits of the kernel's sandbox, resolved against the sandbox's defaults and maxima. Memory,
   * pids and disk hold for the kernel's whole life; `wallTimeMs` is the default timeout of a cell,
   * `cpuTimeMs` the CPU a cell may use, `outputBytes` the output of one cell.
   */
  limits?: Partial<Record<keyof Limits, unknown>>
  network?: NetworkMode
  /** Extra environment variables of the interpreter. */
  env?: Readonly<Record<string, string>>
  /** Files put in the workdir before the interpreter starts (a COLD session's saved workdir). */
  files?: readonly InputFile[]
  /**
   * State saved by {@link Kernel.snapshot} of an earlier kernel of the same language: restored
   * before the first cell runs. What could not be restored is reported by {@link Kernel.restored}.
   */
  restoreState?: Uint8Array
  /**
   * Python modules imported before the kernel is ready (into `sys.modules`, not the namespace of
   * the cells), so that cells and restores importing them later find them loaded: a kernel
   * started ahead of its session (see {@link Kernel.adopt}). Their memory counts against the
   * kernel's limit. A module that fails to import is reported in {@link Kernel.preloaded}.
   */
  preload?: readonly string[]
}

/**
 * How {@link Kernel.adopt} makes a kernel started ahead its user's: what {@link KernelOptions}
 * would have given at its start.
 */
export interface KernelAdoption {
  /**
   * The user's limits, resolved. Memory, pids, disk, open files and file size were fixed when the
   * kernel started and must be equal ({@link kernelLimitsFit}); the per-cell ones (`wallTimeMs`,
   * `cpuTimeMs`, `outputBytes`) are replaced.
   */
  limits?: Limits
  /** Files put in the workdir (a COLD session's saved workdir). */
  files?: readonly InputFile[]
  /** State saved by {@link Kernel.snapshot}, restored; see {@link Kernel.restored}. */
  restoreState?: Uint8Array
}

/** The limits fixed when a kernel starts: those {@link Kernel.adopt} cannot change. */
export const kernelFixedLimits = [
  'memoryBytes',
  'pids',
  'diskBytes',
  'openFiles',
  'fileSizeBytes',
] as const satisfies readonly (keyof Limits)[]

/** Whether a kernel started with `started` limits can be adopted with `wanted` ones. */
export function kernelLimitsFit(started: Readonly<Limits>, wanted: Readonly<Limits>): boolean {
  return kernelFixedLimits.every((name) => started[name] === wanted[name])
}

/** What `preload` imported, and what failed to import. */
export interface KernelPreload {
  loaded: string[]
  failed: { name: string; reason: string }[]
}

/** How one cell runs. */
export interface CellOptions {
  /** Interrupt the cell after this long; default the kernel's `wallTimeMs`, clamped to its maximum. */
  timeoutMs?: number
  onStdout?: (chunk: Buffer) => void
  onStderr?: (chunk: Buffer) => void
  /** Each display result as the cell produces it (a figure, a DataFrame, `display()`). */
  onDisplay?: (bundle: MimeBundle) => void
  /** Receives each file the cell created or changed in the workdir, as a stream. */
  onOutputFile?: OutputSink
  /** Aborting interrupts the cell. */
  signal?: AbortSignal
}

/** What one cell produced. Wire names of DESIGN section 5, plus `executionCount`. */
export interface CellResult {
  status: RunStatus
  stdout: string
  stderr: string
  stdoutTruncated: boolean
  stderrTruncated: boolean
  /** Display results in order; the value of the last expression (Jupyter's execute_result) last. */
  results: MimeBundle[]
  error?: RunError
  /** Jupyter's execution count: 1 for the first cell of an interpreter, +1 per cell. */
  executionCount: number
  outputFiles: OutputFile[]
  skippedFiles: { path: string; reason: string }[]
  usage: { wallMs: number; cpuMs: number; peakMemoryBytes: number }
  /**
   * Set when the interpreter died during the cell (out of memory, `os._exit`, a signal): it was
   * started again, every variable is lost, and `reason` says why it died.
   */
  restarted?: { reason: string }
  /** Why hutch stopped the cell, when it did (timeout, interrupt, output limit). */
  reason?: string
}

/** What {@link Kernel.snapshot} saved and what it could not. */
export interface KernelSnapshot {
  /** Opaque state to give back as `restoreState`; undefined when there is nothing to save. */
  state: Uint8Array | undefined
  /** Names saved. */
  saved: string[]
  /** Names that could not be saved (a generator, an open file), each with why. */
  lost: { name: string; reason: string }[]
}

/** What a kernel started with `restoreState` got back. */
export interface KernelRestore {
  restored: string[]
  lost: { name: string; reason: string }[]
}

/**
 * One interpreter that keeps its state across cells, in a sandbox of its own (the same isolation
 * as a one-shot run: own namespaces, uid, cgroup, seccomp, bounded workdir). Cells run one at a
 * time; `execute` waits for the previous cell.
 */
export interface Kernel extends AsyncDisposable {
  readonly id: string
  readonly language: KernelLanguage
  readonly limits: Readonly<Limits>
  /** `running` takes cells, `frozen` holds its memory but no CPU, `closed` is gone. */
  readonly state: 'running' | 'frozen' | 'closed'
  /** What `restoreState` brought back, when it was given (at the start or to {@link adopt}). */
  readonly restored: KernelRestore | undefined
  /** What `preload` imported, when it was given. */
  readonly preloaded: KernelPreload | undefined
  execute(code: string, options?: CellOptions): Promise<CellResult>
  /** Interrupts the running cell (KeyboardInterrupt first, harder after a grace); no-op when idle. */
  interrupt(): Promise<void>
  /** Kills the interpreter and starts a fresh one in the same sandbox; the workdir is kept. */
  restart(): Promise<void>
  /** Freezes every process of the kernel (cgroup freezer); memory is kept. */
  freeze(): Promise<void>
  /** Thaws a frozen kernel. `execute` thaws by itself. */
  thaw(): Promise<void>
  /** Saves the interpreter's state (Python: picklable globals with dill; Bash: cwd, variables, functions). */
  snapshot(): Promise<KernelSnapshot>
  /**
   * Streams every regular file of the workdir to `sink` through safe I/O (no symlinks followed),
   * with the kernel frozen so that nothing changes under the copy.
   */
  exportWorkdir(sink: OutputSink): Promise<{ files: number; bytes: number }>
  /**
   * Makes a kernel that has run nothing (started ahead, on standby) its user's: sets the per-cell
   * limits, writes files into the workdir and restores a saved state, as if they had been given
   * to `openKernel`. Once per kernel and before its first cell, else `invalid_request`: a kernel
   * is never handed from one user to another. A state that cannot be restored is reported in
   * {@link restored}; a file that cannot be written rejects (close the kernel then).
   */
  adopt(options?: KernelAdoption): Promise<void>
  /** Kills the interpreter and removes the sandbox. Idempotent. */
  close(): Promise<void>
}
