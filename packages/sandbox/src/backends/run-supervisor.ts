import type { Readable } from 'node:stream'
import type { RunStatus } from '@hutch/protocol'
import type { CgroupStats, RunCgroup } from '../cgroups/cgroups.ts'
import type { Limits } from '../policy/limits.ts'
import { BoundedOutput, OutputBudget } from '../process/bounded-output.ts'
import type { ProcessResult, SlotRunSpec } from './backend.ts'
import { decideStatus } from './process-exit.ts'

/**
 * What every backend does around one program: its output kept within one budget and streamed,
 * its wall time, CPU time and process limit watched, a cancel honoured, the first reason to stop
 * it kept, and its result put together once it ended.
 */
export class RunSupervisor {
  readonly stdout: BoundedOutput
  readonly stderr: BoundedOutput
  readonly #budget: OutputBudget
  readonly #spec: SlotRunSpec
  readonly #limits: Limits
  readonly #cgroup: RunCgroup
  readonly #onKillError: (error: unknown) => void
  readonly #startedMs: number
  #stopReason: { status: RunStatus; reason: string } | undefined
  #timers: (() => void) | undefined

  /** `startedMs`: when the run began, by `performance.now()`, for its wall time. */
  constructor(
    spec: SlotRunSpec,
    cgroup: RunCgroup,
    onKillError: (error: unknown) => void,
    startedMs = performance.now(),
  ) {
    this.#startedMs = startedMs
    this.#spec = spec
    this.#limits = spec.policy.limits
    this.#cgroup = cgroup
    this.#onKillError = onKillError
    this.#budget = new OutputBudget(this.#limits.outputBytes)
    this.stdout = new BoundedOutput(this.#budget)
    this.stderr = new BoundedOutput(this.#budget)
  }

  /** Why hutch stopped the run, when it did (the first reason given). */
  get stopReason(): { status: RunStatus; reason: string } | undefined {
    return this.#stopReason
  }

  /** Stops the run for a reason: every process of its cgroup is killed. The first reason stays. */
  stop(status: RunStatus, reason: string): void {
    if (this.#stopReason !== undefined) return
    this.#stopReason = { status, reason }
    this.#cgroup.killAll().catch(this.#onKillError)
  }

  /** Records a reason without killing (the run already ended for it). */
  setStopReason(status: RunStatus, reason: string): void {
    this.#stopReason ??= { status, reason }
  }

  /** Keeps and streams what the program writes on `stream`, within the run's output budget. */
  collect(stream: Readable | undefined, which: 'stdout' | 'stderr'): void {
    const output = which === 'stdout' ? this.stdout : this.stderr
    const onChunk = which === 'stdout' ? this.#spec.onStdout : this.#spec.onStderr
    stream?.on('data', (chunk: Buffer) => {
      const kept = output.push(chunk)
      if (kept.length > 0) onChunk?.(kept)
      if (this.#budget.exceeded) {
        this.stop('output_limit', `output passed ${this.#limits.outputBytes} bytes`)
      }
    })
  }

  /** Starts the wall timer, the CPU and process-limit poll and the cancel; `unwatch` ends them. */
  watch(cpuPollMs: number): void {
    const limits = this.#limits
    const wallTimer = setTimeout(
      () => this.stop('timeout', `wall time passed ${limits.wallTimeMs} ms`),
      limits.wallTimeMs,
    )
    const cpuTimer = setInterval(() => {
      this.#cgroup
        .stats()
        .then((stats) => {
          if (stats.cpuUsageMs > limits.cpuTimeMs) {
            this.stop('timeout', `CPU time passed ${limits.cpuTimeMs} ms`)
          } else if (stats.pidsLimitHit) {
            // A run that keeps hitting its process limit is a fork bomb more often than not.
            this.stop('killed', `the run reached its limit of ${limits.pids} processes`)
          }
        })
        .catch(() => {})
    }, cpuPollMs)
    const signal = this.#spec.signal
    const onAbort = (): void => this.stop('killed', 'the run was cancelled')
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted === true) onAbort()
    this.#timers = () => {
      clearTimeout(wallTimer)
      clearInterval(cpuTimer)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  unwatch(): void {
    this.#timers?.()
    this.#timers = undefined
  }

  /** The run's result, from how its program ended and what its cgroup used. */
  result(stats: CgroupStats, exitCode: number | null, signal: string | null): ProcessResult {
    const limits = this.#limits
    const stopReason = this.#stopReason
    const reason = stats.oomKilled
      ? `memory passed ${limits.memoryBytes} bytes`
      : (stopReason?.reason ??
        (stats.pidsLimitHit ? `the run reached its limit of ${limits.pids} processes` : undefined))
    return {
      status: decideStatus(stopReason?.status, stats, exitCode, signal),
      exitCode: stopReason === undefined ? exitCode : exitCode === 0 ? null : exitCode,
      signal,
      stdout: this.stdout.text(),
      stderr: this.stderr.text(),
      stdoutTruncated: this.stdout.truncated,
      stderrTruncated: this.stderr.truncated,
      usage: {
        wallMs: Math.round(performance.now() - this.#startedMs),
        cpuMs: Math.round(stats.cpuUsageMs),
        peakMemoryBytes: stats.peakMemoryBytes,
      },
      ...(reason === undefined ? {} : { reason }),
    }
  }
}
