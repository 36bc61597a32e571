import type { RunStatus } from '@hutch/protocol'
import type { CgroupStats } from '../cgroups/cgroups.ts'

/**
 * How a run ended, most telling cause first: a limit hutch enforced, then a death by signal,
 * then the exit code. A run that reached its process limit and still exited 0 (a fork bomb
 * whose parent returns at once) is `killed`: its processes were.
 */
export function decideStatus(
  stoppedAs: RunStatus | undefined,
  stats: CgroupStats,
  exitCode: number | null,
  signal: string | null,
): RunStatus {
  if (stoppedAs === 'timeout') return 'timeout'
  if (stats.oomKilled) return 'memory_limit'
  if (stoppedAs !== undefined) return stoppedAs
  if (signal !== null) return 'killed'
  if (exitCode !== 0) return 'error'
  return stats.pidsLimitHit ? 'killed' : 'ok'
}

const signalNames: Record<number, string> = {
  1: 'SIGHUP',
  2: 'SIGINT',
  3: 'SIGQUIT',
  4: 'SIGILL',
  5: 'SIGTRAP',
  6: 'SIGABRT',
  7: 'SIGBUS',
  8: 'SIGFPE',
  9: 'SIGKILL',
  10: 'SIGUSR1',
  11: 'SIGSEGV',
  12: 'SIGUSR2',
  13: 'SIGPIPE',
  14: 'SIGALRM',
  15: 'SIGTERM',
  24: 'SIGXCPU',
  25: 'SIGXFSZ',
  31: 'SIGSYS',
}

/** The name of a signal number (`SIGKILL`), or `SIG<n>` for one without a name here. */
export function signalName(signal: number): string {
  return signalNames[signal] ?? `SIG${signal}`
}

/**
 * bwrap reports a program killed by signal N as exit code 128+N, as shells do; a signal of
 * bwrap's own means hutch killed the whole sandbox.
 */
export function decodeExit(
  code: number | null,
  signal: NodeJS.Signals | null,
): { exitCode: number | null; signal: string | null } {
  if (signal !== null) return { exitCode: null, signal }
  if (code !== null && code > 128 && signalNames[code - 128] !== undefined) {
    return { exitCode: null, signal: signalNames[code - 128] ?? null }
  }
  return { exitCode: code, signal: null }
}
