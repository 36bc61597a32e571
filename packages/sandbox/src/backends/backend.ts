import type { Readable, Writable } from 'node:stream'
import type { NetworkMode, RunStatus } from '@hutch/protocol'
import type { CgroupStats } from '../cgroups/cgroups.ts'
import type { TreeSnapshot } from '../files/output-files.ts'
import type { Limits } from '../policy/limits.ts'
import type { Policy } from '../policy/policy.ts'

/** The backends hutch knows. */
export const backendNames = ['bubblewrap'] as const
export type BackendName = (typeof backendNames)[number]

/** What a slot needs to be prepared: its id and the limits its run will have. */
export interface SlotOptions {
  /** Unique id of the run, `[A-Za-z0-9_-]{1,64}`. */
  runId: string
  limits: Limits
}

/** One program to run in a prepared slot. */
export interface SlotRunSpec {
  /** argv inside the sandbox; argv[0] is an absolute path. */
  argv: readonly string[]
  policy: Policy
  stdin?: Uint8Array | string
  onStdout?: (chunk: Buffer) => void
  onStderr?: (chunk: Buffer) => void
  /** Aborting kills the run; it then ends as `killed`. */
  signal?: AbortSignal
}

/** How a program ended, before files and error parsing. */
export interface ProcessResult {
  status: RunStatus
  exitCode: number | null
  signal: string | null
  stdout: string
  stderr: string
  stdoutTruncated: boolean
  stderrTruncated: boolean
  usage: { wallMs: number; cpuMs: number; peakMemoryBytes: number }
  /** Why the run was stopped, when hutch stopped it. */
  reason?: string
}

/** A long-lived program to start in a prepared slot (a kernel's interpreter). */
export interface SlotStartSpec {
  /** argv inside the sandbox; argv[0] is an absolute path. */
  argv: readonly string[]
  policy: Policy
  onStdout?: (chunk: Buffer) => void
  onStderr?: (chunk: Buffer) => void
}

/**
 * A program running in a slot with two control pipes besides stdout and stderr: inside the
 * sandbox it reads `controlFds.toProgram` and writes `controlFds.fromProgram`. CPU and wall time
 * are not limited here (the caller limits each unit of work); memory and pids are the cgroup's.
 */
export interface SlotProcess {
  /** Pipe to the program's `controlFds.toProgram`. */
  readonly control: Writable
  /** Pipe from the program's `controlFds.fromProgram`. */
  readonly events: Readable
  /** Settles when the sandbox's last process is gone (never rejects). */
  readonly exited: Promise<{ exitCode: number | null; signal: string | null }>
  /**
   * Sends a signal to the processes of the slot whose pid inside the sandbox is `sandboxPid`,
   * or to every descendant of it with `descendants`. Returns how many were signalled.
   */
  signal(
    sandboxPid: number,
    signal: NodeJS.Signals,
    options?: { descendants?: boolean },
  ): Promise<number>
  /** Kills every process of the slot (the cgroup stays, for another `start`). */
  kill(): Promise<void>
}

/** Descriptor numbers a started program finds its control pipes on. */
export const controlFds = { toProgram: 60, fromProgram: 61 } as const

/**
 * A sandbox prepared for one run: its own workdir (on the host, bound into the sandbox), its own
 * identity and cgroup. Single use: run once, then release.
 */
export interface Slot extends AsyncDisposable {
  /** The id of the run this sandbox is for. */
  readonly runId: string
  /** The limits it was prepared with (memory, pids and disk are fixed from then on). */
  readonly limits: Limits
  /** Host path of the workdir. Write inputs here before `run`, read outputs after it. */
  readonly workdir: string
  /** Host uid and gid that own the workdir and run the program. */
  readonly uid: number
  readonly gid: number
  run(spec: SlotRunSpec): Promise<ProcessResult>
  /**
   * Starts a long-lived program instead of `run` (a slot either runs once or starts programs,
   * one at a time: start again after the last one exited, in the same workdir and cgroup).
   * Optional: backends without it have no kernels.
   */
  start?(spec: SlotStartSpec): Promise<SlotProcess>
  /** The cgroup's freezer, usage and state, for a slot that `start`s programs. */
  freeze?(): Promise<void>
  thaw?(): Promise<void>
  stats?(): Promise<CgroupStats>
  /** CPU time the slot's processes used so far, milliseconds. */
  cpuUsageMs?(): Promise<number>
  /**
   * Writes the inputs into the workdir as the sandbox's own user, for slots whose workdir the
   * server cannot create files in (a fork server child's lives in the child's user namespace).
   * When a slot has it, `workdir` is only read from. Resolves once the files are sent; `written`
   * resolves with the workdir's snapshot once they are written (the run may be asked for before),
   * or rejects, and then the program does not run.
   */
  putFiles?(files: readonly SlotFile[]): Promise<{ written: Promise<TreeSnapshot> }>
  /** A slot fixed to one network mode when it was prepared (a fork server child). */
  readonly network?: NetworkMode
  /** Whether the slot can still run (its fork server alive); absent means yes. */
  healthy?(): boolean
  /** Kills anything left, removes the workdir and the cgroup. Idempotent. */
  release(): Promise<void>
}

/** One input file for {@link Slot.putFiles}: a validated relative path and its content. */
export interface SlotFile {
  path: string
  content: Uint8Array | string | AsyncIterable<Uint8Array> | { hostPath: string }
}

/** An isolation mechanism that enforces a `Policy`. */
export interface Backend {
  readonly name: BackendName
  prepare(options: SlotOptions): Promise<Slot>
  /** Removes workdirs and cgroups that an earlier process left behind. */
  removeOrphans(): Promise<{ workdirs: number; cgroups: number }>
}
