import fsp from 'node:fs/promises'
import type { Logger } from '../logger.ts'
import { silentLogger } from '../logger.ts'
import { SandboxError } from '../sandbox-error.ts'
import type { CgroupManagerConfig } from './cgroup-files.ts'
import { assertCgroupName, defaultKillTimeoutMs, readOptionalCgroupFile } from './cgroup-files.ts'
import type { CgroupHierarchy } from './cgroup-mounts.ts'
import {
  findV1Hierarchies,
  findV2Hierarchy,
  parseMountInfo,
  parseProcCgroup,
  v1Controllers,
  v2Controllers,
} from './cgroup-mounts.ts'
import { openV1Cgroups } from './v1-cgroup-manager.ts'
import { openV2Cgroups } from './v2-cgroup-manager.ts'

/** The resource limits of one run's cgroup. */
export interface CgroupLimits {
  /** Memory ceiling in bytes, positive integer; swap is off, so this is all a run gets. */
  memoryBytes: number
  /** Most tasks (processes plus threads) alive at once. Positive integer. */
  pids: number
  /** CPU bandwidth in cores (1 is one full core, 0.5 half of one) per 100 ms period. Min 0.01. */
  cpuQuotaCores: number
}

/** What a run's cgroup used; read it after `killAll`, before `destroy`. */
export interface CgroupStats {
  /** CPU time of every process that ran in the cgroup, user plus system, in milliseconds. */
  cpuUsageMs: number
  /**
   * Highest memory use, in bytes (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`; where the
   * kernel has no `memory.peak`, the highest `memory.current` seen by calls to `stats`).
   */
  peakMemoryBytes: number
  /** Whether the kernel OOM-killed any process in this cgroup. */
  oomKilled: boolean
  /** How many processes the kernel OOM-killed in this cgroup so far. */
  oomKills: number
  /** Whether memory use ever reached the limit (whether or not that led to an OOM kill). */
  memoryLimitHit: boolean
  /** Processes (not threads) in the cgroup now. */
  processCount: number
  /** Whether a fork or clone ever failed because the cgroup's pids limit was reached. */
  pidsLimitHit: boolean
}

/** One run's cgroup: the same name in every controller hierarchy hutch uses. */
export interface RunCgroup {
  /** The cgroup's directory name, `run-<runId>`. */
  readonly name: string
  /** The cgroup's absolute directories, one per hierarchy (one on v2), for diagnostics. */
  readonly directories: readonly string[]
  /** Move a process (and so all its future children) into the cgroup, in every controller. */
  addProcess(pid: number): Promise<void>
  /** What the cgroup has used so far. */
  stats(): Promise<CgroupStats>
  /** CPU time used so far, milliseconds: one file read, for frequent checks. */
  cpuUsageMs(): Promise<number>
  /** Pids currently in the cgroup. */
  pids(): Promise<number[]>
  /** Stops every process in the cgroup; resolves once all of them are stopped. */
  freeze(): Promise<void>
  /** Lets the processes of a frozen cgroup run again. */
  thaw(): Promise<void>
  /**
   * Kill every process and wait until the cgroup is empty (v2: `cgroup.kill` when present; else
   * freeze, SIGKILL every pid, thaw, repeat until empty). Throws a `SandboxError` (`internal`)
   * when the cgroup is still not empty after the manager's kill timeout (default 10 000 ms).
   * Concurrent calls share one kill.
   */
  killAll(): Promise<void>
  /** `killAll`, then remove the directories (in every controller). Idempotent. */
  destroy(): Promise<void>
}

/** Creates run cgroups under one parent cgroup (`hutch/` by default) and cleans up after them. */
export interface CgroupManager {
  /** The cgroup version in use. */
  readonly version: 'v1' | 'v2'
  /** The parent cgroup's absolute directories, one per hierarchy (one on v2). */
  readonly parentDirectories: readonly string[]
  /**
   * Creates the cgroup `run-<runId>` with these limits. `runId` must match
   * `^[A-Za-z0-9_-]{1,64}$` and must not be in use; limits are checked (`invalid_limit`).
   */
  create(runId: string, limits: CgroupLimits): Promise<RunCgroup>
  /**
   * Remove leftover hutch run cgroups from earlier processes (kill their processes first); runs
   * this manager created and has not destroyed are left alone. Returns how many.
   */
  removeOrphans(): Promise<number>
}

/** Caller input of `detectCgroups`. */
export interface DetectCgroupsOptions {
  /** The parent cgroup's name, `^[A-Za-z0-9_-]{1,64}$`. Default `hutch`. */
  parentName?: string
  /** Where detection and kills are reported. Default: silent. */
  logger?: Logger
  /** How long `killAll` may take before it throws, in milliseconds. Default 10 000. */
  killTimeoutMs?: number
}

/** A ready cgroup manager, or why this host cannot give one and how to fix that. */
export type DetectCgroupsResult =
  { ok: true; manager: CgroupManager } | { ok: false; reason: string; fix: string }

/**
 * Finds the host's cgroup hierarchies from /proc/self/mountinfo and /proc/self/cgroup, prefers
 * cgroup v2 when it offers the memory, pids and cpu controllers, else uses cgroup v1 (memory,
 * pids, cpu, cpuacct, freezer), and creates the parent cgroup: at the hierarchy root when that is
 * writable, else under the process's own (delegated) cgroup. Throws only for invalid options.
 */
export async function detectCgroups(
  options: DetectCgroupsOptions = {},
): Promise<DetectCgroupsResult> {
  const parentName = options.parentName ?? 'hutch'
  assertCgroupName('cgroup parent name', parentName)
  const killTimeoutMs = options.killTimeoutMs ?? defaultKillTimeoutMs
  if (!Number.isSafeInteger(killTimeoutMs) || killTimeoutMs < 1) {
    throw new SandboxError('invalid_request', 'killTimeoutMs must be a positive integer')
  }
  const config: CgroupManagerConfig = {
    parentName,
    killTimeoutMs,
    logger: options.logger ?? silentLogger,
  }

  let mountInfoText: string
  let procCgroupText: string
  try {
    mountInfoText = await fsp.readFile('/proc/self/mountinfo', 'utf8')
    procCgroupText = await fsp.readFile('/proc/self/cgroup', 'utf8')
  } catch (error) {
    return {
      ok: false,
      reason: `cannot read /proc/self/mountinfo or /proc/self/cgroup: ${String(error)}`,
      fix: 'mount procfs at /proc',
    }
  }
  const mounts = parseMountInfo(mountInfoText)
  const procCgroup = parseProcCgroup(procCgroupText)
  const v2 = findV2Hierarchy(mounts, procCgroup)
  const v1 = findV1Hierarchies(mounts, procCgroup)
  if (v2 === undefined && v1.size === 0) {
    return {
      ok: false,
      reason: 'no cgroup filesystem is mounted (per /proc/self/mountinfo)',
      fix: 'mount cgroup v2: mount -t cgroup2 cgroup2 /sys/fs/cgroup',
    }
  }

  const failures: { reason: string; fix: string }[] = []
  if (v2 !== undefined) {
    const missing = await missingV2Controllers(v2)
    if (missing.length === 0) {
      const opened = await openV2Cgroups(v2, config)
      if (opened.ok) return opened
      failures.push(opened)
    } else if (v1.size === 0) {
      failures.push({
        reason: `cgroup v2 at ${v2.mountPoint} offers no ${missing.join(', ')} controller`,
        fix:
          `enable them for hutch's parent (at the root: echo '+memory +pids +cpu' > ` +
          `${v2.mountPoint}/cgroup.subtree_control); in a container, give it those controllers`,
      })
    }
  }
  if (v1.size > 0) {
    const missing = v1Controllers.filter((controller) => !v1.has(controller))
    if (missing.length === 0) {
      const opened = await openV1Cgroups(v1, config)
      if (opened.ok) return opened
      failures.push(opened)
    } else {
      failures.push({
        reason:
          `cgroup v1 has no ${missing.join(', ')} hierarchy mounted` +
          (v2 === undefined ? '' : ` and cgroup v2 at ${v2.mountPoint} lacks memory, pids or cpu`),
        fix:
          'boot with systemd.unified_cgroup_hierarchy=1 for pure cgroup v2, or mount the missing ' +
          'v1 controllers (mount -t cgroup -o <controller> cgroup /sys/fs/cgroup/<controller>)',
      })
    }
  }
  return {
    ok: false,
    reason: failures.map((failure) => failure.reason).join('; '),
    fix: [...new Set(failures.map((failure) => failure.fix))].join('; or '),
  }
}

/** The v2 controllers hutch needs that the hierarchy root does not offer. */
async function missingV2Controllers(hierarchy: CgroupHierarchy): Promise<string[]> {
  const offered = (await readOptionalCgroupFile(hierarchy.mountPoint, 'cgroup.controllers')) ?? ''
  const words = offered.split(/\s+/)
  return v2Controllers.filter((controller) => !words.includes(controller))
}
