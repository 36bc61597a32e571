import { createHash, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import fs from 'node:fs'
import type { Socket } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import type { NetworkMode } from '@hutch/protocol'
import type { CgroupManager, RunCgroup } from '../../cgroups/cgroups.ts'
import { detectCgroups } from '../../cgroups/cgroups.ts'
import type { Logger } from '../../logger.ts'
import { silentLogger } from '../../logger.ts'
import type { Limits } from '../../policy/limits.ts'
import type { Mount } from '../../policy/policy.ts'
import { sandboxWorkdir } from '../../policy/policy.ts'
import type { SandboxFile } from '../../runtimes/matplotlib-font-cache.ts'
import { SandboxError } from '../../sandbox-error.ts'
import { buildSeccompFilter, defaultCacheDir } from '../../seccomp/seccomp.ts'
import type { TreeSnapshot, TreeSnapshotEntry } from '../../files/output-files.ts'
import { openHostFile } from '../../files/write-files.ts'
import type { ProcessResult, Slot, SlotFile, SlotOptions, SlotRunSpec } from '../backend.ts'
import { defaultSandboxStateDir } from '../bubblewrap/bubblewrap-backend.ts'
import { describeRootLinks } from '../bubblewrap/bwrap-args.ts'
import { UidPool } from '../bubblewrap/uid-pool.ts'
import { decodeExit, signalName } from '../process-exit.ts'
import { RunSupervisor } from '../run-supervisor.ts'
import type { ForkChild, ForkChildExit } from './fork-server.ts'
import { ForkServer } from './fork-server.ts'
import { buildForkServerLoop, buildSandboxInit } from './native-programs.ts'

/** How the fork-server fast path is set up. */
export interface ForkServerOptions {
  /** The bubblewrap backend's state directory (workdirs, uids, shared files); same default. */
  stateDir?: string
  bwrapPath?: string
  /** Which runtime's files it mounts (`python`, `bash`): names its fork servers. */
  image: string
  /** The interpreter of the fork server: the python runtime's. */
  pythonPath: string
  /** The Python with libseccomp's binding that builds the filters; default `/usr/bin/python3`. */
  seccompPythonPath?: string
  firstSandboxUid?: number
  sandboxUidCount?: number
  cgroupParent?: string
  cpuQuotaCores?: number
  cpuPollMs?: number
  /** Read-only host paths every runtime needs: the union of the runtimes' mounts. */
  mounts: readonly Mount[]
  /** Files each child gets (the matplotlib font cache). */
  childFiles: readonly SandboxFile[]
  /** The python runtime's environment, the fork server's own. */
  env: Readonly<Record<string, string>>
  /** Modules the fork server imports before forking; default numpy, pandas, matplotlib.pyplot. */
  preload?: readonly string[]
  /** A fork server is replaced after this many children; default 5000. */
  maxRunsPerServer?: number
  /** ... or after this long, milliseconds; default 10 minutes. */
  maxServerAgeMs?: number
  /** Memory of the fork server itself (its children have their own cgroups); default 1 GiB. */
  serverMemoryBytes?: number
  logger?: Logger
}

interface ForkServerConfig {
  stateDir: string
  bwrapPath: string
  pythonPath: string
  cpuQuotaCores: number
  cpuPollMs: number
  maxRunsPerServer: number
  maxServerAgeMs: number
  serverMemoryBytes: number
  preload: readonly string[]
}

/** Niceness of a finished run's processes while they are killed and torn down. */
const teardownNiceness = 19

/** Largest data frame of an input file sent to a child. */
const maxFrameBytes = 1024 * 1024

/** How long a program that said it ended may take to close its output. */
const outputGraceMs = 100
/** Most bytes read back on a sandbox's stdin connection (the files' reply can be long). */
const maxLinesBytes = 16 * 1024 * 1024

/**
 * The lines a sandbox writes on its stdin connection: first the reply to its input files, then,
 * from a python program, `done N` with its exit code. The program can write there too: at worst
 * it ends its own run early or with a code of its choice, as exiting would; past
 * {@link maxLinesBytes} nothing more is read.
 */
class SocketLines {
  readonly #lines: string[] = []
  readonly #waiters: { resolve: (line: string) => void; reject: (error: Error) => void }[] = []
  #buffered = ''
  #total = 0
  #ended = false

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      if (this.#total > maxLinesBytes) return
      this.#total += chunk.length
      this.#buffered += chunk.toString('utf8')
      let end: number
      while ((end = this.#buffered.indexOf('\n')) >= 0) {
        this.#lines.push(this.#buffered.slice(0, end))
        this.#buffered = this.#buffered.slice(end + 1)
      }
      this.#deliver()
    })
    const ended = (): void => {
      this.#ended = true
      this.#deliver()
    }
    socket.once('end', ended)
    socket.once('close', ended)
    socket.resume()
  }

  /** The next line, to callers in the order they asked; rejects when the connection closed first. */
  next(): Promise<string> {
    const line = new Promise<string>((resolve, reject) => this.#waiters.push({ resolve, reject }))
    this.#deliver()
    return line
  }

  /** The exit code of the first `done N` line; never settles without one. */
  async done(): Promise<number> {
    for (;;) {
      const line = await this.next().catch(() => new Promise<never>(() => {}))
      const match = /^done (\d{1,3})$/.exec(line)
      if (match !== null) return Number(match[1])
    }
  }

  #deliver(): void {
    while (this.#waiters.length > 0 && this.#lines.length > 0) {
      this.#waiters.shift()?.resolve(this.#lines.shift() ?? '')
    }
    if (this.#ended) {
      for (const waiter of this.#waiters.splice(0)) {
        waiter.reject(new SandboxError('backend_unavailable', 'the sandbox closed its connection'))
      }
    }
  }
}

/** The workdir's snapshot from what was sent and the sandbox's reply (`ok {path: [s, ns]}`). */
function writtenSnapshot(
  reply: string,
  sent: ReadonlyMap<string, { size: number; sha256: string }>,
): TreeSnapshot {
  if (!reply.startsWith('ok ')) {
    const message = reply.replace(/^error: /, '')
    throw new SandboxError(
      /No space|quota|too large/i.test(message) ? 'payload_too_large' : 'invalid_path',
      `could not write the input files: ${message}`,
    )
  }
  const times = JSON.parse(reply.slice(3)) as Record<string, [number, number]>
  const snapshot = new Map<string, TreeSnapshotEntry>()
  for (const [path, file] of sent) {
    const [seconds, nanoseconds] = times[path] ?? [0, 0]
    // As Node computes Stats.mtimeMs.
    snapshot.set(path, { ...file, mtimeMs: seconds * 1e3 + nanoseconds / 1e6 })
  }
  return snapshot
}

const defaultPreload = ['numpy', 'pandas', 'matplotlib', 'matplotlib.pyplot']

/**
 * Prepares sandboxes by forking them from a fork server (DESIGN section 4, "the fast path"):
 * each slot is a child that already has its namespaces, mounts, cgroup, filters and connections,
 * so a run costs one message. Slots have the isolation of the bubblewrap backend's; only the
 * network modes `none` and `loopback` are served (a slot's network is fixed when it is prepared).
 */
export class ForkServerBackend {
  readonly name = 'forkserver'
  readonly #config: ForkServerConfig
  readonly #options: ForkServerOptions
  readonly #cgroups: CgroupManager
  readonly #uids: UidPool | undefined
  readonly #logger: Logger
  #current: Promise<ForkServer> | undefined
  readonly #servers = new Set<ForkServer>()
  readonly #serverUids = new Map<ForkServer, { uid: number; cgroup: RunCgroup }>()
  #closed = false
  /** Fork servers started, and those that died without being asked to stop. */
  readonly stats = { started: 0, crashed: 0, recycled: 0 }

  private constructor(
    config: ForkServerConfig,
    options: ForkServerOptions,
    cgroups: CgroupManager,
    uids: UidPool | undefined,
    logger: Logger,
  ) {
    this.#config = config
    this.#options = options
    this.#cgroups = cgroups
    this.#uids = uids
    this.#logger = logger
  }

  /** Sets the fast path up; the first fork server starts on the first `prepare`. */
  static async create(options: ForkServerOptions): Promise<ForkServerBackend> {
    const logger = options.logger ?? silentLogger
    const asRoot = process.getuid?.() === 0
    const stateDir = path.resolve(options.stateDir ?? defaultSandboxStateDir())
    const detected = await detectCgroups({
      logger,
      ...(options.cgroupParent === undefined ? {} : { parentName: options.cgroupParent }),
    })
    if (!detected.ok) {
      throw new SandboxError(
        'backend_unavailable',
        `cgroups cannot limit runs here: ${detected.reason}`,
      )
    }
    const uids = asRoot
      ? new UidPool(
          options.firstSandboxUid ?? 2_000_000_000,
          options.sandboxUidCount ?? 4096,
          path.join(stateDir, 'uids'),
        )
      : undefined
    const config: ForkServerConfig = Object.freeze({
      stateDir,
      bwrapPath: options.bwrapPath ?? '/usr/bin/bwrap',
      pythonPath: options.pythonPath,
      cpuQuotaCores: options.cpuQuotaCores ?? 1,
      cpuPollMs: options.cpuPollMs ?? 100,
      maxRunsPerServer: options.maxRunsPerServer ?? 5000,
      maxServerAgeMs: options.maxServerAgeMs ?? 10 * 60_000,
      serverMemoryBytes: options.serverMemoryBytes ?? 1024 ** 3,
      preload: options.preload ?? defaultPreload,
    })
    return new ForkServerBackend(config, options, detected.manager, uids, logger)
  }

  /** Whether a run with this network and these extra mounts can run in a fork server's child. */
  serves(network: NetworkMode, extraMounts: readonly Mount[]): boolean {
    return (network === 'none' || network === 'loopback') && extraMounts.length === 0
  }

  /** Starts the fork server now rather than on the first `prepare`. */
  async warmUp(): Promise<void> {
    await this.#server()
  }

  async prepare(options: SlotOptions & { network: 'none' | 'loopback' }): Promise<Slot> {
    if (this.#closed) throw new SandboxError('backend_unavailable', 'the fast path is closed')
    const server = await this.#server()
    const owner = this.#serverUids.get(server)
    const cgroup = await this.#cgroups.create(options.runId, {
      memoryBytes: options.limits.memoryBytes,
      pids: options.limits.pids,
      cpuQuotaCores: this.#config.cpuQuotaCores,
    })
    let child: ForkChild | undefined
    let workdirFd: number | undefined
    try {
      child = await server.spawn(options.runId, {
        network: options.network,
        diskBytes: Math.max(options.limits.diskBytes, 4096),
        tmpBytes: Math.max(options.limits.diskBytes, 4096),
        shmBytes: Math.max(Math.min(options.limits.memoryBytes, 64 * 1024 * 1024), 4096),
        openFiles: Math.max(options.limits.openFiles, 16),
        fileSizeBytes: options.limits.fileSizeBytes,
      })
      // The sandbox's init too: it runs no user code, but shares the program's user, and whatever
      // the sandbox holds stays within the run's limits and dies with it.
      for (const pid of child.hostPids) await cgroup.addProcess(pid)
      // The child's workdir lives in its own mount namespace; this descriptor keeps it reachable
      // (and alive) after the child is gone, for the output files.
      workdirFd = fs.openSync(
        `/proc/${child.programHostPid}/root${sandboxWorkdir}`,
        fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW,
      )
      const uid = owner?.uid ?? process.getuid?.() ?? 0
      const stat = fs.fstatSync(workdirFd)
      if (stat.uid !== uid) {
        throw new SandboxError('backend_unavailable', 'a fork server child has a foreign workdir')
      }
      return new ForkSlot(this, server, options, options.network, child, cgroup, workdirFd, uid)
    } catch (error) {
      if (workdirFd !== undefined) fs.closeSync(workdirFd)
      await cgroup.destroy().catch(() => {})
      if (child !== undefined) await child.exited
      throw error
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    await Promise.all([...this.#servers].map((server) => this.#retire(server)))
  }

  /** Fork servers alive now. */
  get servers(): number {
    return this.#servers.size
  }

  /** @internal The settings slots run with. */
  get config(): Readonly<ForkServerConfig> {
    return this.#config
  }

  /** @internal Stops a fork server once its last child is gone. */
  async childGone(server: ForkServer): Promise<void> {
    if (!server.alive) return
    if (this.#servers.has(server) && server.liveChildren === 0 && !this.#isCurrent(server)) {
      await this.#retire(server)
    }
  }

  /** @internal The fork server of a slot, for tests that kill it. */
  serverOf(slot: Slot): ForkServer | undefined {
    return slot instanceof ForkSlot ? slot.server : undefined
  }

  #currentServer: ForkServer | undefined
  /** The sandbox init and the fork server's loop, built once. */
  #nativePaths: Promise<[initPath: string, loopPath: string]> | undefined

  get #seccompPython(): string {
    return this.#options.seccompPythonPath ?? '/usr/bin/python3'
  }

  #isCurrent(server: ForkServer): boolean {
    return this.#currentServer === server
  }

  async #server(): Promise<ForkServer> {
    const current = this.#currentServer
    if (current !== undefined) {
      const worn =
        current.spawned >= this.#config.maxRunsPerServer ||
        Date.now() - current.startedAt >= this.#config.maxServerAgeMs
      if (current.alive && !worn) return current
      if (worn && current.alive) {
        this.stats.recycled++
        this.#currentServer = undefined
        this.#current = undefined
        if (current.liveChildren === 0) void this.#retire(current)
      } else {
        this.#currentServer = undefined
        this.#current = undefined
      }
    }
    this.#current ??= this.#startServer().then(
      (server) => {
        this.#currentServer = server
        return server
      },
      (error: unknown) => {
        this.#current = undefined
        throw error
      },
    )
    return this.#current
  }

  async #startServer(): Promise<ForkServer> {
    const id = `forkserver-${this.#options.image}-${randomUUID()}`.slice(0, 64)
    const uid = this.#uids?.acquire()
    let cgroup: RunCgroup | undefined
    try {
      cgroup = await this.#cgroups.create(id, {
        memoryBytes: this.#config.serverMemoryBytes,
        pids: 1024,
        cpuQuotaCores: this.#config.cpuQuotaCores,
      })
      const [none, loopback, [initPath, loopPath]] = await Promise.all([
        buildSeccompFilter({ network: 'none' }, { pythonPath: this.#seccompPython }),
        buildSeccompFilter({ network: 'loopback' }, { pythonPath: this.#seccompPython }),
        (this.#nativePaths ??= Promise.all([
          buildSandboxInit(defaultCacheDir()),
          buildForkServerLoop(defaultCacheDir()),
        ]).catch((error: unknown) => {
          this.#nativePaths = undefined
          throw error
        })),
      ])
      const server = await ForkServer.start({
        id,
        bwrapPath: this.#config.bwrapPath,
        pythonPath: this.#config.pythonPath,
        uid,
        gid: uid,
        cgroup,
        socketDir: this.#socketDir(id),
        hostFiles: {
          passwd: path.join(this.#config.stateDir, 'etc', 'passwd'),
          group: path.join(this.#config.stateDir, 'etc', 'group'),
        },
        rootLinks: describeRootLinks(),
        mounts: this.#options.mounts,
        childFiles: this.#options.childFiles,
        env: this.#options.env,
        seccomp: { none, loopback },
        preload: this.#config.preload,
        initPath,
        loopPath,
        logger: this.#logger,
      })
      this.stats.started++
      this.#servers.add(server)
      this.#serverUids.set(server, { uid: uid ?? process.getuid?.() ?? 0, cgroup })
      server.onExit((reason) => {
        if (!this.#closed && this.#servers.has(server) && !reason.includes('was stopped')) {
          this.stats.crashed++
          this.#logger.warn({ forkServer: id, reason }, 'a fork server died; starting another')
        }
        if (this.#currentServer === server) {
          this.#currentServer = undefined
          this.#current = undefined
        }
        void this.#retire(server)
      })
      return server
    } catch (error) {
      await cgroup?.destroy().catch(() => {})
      if (uid !== undefined) this.#uids?.release(uid)
      throw error instanceof SandboxError
        ? error
        : new SandboxError(
            'backend_unavailable',
            'a fork server could not start',
            {},
            { cause: error },
          )
    }
  }

  /**
   * A directory of its own for a fork server's socket. A unix socket's path has at most 107
   * bytes: under a deep state directory, the socket goes under the system's temporary directory.
   */
  #socketDir(id: string): string {
    const name = id.slice(-12)
    const preferred = path.join(this.#config.stateDir, 'fs', name)
    return Buffer.byteLength(preferred) <= 96
      ? preferred
      : path.join(os.tmpdir(), `hutch-fs-${name}`)
  }

  async #retire(server: ForkServer): Promise<void> {
    const owner = this.#serverUids.get(server)
    if (!this.#servers.delete(server)) return
    this.#serverUids.delete(server)
    await server.stop().catch(() => {})
    await owner?.cgroup.destroy().catch(() => {})
    fs.rmSync(this.#socketDir(server.id), {
      recursive: true,
      force: true,
    })
    if (owner !== undefined && this.#uids !== undefined) this.#uids.release(owner.uid)
  }
}

/** One child of a fork server, prepared for one run. */
class ForkSlot implements Slot {
  readonly runId: string
  readonly limits: Limits
  readonly network: 'none' | 'loopback'
  readonly workdir: string
  readonly uid: number
  readonly gid: number
  readonly server: ForkServer
  readonly #backend: ForkServerBackend
  readonly #child: ForkChild
  readonly #cgroup: RunCgroup
  readonly #workdirFd: number
  #state: 'ready' | 'running' | 'used' | 'released' = 'ready'
  /** Lines the sandbox writes back on its stdin connection: the files' reply, then `done N`. */
  readonly #lines: SocketLines
  /** Whether its child was reaped (or its fork server died) before or during the run. */
  #childGone = false

  constructor(
    backend: ForkServerBackend,
    server: ForkServer,
    options: SlotOptions,
    network: 'none' | 'loopback',
    child: ForkChild,
    cgroup: RunCgroup,
    workdirFd: number,
    uid: number,
  ) {
    this.#backend = backend
    this.server = server
    this.runId = options.runId
    this.limits = options.limits
    this.network = network
    this.#child = child
    this.#cgroup = cgroup
    this.#workdirFd = workdirFd
    this.workdir = `/proc/self/fd/${workdirFd}`
    this.uid = uid
    this.gid = uid
    void child.exited.then(() => {
      this.#childGone = true
    })
    this.#lines = new SocketLines(child.stdin)
  }

  async putFiles(files: readonly SlotFile[]): Promise<{ written: Promise<TreeSnapshot> }> {
    this.#assertRunnable()
    const sent = new Map<string, { size: number; sha256: string }>()
    const socket = this.#child.stdin
    const send = async (message: object, data?: Uint8Array): Promise<void> => {
      if (socket.destroyed || this.#childGone) {
        throw new SandboxError('backend_unavailable', 'the sandbox is gone')
      }
      const json = Buffer.from(JSON.stringify(message))
      const header = Buffer.alloc(4)
      header.writeUInt32BE(json.length)
      const ok = socket.write(
        data === undefined ? Buffer.concat([header, json]) : Buffer.concat([header, json, data]),
      )
      if (!ok) await once(socket, 'drain')
    }
    const sendData = async (chunk: Uint8Array): Promise<void> => {
      for (let offset = 0; offset < chunk.length; offset += maxFrameBytes) {
        const part = chunk.subarray(offset, offset + maxFrameBytes)
        await send({ op: 'data', size: part.length }, part)
      }
    }
    for (const file of files) {
      await send({ op: 'open', path: file.path })
      const hash = createHash('sha256')
      let size = 0
      const sendHashed = async (chunk: Uint8Array): Promise<void> => {
        hash.update(chunk)
        size += chunk.length
        await sendData(chunk)
      }
      const content = file.content
      if (typeof content === 'string') await sendHashed(Buffer.from(content))
      else if (content instanceof Uint8Array) await sendHashed(content)
      else {
        const chunks =
          'hostPath' in content
            ? (await openHostFile(content.hostPath)).handle.createReadStream()
            : content
        for await (const chunk of chunks as AsyncIterable<Uint8Array | string>) {
          await sendHashed(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
        }
      }
      await send({ op: 'close' })
      sent.set(file.path, { size, sha256: hash.digest('hex') })
    }
    await send({ op: 'sync' })
    const written = this.#lines.next().then((reply) => writtenSnapshot(reply, sent))
    written.catch(() => {})
    return { written }
  }

  healthy(): boolean {
    return this.#state === 'ready' && this.server.alive && !this.#childGone
  }

  #assertRunnable(): void {
    if (this.#state !== 'ready') {
      throw new SandboxError('invalid_request', `this sandbox is ${this.#state}; each runs once`)
    }
    if (!this.server.alive || this.#childGone) {
      throw new SandboxError('backend_unavailable', 'this sandbox or its fork server is gone')
    }
  }

  async run(spec: SlotRunSpec): Promise<ProcessResult> {
    this.#assertRunnable()
    if (spec.policy.network !== this.network) {
      throw new SandboxError(
        'invalid_request',
        `this sandbox was prepared for network ${this.network}`,
      )
    }
    this.#state = 'running'
    try {
      return await this.#supervise(spec)
    } finally {
      this.#state = 'used'
    }
  }

  async #supervise(spec: SlotRunSpec): Promise<ProcessResult> {
    const config = this.#backend.config
    const limits = spec.policy.limits
    const run = new RunSupervisor(spec, this.#cgroup, () => {})
    const child = this.#child
    const drained = (socket: typeof child.stdout): Promise<void> =>
      new Promise((resolve) => {
        if (socket.destroyed || socket.readableEnded) resolve()
        socket.once('end', resolve)
        socket.once('close', resolve)
      })
    run.collect(child.stdout, 'stdout')
    run.collect(child.stderr, 'stderr')
    const outputsDone = Promise.all([drained(child.stdout), drained(child.stderr)])
    child.stdout.resume()
    child.stderr.resume()

    const [first, ...rest] = spec.argv
    const inProcess = first === config.pythonPath && rest[0] === '-u'
    const request = Buffer.from(
      JSON.stringify({
        op: 'run',
        mode: inProcess ? 'python' : 'exec',
        argv: inProcess ? rest.slice(1) : spec.argv,
        env: spec.policy.env,
        cpuSeconds: Math.ceil(limits.cpuTimeMs / 1000) + 1,
      }),
    )
    const header = Buffer.alloc(4)
    header.writeUInt32BE(request.length)
    child.stdin.on('error', () => {})
    child.stdin.write(Buffer.concat([header, request]))
    if (spec.stdin !== undefined) child.stdin.write(spec.stdin)
    child.stdin.end()

    run.watch(config.cpuPollMs)
    try {
      // A python program reports its end itself, before its interpreter's teardown.
      const ended = await Promise.race([
        child.exited.then((exit) => ({ exit })),
        ...(inProcess ? [this.#lines.done().then((code) => ({ code }))] : []),
      ])
      let exit: ForkChildExit
      if (
        'code' in ended &&
        run.stopReason === undefined &&
        (await this.#frozenAlone(outputsDone))
      ) {
        // Every process of the run is stopped: nothing can change a file while it is read back.
        // The slot kills them when it is released.
        exit = { code: ended.code, signal: null }
      } else {
        // The program's process (pid 1 of its namespace) ended, or it said it did but left other
        // processes behind: every process of the run dies, the cgroup is empty, before a byte
        // is read back.
        await this.#cgroup.killAll()
        const reaped = await child.exited
        exit =
          'code' in ended && run.stopReason === undefined
            ? { code: ended.code, signal: null }
            : reaped
        await outputsDone
      }
      const stats = await this.#cgroup.stats()
      if (
        !this.server.alive &&
        run.stopReason === undefined &&
        exit.signal === 9 &&
        !stats.oomKilled
      ) {
        throw new SandboxError('backend_unavailable', 'the fork server died during the run')
      }
      const { exitCode, signal } =
        exit.signal === null
          ? decodeExit(exit.code, null)
          : { exitCode: null, signal: signalName(exit.signal) }
      return run.result(stats, exitCode, signal)
    } finally {
      run.unwatch()
    }
  }

  /**
   * After the program said it ended: whether it and the sandbox's init are the run's only
   * processes, with its output
   * closed, once the run's cgroup is frozen.
   */
  async #frozenAlone(outputsDone: Promise<unknown>): Promise<boolean> {
    const closed = await Promise.race([
      outputsDone.then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), outputGraceMs)),
    ])
    if (!closed) return false
    await this.#cgroup.freeze()
    const pids = new Set(await this.#cgroup.pids())
    // The sandbox's init, waiting, and the program's process: nothing else.
    return (
      pids.size === this.#child.hostPids.length &&
      this.#child.hostPids.every((pid) => pids.has(pid))
    )
  }

  /**
   * Sets the niceness of the run's processes, found in its cgroup: a pid the slot once knew may
   * have been reaped and reused by another process of the host since.
   */
  async #renice(niceness: number): Promise<void> {
    for (const pid of await this.#cgroup.pids()) setNiceness(pid, niceness)
  }

  async release(): Promise<void> {
    if (this.#state === 'released') return
    this.#state = 'released'
    // A forked interpreter's teardown takes milliseconds of CPU: it gives way to the runs under
    // way (it is done either way before the slot's cgroup is gone).
    await this.#renice(teardownNiceness).catch(() => {})
    try {
      await this.#cgroup.destroy()
      await this.#child.exited
    } finally {
      for (const stream of [this.#child.stdin, this.#child.stdout, this.#child.stderr]) {
        stream.destroy()
      }
      fs.closeSync(this.#workdirFd)
      await this.#backend.childGone(this.server)
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release()
  }
}

/** Sets a process's niceness; one already gone is left alone. */
function setNiceness(pid: number, niceness: number): void {
  try {
    os.setPriority(pid, niceness)
  } catch {
    // Gone meanwhile: nothing to do.
  }
}
