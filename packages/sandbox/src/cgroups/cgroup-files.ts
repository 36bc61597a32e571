import fs, { constants } from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '../logger.ts'
import { SandboxError } from '../sandbox-error.ts'

/** What every cgroup manager is opened with, resolved from `DetectCgroupsOptions`. */
export interface CgroupManagerConfig {
  readonly parentName: string
  readonly killTimeoutMs: number
  readonly logger: Logger
}

/** The shape of every name hutch turns into a cgroup directory. */
export const cgroupNamePattern = /^[A-Za-z0-9_-]{1,64}$/

/** The prefix of every run's cgroup directory; `removeOrphans` only ever touches these. */
export const runCgroupPrefix = 'run-'

/**
 * The CFS period every CPU quota is expressed in: the kernel's default, the period every new cgroup
 * v1 cpu directory starts with (so that one is never written).
 */
export const cpuPeriodUs = 100_000

/** How long `killAll` keeps trying before it gives up, unless the caller says otherwise. */
export const defaultKillTimeoutMs = 10_000

const pollIntervalMs = 10

/** Throws unless `value` may become one path component of a cgroup. */
export function assertCgroupName(what: string, value: string): void {
  if (!cgroupNamePattern.test(value)) {
    throw new SandboxError(
      'invalid_request',
      `${what} ${JSON.stringify(value)} is invalid: use 1 to 64 letters, digits, '_' or '-'`,
    )
  }
}

/** Throws unless `pid` could be a process id. */
export function assertPid(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid < 1) {
    throw new SandboxError('invalid_request', `pid ${pid} is invalid`)
  }
}

/** The run id inside a run cgroup's directory name, or undefined for any other name. */
export function runIdOfCgroupName(name: string): string | undefined {
  if (!name.startsWith(runCgroupPrefix)) return undefined
  const runId = name.slice(runCgroupPrefix.length)
  return cgroupNamePattern.test(runId) ? runId : undefined
}

/** Whether `error` is a Node system error with this errno code. */
export function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code
}

/** Reads one cgroup file, trimmed. */
export function readCgroupFile(dir: string, file: string): Promise<string> {
  // The kernel writes a cgroup file's few bytes as it is read: a synchronous read takes ~15 µs,
  // one through libuv's thread pool ~120 µs (stats read 11 of them per call).
  // A throw in the executor rejects the promise.
  return new Promise((resolve) => resolve(fs.readFileSync(path.join(dir, file), 'utf8').trim()))
}

/** Reads one cgroup file, trimmed, or undefined when the file (or the cgroup) does not exist. */
export async function readOptionalCgroupFile(
  dir: string,
  file: string,
): Promise<string | undefined> {
  try {
    return await readCgroupFile(dir, file)
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return undefined
    throw error
  }
}

/**
 * Writes that may wait in the kernel go through libuv's thread pool so the wait does not stall
 * the event loop: moving a task between cgroups waits for RCU (~10 µs quiet, ~0.25 ms loaded,
 * seen here), thawing a cgroup wakes each task (~0.5 ms for a killed sandbox). Freezing only
 * starts the change and returns at once.
 */
function mayWait(file: string, value: string): boolean {
  if (file === 'cgroup.procs') return true
  // Thawing: v1's freezer.state THAWED, v2's cgroup.freeze 0.
  return (
    (file === 'freezer.state' && value === 'THAWED') || (file === 'cgroup.freeze' && value === '0')
  )
}

/**
 * Writes one value to a cgroup file in a single write, without O_CREAT or O_TRUNC (cgroup files
 * exist or the controller is missing; some are write-only).
 *
 * Synchronously, as `readCgroupFile` reads (a cgroup file is the kernel's, not a disk's: ~15 µs,
 * where open, write and close through the thread pool cost the event loop ~0.3 ms), but for a
 * write that `mayWait`: that one crosses the thread pool, once.
 */
export async function writeCgroupFile(dir: string, file: string, value: string): Promise<void> {
  const fd = fs.openSync(path.join(dir, file), constants.O_WRONLY | constants.O_NOFOLLOW)
  try {
    if (mayWait(file, value)) {
      await new Promise<void>((resolve, reject) => {
        fs.write(fd, value, (error) => (error === null ? resolve() : reject(error)))
      })
    } else {
      fs.writeSync(fd, value)
    }
  } finally {
    fs.closeSync(fd)
  }
}

/** Makes a cgroup directory, synchronously (see `writeCgroupFile`); rejects as `fsp.mkdir`. */
export function makeCgroupDir(dir: string): Promise<void> {
  return new Promise((resolve) => {
    fs.mkdirSync(dir)
    resolve()
  })
}

/** Whether a file exists in a cgroup directory. */
export async function cgroupFileExists(dir: string, file: string): Promise<boolean> {
  try {
    await fsp.access(path.join(dir, file))
    return true
  } catch {
    return false
  }
}

/** Parses `key value` lines (memory.events, cpu.stat, memory.oom_control) into numbers. */
export function parseKeyedValues(text: string): Map<string, number> {
  const values = new Map<string, number>()
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/)
    if (key === undefined || value === undefined) continue
    const number = Number(value)
    if (Number.isFinite(number)) values.set(key, number)
  }
  return values
}

/** Parses a number from a cgroup file, or 0 when the file is missing. */
export function parseCount(text: string | undefined): number {
  if (text === undefined) return 0
  const number = Number(text)
  return Number.isFinite(number) ? number : 0
}

/** The pids listed in a cgroup's `cgroup.procs`; none when the cgroup is gone. */
export async function readCgroupPids(dir: string): Promise<number[]> {
  const text = await readOptionalCgroupFile(dir, 'cgroup.procs')
  if (text === undefined || text === '') return []
  return text.split('\n').map(Number)
}

/** Sends SIGKILL to every pid; one that is already gone is not an error. */
export function sigkillEach(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch (error) {
      if (!isErrno(error, 'ESRCH')) throw error
    }
  }
}

/** Polls `check` until it holds or `deadlineMs` (a `performance.now()` time) passes. */
export async function pollUntil(
  check: () => Promise<boolean>,
  deadlineMs: number,
): Promise<boolean> {
  // What is polled usually settles within a millisecond or two (a freeze reaching a task that
  // was running, killed tasks leaving): the first looks come soon, then every pollIntervalMs.
  let waitMs = 0
  for (;;) {
    if (await check()) return true
    if (performance.now() >= deadlineMs) return false
    if (waitMs === 0) await new Promise((resolve) => setImmediate(resolve))
    else await sleep(waitMs)
    waitMs = waitMs === 0 ? 1 : Math.min(waitMs * 2, pollIntervalMs)
  }
}

/**
 * Creates a directory; one that exists already is fine. Cgroup directories take their mode from
 * cgroupfs, so none is given.
 */
export async function ensureDir(dir: string): Promise<void> {
  try {
    await makeCgroupDir(dir)
  } catch (error) {
    if (!isErrno(error, 'EEXIST')) throw error
  }
}

/**
 * Removes an empty cgroup directory. One that is gone already is fine; one still busy (the
 * kernel releases an emptied cgroup a moment after its last task exits) is retried until
 * `deadlineMs`.
 */
export async function removeCgroupDir(dir: string, deadlineMs: number): Promise<void> {
  for (;;) {
    try {
      // Through the thread pool: removing a memory cgroup waits in the kernel (~1 ms loaded).
      await fsp.rmdir(dir)
      return
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return
      if (!isErrno(error, 'EBUSY') || performance.now() >= deadlineMs) throw error
    }
    await sleep(pollIntervalMs)
  }
}

/** What the freeze-and-kill loop needs of a cgroup. */
export interface FreezableCgroup {
  readonly name: string
  listPids(): Promise<number[]>
  /** Starts freezing; returns without waiting for the cgroup to be frozen. */
  requestFreeze(): Promise<void>
  isFrozen(): Promise<boolean>
  requestThaw(): Promise<void>
}

/** How long one round waits for a freeze before it kills whatever it sees anyway. */
const freezeWaitMs = 1_000
/** How long one round waits for SIGKILLed processes to leave before it looks again. */
const drainWaitMs = 200

/**
 * Kills every process of a cgroup and waits until it is empty: freeze (so nothing forks and no pid
 * is freed and reused while it is read), SIGKILL every pid, thaw (a v1-frozen task only dies once
 * thawed), and repeat until `cgroup.procs` is empty. Returns the number of rounds it took.
 */
export async function killByFreezing(
  cgroup: FreezableCgroup,
  deadlineMs: number,
  timeoutMs: number,
): Promise<number> {
  let rounds = 0
  for (;;) {
    let pids = await cgroup.listPids()
    if (pids.length === 0) return rounds
    if (performance.now() >= deadlineMs) throw drainTimeout(cgroup.name, pids, timeoutMs)
    rounds++
    try {
      await cgroup.requestFreeze()
      await pollUntil(
        () => cgroup.isFrozen(),
        Math.min(deadlineMs, performance.now() + freezeWaitMs),
      )
      pids = await cgroup.listPids()
      sigkillEach(pids)
    } finally {
      await cgroup.requestThaw()
    }
    await pollUntil(
      async () => (await cgroup.listPids()).length === 0,
      Math.min(deadlineMs, performance.now() + drainWaitMs),
    )
  }
}

/** The error for a cgroup that would not empty in time. */
export function drainTimeout(name: string, pids: readonly number[], timeoutMs: number): Error {
  return new SandboxError(
    'internal',
    `cgroup ${name} still held ${pids.length} processes ${timeoutMs} ms after the kill began`,
    { cgroup: name, pids: pids.slice(0, 20) },
  )
}

/** Checks limits before any of them reaches a cgroup file. */
export function assertLimits(limits: {
  memoryBytes: number
  pids: number
  cpuQuotaCores: number
}): void {
  const problems: string[] = []
  if (!Number.isSafeInteger(limits.memoryBytes) || limits.memoryBytes < 1) {
    problems.push(`memoryBytes must be a positive integer, not ${limits.memoryBytes}`)
  }
  if (!Number.isSafeInteger(limits.pids) || limits.pids < 1) {
    problems.push(`pids must be a positive integer, not ${limits.pids}`)
  }
  if (!Number.isFinite(limits.cpuQuotaCores) || limits.cpuQuotaCores < 0.01) {
    problems.push(`cpuQuotaCores must be at least 0.01, not ${limits.cpuQuotaCores}`)
  }
  if (problems.length > 0) {
    throw new SandboxError('invalid_limit', `invalid cgroup limits: ${problems.join('; ')}`, {
      problems,
    })
  }
}

/** The CFS quota, in microseconds per `cpuPeriodUs`, of a number of cores. */
export function cpuQuotaUs(cpuQuotaCores: number): number {
  return Math.round(cpuQuotaCores * cpuPeriodUs)
}

/** Whether any swap device or file is active on the host. */
export async function hostHasSwap(): Promise<boolean> {
  try {
    const lines = (await fsp.readFile('/proc/swaps', 'utf8')).trim().split('\n')
    return lines.length > 1
  } catch {
    return false
  }
}

/** The names of the run cgroups under some parent directories, without those in `except`. */
export async function listRunCgroupNames(
  parentDirs: readonly string[],
  except: ReadonlySet<string>,
): Promise<string[]> {
  const names = new Set<string>()
  for (const parentDir of parentDirs) {
    let entries
    try {
      entries = await fsp.readdir(parentDir, { withFileTypes: true })
    } catch (error) {
      if (isErrno(error, 'ENOENT')) continue
      throw error
    }
    for (const entry of entries) {
      if (!entry.isDirectory() || except.has(entry.name)) continue
      if (runIdOfCgroupName(entry.name) !== undefined) names.add(entry.name)
    }
  }
  return [...names].sort()
}

/** Destroys each run cgroup in turn; when some fail, throws after trying them all. */
export async function destroyEach(
  runs: readonly { name: string; destroy(): Promise<void> }[],
): Promise<number> {
  const failed: { name: string; error: unknown }[] = []
  for (const run of runs) {
    try {
      await run.destroy()
    } catch (error) {
      failed.push({ name: run.name, error })
    }
  }
  if (failed.length > 0) {
    throw new SandboxError(
      'internal',
      `could not remove ${failed.length} of ${runs.length} orphaned run cgroups`,
      { cgroups: failed.map((failure) => failure.name) },
      { cause: failed[0]?.error },
    )
  }
  return runs.length
}
