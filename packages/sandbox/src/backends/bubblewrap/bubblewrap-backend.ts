import type { ChildProcess } from 'node:child_process'
import { execFile, spawn } from 'node:child_process'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { promisify } from 'node:util'
import type { CgroupManager, CgroupStats, RunCgroup } from '../../cgroups/cgroups.ts'
import { detectCgroups } from '../../cgroups/cgroups.ts'
import type { Logger } from '../../logger.ts'
import { silentLogger } from '../../logger.ts'
import type { Limits } from '../../policy/limits.ts'
import { removeTree } from '../../files/remove-tree.ts'
import { SandboxError } from '../../sandbox-error.ts'
import { buildSeccompFilter } from '../../seccomp/seccomp.ts'
import type {
  Backend,
  ProcessResult,
  Slot,
  SlotOptions,
  SlotProcess,
  SlotRunSpec,
  SlotStartSpec,
} from '../backend.ts'
import { controlFds } from '../backend.ts'
import type { LauncherInputs } from './bubblewrap-process.ts'
import { BubblewrapProcess } from './bubblewrap-process.ts'
import type { BwrapHostFiles } from './bwrap-args.ts'
import { buildBwrapArgs, describeRootLinks, syntheticAccounts } from './bwrap-args.ts'
import { UidPool } from './uid-pool.ts'
import { gateScript } from './gate-script.ts'
import { decodeExit } from '../process-exit.ts'
import { RunSupervisor } from '../run-supervisor.ts'

const execFileAsync = promisify(execFile)

/** How the bubblewrap backend is set up. */
export interface BubblewrapOptions {
  /** Directory for workdirs and the files every sandbox shares; default `/var/lib/hutch` as root, else `~/.local/state/hutch`. */
  stateDir?: string
  /** bubblewrap's path; default `/usr/bin/bwrap`. */
  bwrapPath?: string
  /** Python that builds the seccomp filter with libseccomp; default `/usr/bin/python3`. */
  pythonPath?: string
  /** First host uid lent to sandboxes when running as root; default 2,000,000,000. */
  firstSandboxUid?: number
  /** How many sandbox uids (and so concurrent runs) there are; default 4096. */
  sandboxUidCount?: number
  /** Name of the cgroup under which run cgroups are made; default `hutch`. */
  cgroupParent?: string
  /** CPU share of each run, in cores; default 1. */
  cpuQuotaCores?: number
  /** How often CPU time is checked against the limit, milliseconds; default 100. */
  cpuPollMs?: number
  /**
   * Run even though the workdir's size cannot be bounded. Only root can give each run a tmpfs
   * of `diskBytes`; as a normal user the workdir is a directory on the host's disk, bounded
   * only per file, so a run could fill the disk. Default false: a normal user's backend refuses
   * to start, as DESIGN section 3 asks of a backend that cannot enforce its policy.
   */
  allowUnboundedWorkdir?: boolean
  logger?: Logger
}

/** Resolved, frozen settings of the bubblewrap backend. */
interface BubblewrapConfig {
  stateDir: string
  runsDir: string
  bwrapPath: string
  pythonPath: string
  cpuQuotaCores: number
  cpuPollMs: number
  asRoot: boolean
}

/** Descriptor numbers in the launcher process. */
const fd = { args: 3, gate: 4, seccomp: 5, workdir: 6, jsonStatus: 7, firstMount: 8 } as const

const runIdPattern = /^[A-Za-z0-9_-]{1,64}$/

/**
 * The launcher of one slot's program (see `gateScript`): a long-lived program (with control
 * pipes) has no RLIMIT_CPU, its caller limits each unit of work.
 */
function launcherScript(
  limits: Limits,
  keptFds: readonly number[],
  control?: { toProgram: number; fromProgram: number },
): string {
  return gateScript(
    {
      openFiles: limits.openFiles,
      fileSizeBytes: limits.fileSizeBytes,
      cpuSeconds: control === undefined ? Math.ceil(limits.cpuTimeMs / 1000) + 1 : undefined,
    },
    control === undefined ? keptFds : [...keptFds, controlFds.toProgram, controlFds.fromProgram],
    control === undefined
      ? []
      : [
          `${controlFds.toProgram}<&${control.toProgram}`,
          `${controlFds.fromProgram}>&${control.fromProgram}`,
        ],
  )
}

/**
 * Runs each program in its own bubblewrap sandbox, its own cgroup and, when the server is root,
 * its own host uid. See DESIGN section 3 for every point it holds.
 */
export class BubblewrapBackend implements Backend {
  readonly name = 'bubblewrap'
  readonly #config: BubblewrapConfig
  readonly #cgroups: CgroupManager
  readonly #uids: UidPool | undefined
  readonly #hostFiles: BwrapHostFiles
  readonly #rootLinks = describeRootLinks()
  readonly #logger: Logger

  private constructor(
    config: BubblewrapConfig,
    cgroups: CgroupManager,
    uids: UidPool | undefined,
    hostFiles: BwrapHostFiles,
    logger: Logger,
  ) {
    this.#config = config
    this.#cgroups = cgroups
    this.#uids = uids
    this.#hostFiles = hostFiles
    this.#logger = logger
  }

  /**
   * Checks that this host can enforce every policy (bwrap, user namespaces, cgroups, seccomp)
   * and prepares the shared files; a `SandboxError` (`backend_unavailable`) says what is missing.
   */
  static async create(options: BubblewrapOptions = {}): Promise<BubblewrapBackend> {
    const logger = options.logger ?? silentLogger
    const asRoot = process.getuid?.() === 0
    if (!asRoot && options.allowUnboundedWorkdir !== true) {
      throw new SandboxError(
        'backend_unavailable',
        'as a normal user hutch cannot bound the disk a run may fill (diskBytes needs a tmpfs per run, which needs root): run it as root, or accept unbounded workdirs explicitly (allowUnboundedWorkdir)',
      )
    }
    const stateDir = path.resolve(options.stateDir ?? defaultStateDir(asRoot))
    const config: BubblewrapConfig = Object.freeze({
      stateDir,
      runsDir: path.join(stateDir, 'runs'),
      bwrapPath: options.bwrapPath ?? '/usr/bin/bwrap',
      pythonPath: options.pythonPath ?? '/usr/bin/python3',
      cpuQuotaCores: options.cpuQuotaCores ?? 1,
      cpuPollMs: options.cpuPollMs ?? 100,
      asRoot,
    })
    try {
      fs.accessSync(config.bwrapPath, fs.constants.X_OK)
    } catch (error) {
      throw new SandboxError(
        'backend_unavailable',
        `bubblewrap is not installed at ${config.bwrapPath}: apt-get install bubblewrap`,
        {},
        { cause: error },
      )
    }
    const detected = await detectCgroups({
      logger,
      ...(options.cgroupParent === undefined ? {} : { parentName: options.cgroupParent }),
    })
    if (!detected.ok) {
      throw new SandboxError(
        'backend_unavailable',
        `cgroups cannot limit runs here: ${detected.reason} (${detected.fix})`,
      )
    }
    // Build both filters now so that a missing libseccomp fails at start, not at the first run.
    for (const network of ['none', 'loopback', 'host'] as const) {
      await buildSeccompFilter({ network }, { pythonPath: config.pythonPath })
    }
    // The state directory must be traversable by the sandbox uids (bwrap resolves as them).
    await fsp.mkdir(config.runsDir, { recursive: true, mode: 0o711 })
    await fsp.chmod(stateDir, 0o711)
    await fsp.chmod(config.runsDir, 0o711)
    const hostFiles = await writeHostFiles(path.join(stateDir, 'etc'))
    const uids = asRoot
      ? new UidPool(
          options.firstSandboxUid ?? 2_000_000_000,
          options.sandboxUidCount ?? 4096,
          path.join(stateDir, 'uids'),
        )
      : undefined
    uids?.removeStaleLocks()
    return new BubblewrapBackend(config, detected.manager, uids, hostFiles, logger)
  }

  async prepare(options: SlotOptions): Promise<Slot> {
    if (!runIdPattern.test(options.runId)) {
      throw new SandboxError(
        'invalid_request',
        `run id ${JSON.stringify(options.runId)} is invalid`,
      )
    }
    const uid = this.#uids?.acquire() ?? process.getuid?.() ?? 0
    const gid = this.#uids === undefined ? (process.getgid?.() ?? 0) : uid
    const workdir = path.join(this.#config.runsDir, options.runId)
    let cgroup: RunCgroup | undefined
    try {
      await fsp.mkdir(workdir, { mode: 0o700 })
      if (this.#config.asRoot) {
        // A tmpfs per run enforces the disk limit and is gone with the run.
        await execFileAsync('/usr/bin/mount', [
          '-t',
          'tmpfs',
          '-o',
          `size=${Math.max(options.limits.diskBytes, 4096)},mode=0700,uid=${uid},gid=${gid},nosuid,nodev`,
          'tmpfs',
          workdir,
        ])
      }
      cgroup = await this.#cgroups.create(options.runId, {
        memoryBytes: options.limits.memoryBytes,
        pids: options.limits.pids,
        cpuQuotaCores: this.#config.cpuQuotaCores,
      })
    } catch (error) {
      await this.#removeWorkdir(workdir)
      if (this.#uids !== undefined) this.#uids.release(uid)
      throw error instanceof SandboxError
        ? error
        : new SandboxError(
            'backend_unavailable',
            'could not prepare a sandbox',
            {},
            { cause: error },
          )
    }
    return new BubblewrapSlot(this, options, workdir, uid, gid, cgroup)
  }

  async removeOrphans(): Promise<{ workdirs: number; cgroups: number }> {
    const cgroups = await this.#cgroups.removeOrphans()
    let workdirs = 0
    for (const name of await fsp.readdir(this.#config.runsDir).catch(() => [])) {
      if (!runIdPattern.test(name)) continue
      await this.#removeWorkdir(path.join(this.#config.runsDir, name))
      workdirs++
    }
    return { workdirs, cgroups }
  }

  /** @internal Launches the program of one slot. */
  async launch(slot: BubblewrapSlot, cgroup: RunCgroup, spec: SlotRunSpec): Promise<ProcessResult> {
    const started = performance.now()
    const { child, inputs, opened } = await this.#spawn(slot, spec, false)
    try {
      return await this.#supervise(child, cgroup, spec, spec.policy.limits, started, inputs)
    } finally {
      for (const openedFd of opened) fs.closeSync(openedFd)
    }
  }

  /** @internal Starts a long-lived program in one slot, with control pipes. */
  async start(slot: BubblewrapSlot, cgroup: RunCgroup, spec: SlotStartSpec): Promise<SlotProcess> {
    const { child, inputs, opened } = await this.#spawn(slot, spec, true)
    for (const openedFd of opened) fs.closeSync(openedFd)
    const started = new BubblewrapProcess(child, cgroup, spec, this.#logger)
    try {
      if (child.pid === undefined) {
        throw new SandboxError('backend_unavailable', 'bash did not start')
      }
      await cgroup.addProcess(child.pid)
      started.feed(inputs)
    } catch (error) {
      await started.kill().catch(() => {})
      throw error
    }
    return started
  }

  async #spawn(
    slot: BubblewrapSlot,
    spec: { argv: readonly string[]; policy: SlotRunSpec['policy']; stdin?: unknown },
    withControl: boolean,
  ): Promise<{ child: ChildProcess; inputs: LauncherInputs; opened: number[] }> {
    // Memory, pids and disk were fixed when the slot was prepared; the rest apply now.
    const limits = spec.policy.limits
    const seccomp = await buildSeccompFilter(
      { network: spec.policy.network },
      { pythonPath: this.#config.pythonPath },
    )
    const opened: number[] = []
    try {
      const workdirFd = openDirectory(slot.workdir)
      opened.push(workdirFd)
      const mounts: { fd: number; target: string }[] = []
      for (const mount of [
        { source: this.#hostFiles.passwd, target: '/etc/passwd' },
        { source: this.#hostFiles.group, target: '/etc/group' },
        ...spec.policy.mounts,
      ]) {
        const mountFd = openForBind(mount.source)
        if (mountFd === undefined) continue
        opened.push(mountFd)
        mounts.push({ fd: fd.firstMount + mounts.length, target: mount.target })
      }
      const writableTargets = new Set(
        spec.policy.mounts.filter((m) => !m.readOnly).map((m) => m.target),
      )
      const args = buildBwrapArgs(
        { ...spec.policy, mounts: [] },
        {
          rootLinks: this.#rootLinks,
          hostFiles: this.#hostFiles,
          fds: { workdir: fd.workdir, seccomp: fd.seccomp, jsonStatus: fd.jsonStatus },
          tmpBytes: Math.max(limits.diskBytes, 4096),
          shmBytes: Math.max(Math.min(limits.memoryBytes, 64 * 1024 * 1024), 4096),
        },
      )
      // Files by content come on pipes after the mounts' descriptors.
      const files = (spec.policy.files ?? []).map((file, index) => ({
        ...file,
        fd: fd.firstMount + mounts.length + index,
      }))
      // Mounts by descriptor go before the root is remounted read-only.
      const remountAt = args.indexOf('--remount-ro')
      args.splice(
        remountAt,
        0,
        ...mounts.flatMap((m) => [
          writableTargets.has(m.target) ? '--bind-fd' : '--ro-bind-fd',
          String(m.fd),
          m.target,
        ]),
        ...files.flatMap((file) => [
          '--perms',
          '0444',
          '--ro-bind-data',
          String(file.fd),
          file.target,
        ]),
      )
      const keptFds = [
        ...[0, 1, 2, fd.args, fd.seccomp, fd.workdir, fd.jsonStatus],
        ...mounts.map((m) => m.fd),
        ...files.map((file) => file.fd),
      ]
      const afterFiles = fd.firstMount + mounts.length + files.length
      const control = withControl
        ? { toProgram: afterFiles, fromProgram: afterFiles + 1 }
        : undefined
      const child = spawn(
        '/bin/bash',
        [
          '--noprofile',
          '--norc',
          '-c',
          launcherScript(limits, keptFds, control),
          'hutch-launcher',
          this.#config.bwrapPath,
          '--args',
          String(fd.args),
          '--',
          ...spec.argv,
        ],
        {
          cwd: '/',
          env: {},
          ...(this.#uids === undefined ? {} : { uid: slot.uid, gid: slot.gid }),
          stdio: [
            spec.stdin === undefined ? 'ignore' : 'pipe',
            'pipe',
            'pipe',
            'pipe',
            'pipe',
            'pipe',
            workdirFd,
            'pipe',
            ...opened.slice(1),
            ...files.map(() => 'pipe' as const),
            ...(control === undefined ? [] : (['pipe', 'pipe'] as const)),
          ],
        },
      )
      return {
        child,
        opened,
        inputs: {
          args: Buffer.from(args.map((a) => `${a}\0`).join('')),
          seccomp,
          files: files.map((file) => ({ fd: file.fd, content: file.content })),
          ...(control === undefined ? {} : { control }),
        },
      }
    } catch (error) {
      for (const openedFd of opened) fs.closeSync(openedFd)
      throw error
    }
  }

  async #supervise(
    child: ChildProcess,
    cgroup: RunCgroup,
    spec: SlotRunSpec,
    limits: Limits,
    started: number,
    inputs: LauncherInputs,
  ): Promise<ProcessResult> {
    const run = new RunSupervisor(
      spec,
      cgroup,
      (error) => this.#logger.error({ err: error }, 'could not kill a run'),
      started,
    )
    let statusText = ''

    const stdio = child.stdio as unknown as readonly (Readable | Writable | null | undefined)[]
    const writable = (index: number): Writable | undefined =>
      (stdio[index] as Writable | null | undefined) ?? undefined
    const readable = (index: number): Readable | undefined =>
      (stdio[index] as Readable | null | undefined) ?? undefined
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.once('error', reject)
        child.once('close', (code, signal) => resolve({ code, signal }))
      },
    )
    run.collect(readable(1), 'stdout')
    run.collect(readable(2), 'stderr')
    readable(fd.jsonStatus)?.on('data', (chunk: Buffer) => {
      statusText += chunk.toString('utf8')
    })
    for (const stream of stdio) stream?.on('error', () => {})

    try {
      if (child.pid === undefined)
        throw new SandboxError('backend_unavailable', 'bash did not start')
      await cgroup.addProcess(child.pid)
      writable(fd.args)?.end(inputs.args)
      writable(fd.seccomp)?.end(inputs.seccomp)
      for (const file of inputs.files) writable(file.fd)?.end(file.content)
      if (spec.stdin !== undefined) writable(0)?.end(spec.stdin)
      writable(fd.gate)?.end('go\n')
      run.watch(this.#config.cpuPollMs)

      const exit = await closed
      // Anything the program left behind dies before a byte of its output is read back.
      await cgroup.killAll()
      const stats = await cgroup.stats()
      // bwrap writes the program's exit code on its status descriptor only once it has exec'd
      // the program: a failure of its own (a mount it could not make, an interpreter that is
      // not there) leaves it out. What the program printed proves nothing: it can write a
      // "bwrap: " line and exit 1 itself, to pass its run off as hutch's failure, unrecorded.
      const programStarted = statusText.includes('"exit-code"')
      if (!programStarted && run.stopReason === undefined && stats.pidsLimitHit) {
        // The run's own process limit left bwrap no room to fork: the caller's doing, a result.
        run.setStopReason(
          'killed',
          `the run reached its limit of ${limits.pids} processes before its program started`,
        )
      }
      if (!programStarted && run.stopReason === undefined && !stats.oomKilled) {
        const firstLine = run.stderr.text().split('\n')[0] ?? ''
        throw new SandboxError(
          'backend_unavailable',
          `bubblewrap could not start the sandbox: ${firstLine}`,
          {
            stderr: run.stderr.text().slice(0, 2000),
            exitCode: exit.code,
          },
        )
      }
      const { exitCode, signal } = decodeExit(exit.code, exit.signal)
      return run.result(stats, exitCode, signal)
    } catch (error) {
      await cgroup.killAll().catch(() => {})
      throw error
    } finally {
      run.unwatch()
    }
  }

  /** @internal */
  async releaseSlot(slot: BubblewrapSlot, cgroup: RunCgroup): Promise<void> {
    try {
      await cgroup.destroy()
    } finally {
      await this.#removeWorkdir(slot.workdir)
      this.#uids?.release(slot.uid)
    }
  }

  async #removeWorkdir(workdir: string): Promise<void> {
    if (this.#config.asRoot) {
      await execFileAsync('/usr/bin/umount', ['--lazy', workdir]).catch(() => {})
    }
    await removeTree(workdir).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    })
  }
}

/** One prepared bubblewrap sandbox. */
class BubblewrapSlot implements Slot {
  readonly #backend: BubblewrapBackend
  readonly #cgroup: RunCgroup
  #state: 'ready' | 'running' | 'used' | 'started' | 'released' = 'ready'
  readonly options: SlotOptions
  readonly runId: string
  readonly limits: Limits
  readonly workdir: string
  readonly uid: number
  readonly gid: number

  constructor(
    backend: BubblewrapBackend,
    options: SlotOptions,
    workdir: string,
    uid: number,
    gid: number,
    cgroup: RunCgroup,
  ) {
    this.#backend = backend
    this.options = options
    this.runId = options.runId
    this.limits = options.limits
    this.workdir = workdir
    this.uid = uid
    this.gid = gid
    this.#cgroup = cgroup
  }

  async run(spec: SlotRunSpec): Promise<ProcessResult> {
    if (this.#state !== 'ready') {
      throw new SandboxError('invalid_request', `this sandbox is ${this.#state}; each runs once`)
    }
    this.#state = 'running'
    try {
      return await this.#backend.launch(this, this.#cgroup, spec)
    } finally {
      this.#state = 'used'
    }
  }

  async start(spec: SlotStartSpec): Promise<SlotProcess> {
    if (this.#state !== 'ready' && this.#state !== 'started') {
      throw new SandboxError('invalid_request', `this sandbox is ${this.#state}`)
    }
    this.#state = 'started'
    return this.#backend.start(this, this.#cgroup, spec)
  }

  freeze(): Promise<void> {
    return this.#cgroup.freeze()
  }

  thaw(): Promise<void> {
    return this.#cgroup.thaw()
  }

  stats(): Promise<CgroupStats> {
    return this.#cgroup.stats()
  }

  cpuUsageMs(): Promise<number> {
    return this.#cgroup.cpuUsageMs()
  }

  async release(): Promise<void> {
    if (this.#state === 'released') return
    this.#state = 'released'
    await this.#backend.releaseSlot(this, this.#cgroup)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release()
  }
}

/**
 * Where the backend keeps workdirs and shared files when not told: `/var/lib/hutch` as root,
 * else `$XDG_STATE_HOME/hutch`. Sandbox uids must be able to traverse it.
 */
export function defaultSandboxStateDir(): string {
  return defaultStateDir(process.getuid?.() === 0)
}

function defaultStateDir(asRoot: boolean): string {
  if (asRoot) return '/var/lib/hutch'
  const base =
    process.env['XDG_STATE_HOME'] ?? path.join(process.env['HOME'] ?? '/tmp', '.local/state')
  return path.join(base, 'hutch')
}

async function writeHostFiles(dir: string): Promise<BwrapHostFiles> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o755 })
  const accounts = syntheticAccounts()
  const files = { passwd: path.join(dir, 'passwd'), group: path.join(dir, 'group') }
  for (const [name, content] of Object.entries(accounts) as [keyof BwrapHostFiles, string][]) {
    // Rewrite only what differs: bwrap 0.8 turns a bound descriptor back into its path, so a
    // file renamed over while another hutch process binds it would fail that process's run.
    const current = await fsp.readFile(files[name], 'utf8').catch(() => undefined)
    if (current === content) continue
    const temporary = `${files[name]}.${process.pid}.tmp`
    await fsp.writeFile(temporary, content, { mode: 0o644 })
    await fsp.rename(temporary, files[name])
  }
  return files
}

function openDirectory(dir: string): number {
  const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants
  return fs.openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW)
}

/** Opens a host path to bind by descriptor; undefined when it does not exist. */
function openForBind(source: string): number | undefined {
  try {
    const stat = fs.statSync(source)
    return fs.openSync(
      source,
      fs.constants.O_RDONLY | (stat.isDirectory() ? fs.constants.O_DIRECTORY : 0),
    )
  } catch {
    return undefined
  }
}
