import { constants } from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import type { Logger } from '../logger.ts'
import { SandboxError } from '../sandbox-error.ts'
import type { CgroupManagerConfig, FreezableCgroup } from './cgroup-files.ts'
import {
  assertCgroupName,
  assertLimits,
  assertPid,
  cgroupFileExists,
  cpuPeriodUs,
  cpuQuotaUs,
  destroyEach,
  drainTimeout,
  ensureDir,
  hostHasSwap,
  isErrno,
  killByFreezing,
  listRunCgroupNames,
  makeCgroupDir,
  parseCount,
  parseKeyedValues,
  pollUntil,
  readCgroupFile,
  readCgroupPids,
  readOptionalCgroupFile,
  removeCgroupDir,
  runCgroupPrefix,
  writeCgroupFile,
} from './cgroup-files.ts'
import type { CgroupHierarchy } from './cgroup-mounts.ts'
import { v2Controllers } from './cgroup-mounts.ts'
import type {
  CgroupLimits,
  CgroupManager,
  CgroupStats,
  DetectCgroupsResult,
  RunCgroup,
} from './cgroups.ts'

/** Options of a `V2RunCgroup`. */
export interface V2RunCgroupOptions {
  readonly killTimeoutMs: number
  readonly logger: Logger
  /** Whether the kernel has `cgroup.kill` (5.14+); without it kills go through the freezer. */
  readonly hasKillFile: boolean
  /** Called once the cgroup's directory is gone. */
  readonly onDestroyed?: () => void
}

/** How long one round waits for `cgroup.kill` to empty the cgroup before it writes it again. */
const killRoundMs = 200

/** A run's cgroup on cgroup v2: one directory holding every controller. */
export class V2RunCgroup implements RunCgroup {
  readonly name: string
  readonly directories: readonly string[]
  readonly #dir: string
  readonly #options: V2RunCgroupOptions
  readonly #freezable: FreezableCgroup
  #sampledPeakBytes = 0
  #killing: Promise<void> | undefined
  #destroying: Promise<void> | undefined
  #destroyed = false

  constructor(name: string, dir: string, options: V2RunCgroupOptions) {
    this.name = name
    this.#dir = dir
    this.directories = [dir]
    this.#options = options
    this.#freezable = {
      name,
      listPids: () => this.pids(),
      requestFreeze: () => writeCgroupFile(this.#dir, 'cgroup.freeze', '1'),
      isFrozen: async () => (await this.#events()).get('frozen') === 1,
      requestThaw: () => writeCgroupFile(this.#dir, 'cgroup.freeze', '0'),
    }
  }

  async addProcess(pid: number): Promise<void> {
    assertPid(pid)
    this.#assertNotDestroyed()
    try {
      await writeCgroupFile(this.#dir, 'cgroup.procs', String(pid))
    } catch (error) {
      throw new SandboxError(
        'internal',
        `could not move process ${pid} into cgroup ${this.name}`,
        { pid, directory: this.#dir },
        { cause: error },
      )
    }
  }

  pids(): Promise<number[]> {
    return readCgroupPids(this.#dir)
  }

  async stats(): Promise<CgroupStats> {
    this.#assertNotDestroyed()
    const [cpuStat, peakBytes, currentBytes, memoryEvents, pids, pidsEvents] = await Promise.all([
      readCgroupFile(this.#dir, 'cpu.stat'),
      readOptionalCgroupFile(this.#dir, 'memory.peak'),
      readOptionalCgroupFile(this.#dir, 'memory.current'),
      readOptionalCgroupFile(this.#dir, 'memory.events'),
      this.pids(),
      readOptionalCgroupFile(this.#dir, 'pids.events'),
    ])
    this.#sampledPeakBytes = Math.max(this.#sampledPeakBytes, parseCount(currentBytes))
    const events = parseKeyedValues(memoryEvents ?? '')
    const oomKills = (events.get('oom_kill') ?? 0) + (events.get('oom_group_kill') ?? 0)
    const oomKilled = oomKills > 0
    return {
      cpuUsageMs: (parseKeyedValues(cpuStat).get('usage_usec') ?? 0) / 1000,
      peakMemoryBytes: peakBytes === undefined ? this.#sampledPeakBytes : parseCount(peakBytes),
      oomKilled,
      oomKills,
      memoryLimitHit: oomKilled || (events.get('max') ?? 0) > 0 || (events.get('oom') ?? 0) > 0,
      processCount: pids.length,
      pidsLimitHit: (parseKeyedValues(pidsEvents ?? '').get('max') ?? 0) > 0,
    }
  }

  async cpuUsageMs(): Promise<number> {
    this.#assertNotDestroyed()
    const cpuStat = await readCgroupFile(this.#dir, 'cpu.stat')
    return (parseKeyedValues(cpuStat).get('usage_usec') ?? 0) / 1000
  }

  async freeze(): Promise<void> {
    this.#assertNotDestroyed()
    await this.#freezable.requestFreeze()
    const deadlineMs = performance.now() + this.#options.killTimeoutMs
    if (!(await pollUntil(() => this.#freezable.isFrozen(), deadlineMs))) {
      throw new SandboxError(
        'internal',
        `cgroup ${this.name} did not freeze within ${this.#options.killTimeoutMs} ms`,
      )
    }
  }

  async thaw(): Promise<void> {
    this.#assertNotDestroyed()
    await this.#freezable.requestThaw()
    const deadlineMs = performance.now() + this.#options.killTimeoutMs
    if (!(await pollUntil(async () => !(await this.#freezable.isFrozen()), deadlineMs))) {
      throw new SandboxError(
        'internal',
        `cgroup ${this.name} did not thaw within ${this.#options.killTimeoutMs} ms`,
      )
    }
  }

  killAll(): Promise<void> {
    this.#killing ??= this.#kill().finally(() => {
      this.#killing = undefined
    })
    return this.#killing
  }

  destroy(): Promise<void> {
    this.#destroying ??= this.#destroy().catch((error: unknown) => {
      this.#destroying = undefined
      throw error
    })
    return this.#destroying
  }

  async #kill(): Promise<void> {
    const startedMs = performance.now()
    const { killTimeoutMs, logger, hasKillFile } = this.#options
    const deadlineMs = startedMs + killTimeoutMs
    const rounds = hasKillFile
      ? await this.#killWithKillFile(deadlineMs)
      : await killByFreezing(this.#freezable, deadlineMs, killTimeoutMs)
    if (rounds > 0) {
      const durationMs = Math.round(performance.now() - startedMs)
      logger.debug({ cgroup: this.name, rounds, durationMs }, 'killed every process of a cgroup')
    }
  }

  /** `cgroup.kill` SIGKILLs the whole cgroup at once, forks in flight included. */
  async #killWithKillFile(deadlineMs: number): Promise<number> {
    let rounds = 0
    const isEmpty = async (): Promise<boolean> => (await this.#events()).get('populated') !== 1
    for (;;) {
      if (await isEmpty()) return rounds
      if (performance.now() >= deadlineMs) {
        throw drainTimeout(this.name, await this.pids(), this.#options.killTimeoutMs)
      }
      rounds++
      try {
        await writeCgroupFile(this.#dir, 'cgroup.kill', '1')
      } catch (error) {
        if (isErrno(error, 'ENOENT')) return rounds
        throw error
      }
      await pollUntil(isEmpty, Math.min(deadlineMs, performance.now() + killRoundMs))
    }
  }

  async #destroy(): Promise<void> {
    if (this.#destroyed) return
    await this.killAll()
    await removeCgroupDir(this.#dir, performance.now() + this.#options.killTimeoutMs)
    this.#destroyed = true
    this.#options.onDestroyed?.()
  }

  /** `cgroup.events` (populated, frozen); empty once the cgroup is gone. */
  async #events(): Promise<Map<string, number>> {
    return parseKeyedValues((await readOptionalCgroupFile(this.#dir, 'cgroup.events')) ?? '')
  }

  #assertNotDestroyed(): void {
    if (this.#destroyed) {
      throw new SandboxError('internal', `cgroup ${this.name} has been destroyed`)
    }
  }
}

/** What a `V2CgroupManager` found out about its parent cgroup. */
export interface V2ParentFeatures {
  /** Whether `memory.swap.max` exists (swap accounting is on). */
  readonly swapLimited: boolean
  /** Whether `cgroup.kill` exists (kernel 5.14+). */
  readonly hasKillFile: boolean
  /** Whether `memory.oom.group` exists (kernel 4.19+). */
  readonly hasOomGroup: boolean
}

/** Run cgroups on cgroup v2, as children of one parent cgroup with memory, pids and cpu enabled. */
export class V2CgroupManager implements CgroupManager {
  readonly version = 'v2'
  readonly parentDirectories: readonly string[]
  readonly #parent: string
  readonly #config: CgroupManagerConfig
  readonly #features: V2ParentFeatures
  readonly #liveRuns = new Set<string>()

  constructor(parent: string, config: CgroupManagerConfig, features: V2ParentFeatures) {
    this.#parent = parent
    this.parentDirectories = [parent]
    this.#config = config
    this.#features = features
  }

  async create(runId: string, limits: CgroupLimits): Promise<RunCgroup> {
    assertCgroupName('run id', runId)
    assertLimits(limits)
    const name = `${runCgroupPrefix}${runId}`
    const dir = path.join(this.#parent, name)
    let created = false
    try {
      await makeCgroupDir(dir)
      created = true
      await writeCgroupFile(dir, 'memory.max', String(limits.memoryBytes))
      if (this.#features.swapLimited) await writeCgroupFile(dir, 'memory.swap.max', '0')
      // An OOM kill takes the whole run, not one process of it.
      if (this.#features.hasOomGroup) await writeCgroupFile(dir, 'memory.oom.group', '1')
      await writeCgroupFile(dir, 'pids.max', String(limits.pids))
      await writeCgroupFile(
        dir,
        'cpu.max',
        `${cpuQuotaUs(limits.cpuQuotaCores)} ${String(cpuPeriodUs)}`,
      )
    } catch (error) {
      if (created) await removeCgroupDir(dir, 0).catch(() => {})
      throw new SandboxError(
        isErrno(error, 'EEXIST') ? 'internal' : 'backend_unavailable',
        isErrno(error, 'EEXIST')
          ? `cgroup ${name} exists already`
          : `could not create cgroup ${name}: ${String(error)}`,
        { cgroup: name },
        { cause: error },
      )
    }
    this.#liveRuns.add(name)
    this.#config.logger.debug({ cgroup: name, ...limits }, 'created a run cgroup')
    return this.#open(name)
  }

  async removeOrphans(): Promise<number> {
    const names = await listRunCgroupNames(this.parentDirectories, this.#liveRuns)
    const removed = await destroyEach(names.map((name) => this.#open(name)))
    if (removed > 0) this.#config.logger.info({ removed }, 'removed orphaned run cgroups')
    return removed
  }

  #open(name: string): V2RunCgroup {
    return new V2RunCgroup(name, path.join(this.#parent, name), {
      killTimeoutMs: this.#config.killTimeoutMs,
      logger: this.#config.logger,
      hasKillFile: this.#features.hasKillFile,
      onDestroyed: () => this.#liveRuns.delete(name),
    })
  }
}

/**
 * Creates the parent cgroup with memory, pids and cpu enabled for its children: at the hierarchy
 * root when that is writable, else under the process's own (delegated) cgroup.
 */
export async function openV2Cgroups(
  hierarchy: CgroupHierarchy,
  config: CgroupManagerConfig,
): Promise<DetectCgroupsResult> {
  const serverLeafName = `${config.parentName}-server`
  // A process already moved to the server leaf by an earlier detection owns the leaf's parent.
  const ownDir =
    hierarchy.ownDir !== undefined && path.basename(hierarchy.ownDir) === serverLeafName
      ? path.dirname(hierarchy.ownDir)
      : hierarchy.ownDir
  const problems: string[] = []
  for (const candidate of new Set([hierarchy.mountPoint, ownDir])) {
    if (candidate === undefined) continue
    const parent = path.join(candidate, config.parentName)
    try {
      const serverLeaf = candidate === ownDir ? path.join(candidate, serverLeafName) : undefined
      await enableControllers(candidate, serverLeaf, config.logger)
      await ensureDir(parent)
      await enableControllers(parent, undefined, config.logger)
      await fsp.access(path.join(parent, 'cgroup.procs'), constants.W_OK)
    } catch (error) {
      problems.push(`${parent}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`)
      continue
    }
    const features: V2ParentFeatures = {
      swapLimited: await cgroupFileExists(parent, 'memory.swap.max'),
      hasKillFile: await cgroupFileExists(parent, 'cgroup.kill'),
      hasOomGroup: await cgroupFileExists(parent, 'memory.oom.group'),
    }
    if (!features.swapLimited && (await hostHasSwap())) {
      config.logger.warn(
        { directory: parent },
        'swap is on but the kernel does not account it (boot with swapaccount=1): runs may swap',
      )
    }
    const manager = new V2CgroupManager(parent, config, features)
    config.logger.info(
      { version: 'v2', parentDirectories: manager.parentDirectories, ...features },
      'cgroups ready',
    )
    return { ok: true, manager }
  }
  return {
    ok: false,
    reason:
      `cannot create a cgroup v2 parent with ${v2Controllers.join(', ')} for hutch ` +
      `(${problems.join('; ')})`,
    fix: hierarchy.readOnly
      ? `mount ${hierarchy.mountPoint} read-write (a container needs a writable cgroup namespace)`
      : 'run the server as root, or in a cgroup systemd delegates to it: Delegate=yes in its ' +
        'unit, or systemd-run --user -p Delegate=yes',
  }
}

/**
 * Enables memory, pids and cpu for the children of `dir`. A cgroup with processes of its own
 * cannot hand controllers down (the no-internal-processes rule), so when `dir` is this process's
 * own cgroup its processes first move to the leaf `serverLeaf`.
 */
async function enableControllers(
  dir: string,
  serverLeaf: string | undefined,
  logger: Logger,
): Promise<void> {
  const offered = (await readCgroupFile(dir, 'cgroup.controllers')).split(/\s+/)
  const missing = v2Controllers.filter((controller) => !offered.includes(controller))
  if (missing.length > 0) {
    throw new Error(`${missing.join(', ')} not delegated to ${dir}`)
  }
  const enabled = (await readCgroupFile(dir, 'cgroup.subtree_control')).split(/\s+/)
  const toEnable = v2Controllers.filter((controller) => !enabled.includes(controller))
  if (toEnable.length === 0) return
  const value = toEnable.map((controller) => `+${controller}`).join(' ')
  try {
    await writeCgroupFile(dir, 'cgroup.subtree_control', value)
  } catch (error) {
    if (!isErrno(error, 'EBUSY') || serverLeaf === undefined) throw error
    await ensureDir(serverLeaf)
    const pids = await readCgroupPids(dir)
    for (const pid of pids) {
      try {
        await writeCgroupFile(serverLeaf, 'cgroup.procs', String(pid))
      } catch (moveError) {
        if (!isErrno(moveError, 'ESRCH')) throw moveError
      }
    }
    logger.info(
      { from: dir, to: serverLeaf, processes: pids.length },
      'moved the processes of the server cgroup into a leaf so it can delegate controllers',
    )
    await writeCgroupFile(dir, 'cgroup.subtree_control', value)
  }
}
