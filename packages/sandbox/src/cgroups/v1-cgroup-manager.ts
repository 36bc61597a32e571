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
  cpuQuotaUs,
  destroyEach,
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
import type { CgroupHierarchy, V1Controller } from './cgroup-mounts.ts'
import { v1Controllers } from './cgroup-mounts.ts'
import type {
  CgroupLimits,
  CgroupManager,
  CgroupStats,
  DetectCgroupsResult,
  RunCgroup,
} from './cgroups.ts'

/** A directory per v1 controller; co-mounted controllers (`cpu,cpuacct`) share one. */
export type V1Directories = Readonly<Record<V1Controller, string>>

/**
 * The directories of one cgroup name in every hierarchy, freezer first: a process moved there
 * first is caught by every later freeze.
 */
function distinctDirectories(dirs: V1Directories): string[] {
  const order: readonly V1Controller[] = ['freezer', 'pids', 'memory', 'cpu', 'cpuacct']
  return [...new Set(order.map((controller) => dirs[controller]))]
}

function childDirectories(parents: V1Directories, name: string): V1Directories {
  return {
    memory: path.join(parents.memory, name),
    pids: path.join(parents.pids, name),
    cpu: path.join(parents.cpu, name),
    cpuacct: path.join(parents.cpuacct, name),
    freezer: path.join(parents.freezer, name),
  }
}

/** Options of a `V1RunCgroup`. */
export interface V1RunCgroupOptions {
  readonly killTimeoutMs: number
  readonly logger: Logger
  /** Called once the cgroup's directories are gone. */
  readonly onDestroyed?: () => void
}

/** A run's cgroup on cgroup v1: a directory in each of the memory, pids, cpu, cpuacct, freezer trees. */
export class V1RunCgroup implements RunCgroup {
  readonly name: string
  readonly directories: readonly string[]
  readonly #dirs: V1Directories
  readonly #options: V1RunCgroupOptions
  readonly #freezable: FreezableCgroup
  #killing: Promise<void> | undefined
  #destroying: Promise<void> | undefined
  #destroyed = false

  constructor(name: string, dirs: V1Directories, options: V1RunCgroupOptions) {
    this.name = name
    this.#dirs = dirs
    this.directories = distinctDirectories(dirs)
    this.#options = options
    this.#freezable = {
      name,
      listPids: () => this.pids(),
      requestFreeze: () => writeCgroupFile(this.#dirs.freezer, 'freezer.state', 'FROZEN'),
      isFrozen: async () => (await this.#freezerState()) === 'FROZEN',
      requestThaw: () => writeCgroupFile(this.#dirs.freezer, 'freezer.state', 'THAWED'),
    }
  }

  async addProcess(pid: number): Promise<void> {
    assertPid(pid)
    this.#assertNotDestroyed()
    for (const dir of this.directories) {
      try {
        await writeCgroupFile(dir, 'cgroup.procs', String(pid))
      } catch (error) {
        throw new SandboxError(
          'internal',
          `could not move process ${pid} into cgroup ${this.name}`,
          { pid, directory: dir },
          { cause: error },
        )
      }
    }
  }

  /**
   * The run's processes, from the freezer hierarchy alone: `addProcess` moves a process there
   * first, and a child starts in its parent's cgroups, so no process of the run is in another
   * hierarchy's directory and not in this one.
   */
  async pids(): Promise<number[]> {
    return (await readCgroupPids(this.#dirs.freezer)).sort((a, b) => a - b)
  }

  async stats(): Promise<CgroupStats> {
    this.#assertNotDestroyed()
    const { memory, cpuacct, pids: pidsDir } = this.#dirs
    const [usageNs, peakBytes, oomControl, failCount, swapFailCount, pids, pidsEvents] =
      await Promise.all([
        readCgroupFile(cpuacct, 'cpuacct.usage'),
        readCgroupFile(memory, 'memory.max_usage_in_bytes'),
        readCgroupFile(memory, 'memory.oom_control'),
        readCgroupFile(memory, 'memory.failcnt'),
        readOptionalCgroupFile(memory, 'memory.memsw.failcnt'),
        this.pids(),
        readOptionalCgroupFile(pidsDir, 'pids.events'),
      ])
    const oomKills = parseKeyedValues(oomControl).get('oom_kill') ?? 0
    const oomKilled = oomKills > 0
    return {
      cpuUsageMs: parseCount(usageNs) / 1e6,
      peakMemoryBytes: parseCount(peakBytes),
      oomKilled,
      oomKills,
      memoryLimitHit: oomKilled || parseCount(failCount) > 0 || parseCount(swapFailCount) > 0,
      processCount: pids.length,
      pidsLimitHit: (parseKeyedValues(pidsEvents ?? '').get('max') ?? 0) > 0,
    }
  }

  async cpuUsageMs(): Promise<number> {
    this.#assertNotDestroyed()
    return parseCount(await readCgroupFile(this.#dirs.cpuacct, 'cpuacct.usage')) / 1e6
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
    const { killTimeoutMs, logger } = this.#options
    const rounds = await killByFreezing(this.#freezable, startedMs + killTimeoutMs, killTimeoutMs)
    if (rounds > 0) {
      const durationMs = Math.round(performance.now() - startedMs)
      logger.debug({ cgroup: this.name, rounds, durationMs }, 'killed every process of a cgroup')
    }
  }

  async #destroy(): Promise<void> {
    if (this.#destroyed) return
    await this.killAll()
    const deadlineMs = performance.now() + this.#options.killTimeoutMs
    for (const dir of this.directories) await removeCgroupDir(dir, deadlineMs)
    this.#destroyed = true
    this.#options.onDestroyed?.()
  }

  async #freezerState(): Promise<string | undefined> {
    return readOptionalCgroupFile(this.#dirs.freezer, 'freezer.state')
  }

  #assertNotDestroyed(): void {
    if (this.#destroyed) {
      throw new SandboxError('internal', `cgroup ${this.name} has been destroyed`)
    }
  }
}

/** Run cgroups on cgroup v1, under one parent cgroup in each hierarchy. */
export class V1CgroupManager implements CgroupManager {
  readonly version = 'v1'
  readonly parentDirectories: readonly string[]
  readonly #parents: V1Directories
  readonly #config: CgroupManagerConfig
  readonly #swapLimited: boolean
  /** Whether the memory parent's swappiness is 0, which every run's cgroup then starts with. */
  readonly #swappinessInherited: boolean
  readonly #liveRuns = new Set<string>()

  constructor(
    parents: V1Directories,
    config: CgroupManagerConfig,
    swap: { limited: boolean; inheritedSwappiness: boolean },
  ) {
    this.#parents = parents
    this.parentDirectories = distinctDirectories(parents)
    this.#config = config
    this.#swapLimited = swap.limited
    this.#swappinessInherited = swap.inheritedSwappiness
  }

  async create(runId: string, limits: CgroupLimits): Promise<RunCgroup> {
    assertCgroupName('run id', runId)
    assertLimits(limits)
    const name = `${runCgroupPrefix}${runId}`
    const dirs = childDirectories(this.#parents, name)
    const created: string[] = []
    try {
      for (const dir of distinctDirectories(dirs)) {
        await makeCgroupDir(dir)
        created.push(dir)
      }
      // memsw (memory plus swap) may never be below memory, so memory goes first.
      const memoryBytes = String(limits.memoryBytes)
      await writeCgroupFile(dirs.memory, 'memory.limit_in_bytes', memoryBytes)
      if (this.#swapLimited) {
        await writeCgroupFile(dirs.memory, 'memory.memsw.limit_in_bytes', memoryBytes)
      }
      // A new memory cgroup takes its parent's swappiness: the parent's is 0 when hutch could
      // set it, and the period is the kernel's default (`cpuPeriodUs`) in every new cgroup.
      if (!this.#swappinessInherited) {
        await writeCgroupFile(dirs.memory, 'memory.swappiness', '0')
      }
      await writeCgroupFile(dirs.pids, 'pids.max', String(limits.pids))
      await writeCgroupFile(dirs.cpu, 'cpu.cfs_quota_us', String(cpuQuotaUs(limits.cpuQuotaCores)))
    } catch (error) {
      for (const dir of created) await removeCgroupDir(dir, 0).catch(() => {})
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

  #open(name: string): V1RunCgroup {
    return new V1RunCgroup(name, childDirectories(this.#parents, name), {
      killTimeoutMs: this.#config.killTimeoutMs,
      logger: this.#config.logger,
      onDestroyed: () => this.#liveRuns.delete(name),
    })
  }
}

/**
 * Creates the parent cgroup in each v1 hierarchy hutch needs: at the hierarchy root when that is
 * writable, else under the process's own cgroup there.
 */
export async function openV1Cgroups(
  hierarchies: ReadonlyMap<string, CgroupHierarchy>,
  config: CgroupManagerConfig,
): Promise<DetectCgroupsResult> {
  const parentByMount = new Map<string, string>()
  const parents: Partial<Record<V1Controller, string>> = {}
  for (const controller of v1Controllers) {
    const hierarchy = hierarchies.get(controller)
    if (hierarchy === undefined) {
      return {
        ok: false,
        reason: `no cgroup v1 ${controller} hierarchy is mounted`,
        fix: `mount it: mount -t cgroup -o ${controller} cgroup /sys/fs/cgroup/${controller}`,
      }
    }
    let parent = parentByMount.get(hierarchy.mountPoint)
    if (parent === undefined) {
      const placed = await placeParent(hierarchy, config.parentName)
      if (!placed.ok) return placed
      parent = placed.dir
      parentByMount.set(hierarchy.mountPoint, parent)
    }
    parents[controller] = parent
  }
  const dirs: V1Directories = {
    memory: parents.memory ?? '',
    pids: parents.pids ?? '',
    cpu: parents.cpu ?? '',
    cpuacct: parents.cpuacct ?? '',
    freezer: parents.freezer ?? '',
  }
  const swapLimited = await cgroupFileExists(dirs.memory, 'memory.memsw.limit_in_bytes')
  if (!swapLimited && (await hostHasSwap())) {
    config.logger.warn(
      { directory: dirs.memory },
      'swap is on but the kernel does not account it (boot with swapaccount=1): runs may swap',
    )
  }
  await keepFreezerInUse(path.dirname(dirs.freezer), config.logger)
  // Set once on the parent rather than on each run's cgroup: a new memory cgroup takes its
  // parent's swappiness. A parent hutch may not change keeps the write per run.
  const inheritedSwappiness = await writeCgroupFile(dirs.memory, 'memory.swappiness', '0').then(
    () => true,
    () => false,
  )
  const manager = new V1CgroupManager(dirs, config, {
    limited: swapLimited,
    inheritedSwappiness,
  })
  config.logger.info(
    { version: 'v1', parentDirectories: manager.parentDirectories, swapLimited },
    'cgroups ready',
  )
  return { ok: true, manager }
}

/**
 * The empty cgroup hutch keeps frozen in the freezer hierarchy, beside its parent cgroup (so that
 * removing the parent never meets it), shared by every hutch of the host.
 */
export const frozenAnchorName = 'hutch-keep-frozen'

/**
 * Keeps one empty cgroup frozen. The v1 freezer turns a kernel-wide static key on when a first
 * cgroup starts to freeze and off when the last one thaws, and each switch patches kernel code on
 * every CPU: every run's freeze and thaw paid for one (seen here: 135-140 us a write of
 * freezer.state, 20-30 us with the key held on). A frozen cgroup with no process holds the key on
 * and costs nothing else. Failing to keep it costs speed only.
 */
async function keepFreezerInUse(dir: string, logger: Logger): Promise<void> {
  const anchor = path.join(dir, frozenAnchorName)
  try {
    await ensureDir(anchor)
    await writeCgroupFile(anchor, 'freezer.state', 'FROZEN')
  } catch (error) {
    logger.warn(
      { err: error, directory: anchor },
      'could not keep an empty cgroup frozen: every freeze and thaw of a run costs more',
    )
  }
}

async function placeParent(
  hierarchy: CgroupHierarchy,
  parentName: string,
): Promise<{ ok: true; dir: string } | { ok: false; reason: string; fix: string }> {
  const candidates = [...new Set([hierarchy.mountPoint, hierarchy.ownDir])]
  const problems: string[] = []
  for (const candidate of candidates) {
    if (candidate === undefined) continue
    const dir = path.join(candidate, parentName)
    try {
      await ensureDir(dir)
      await fsp.access(path.join(dir, 'cgroup.procs'), constants.W_OK)
      return { ok: true, dir }
    } catch (error) {
      problems.push(`${dir}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`)
    }
  }
  return {
    ok: false,
    reason:
      `cannot create a cgroup for hutch in the cgroup v1 ` +
      `${hierarchy.controllers.join(',')} hierarchy (${problems.join('; ')})`,
    fix: hierarchy.readOnly
      ? `mount ${hierarchy.mountPoint} read-write (a container needs writable cgroups)`
      : 'run the server as root, or give its user a writable cgroup in every controller',
  }
}
