import { spawn, type ChildProcess } from 'node:child_process'
import fsp from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { RunCgroup } from '../../cgroups/cgroups.ts'
import type { Logger } from '../../logger.ts'
import { defaultLimits } from '../../policy/limits.ts'
import type { Mount } from '../../policy/policy.ts'
import type { SandboxFile } from '../../runtimes/matplotlib-font-cache.ts'
import { SandboxError } from '../../sandbox-error.ts'
import type { BwrapHostFiles } from '../bubblewrap/bwrap-args.ts'
import { buildBwrapArgs } from '../bubblewrap/bwrap-args.ts'
import { gateScript } from '../bubblewrap/gate-script.ts'
import { childPids, findDescendant, nsPids } from './proc-pids.ts'

/** The fork server's program, given to its sandbox by content. */
export const forkServerScriptPath: string = fileURLToPath(
  new URL('../../../assets/forkserver.py', import.meta.url),
)

/**
 * Where the fork server's own files appear inside its sandbox: under /tmp, which each child
 * covers with a fresh tmpfs before user code runs.
 */
const innerDir = '/tmp/.hutch'
/** Where the directory holding the server's socket appears inside the fork server's sandbox. */
const innerSocketDir = '/tmp/.hutch/run'
const socketName = 'c.sock'
const helloTimeoutMs = 60_000
const spawnTimeoutMs = 15_000

/** What a child's id may be made of, as the fork server's loop reads it. */
const childIdPattern = /^[A-Za-z0-9_.:-]{1,64}$/

/** The loop's `spawn` line (hutch-forkserver.c): every size a whole number of bytes. */
function spawnCommand(id: string, spec: ForkChildSpec): string {
  if (!childIdPattern.test(id)) {
    throw new SandboxError(
      'invalid_request',
      `a fork server child cannot be named ${JSON.stringify(id)}`,
    )
  }
  const count = (value: number): string =>
    String(Math.min(Math.max(Math.floor(value), 0), Number.MAX_SAFE_INTEGER))
  const sizes = [spec.diskBytes, spec.tmpBytes, spec.shmBytes, spec.openFiles, spec.fileSizeBytes]
  return ['spawn', id, spec.network, ...sizes.map(count)].join(' ')
}

/** Everything one fork server is launched with. */
export interface ForkServerLaunch {
  id: string
  bwrapPath: string
  pythonPath: string
  /** Host uid and gid the fork server and all its children run as. */
  uid: number | undefined
  gid: number | undefined
  /** The fork server's own cgroup; each child moves to a cgroup of its own when ready. */
  cgroup: RunCgroup
  /** A host directory of its own, for the socket its children connect to. */
  socketDir: string
  hostFiles: BwrapHostFiles
  rootLinks: readonly { name: string; link?: string; dir?: boolean }[]
  /** Read-only host paths every runtime needs (the union of the runtimes' mounts). */
  mounts: readonly Mount[]
  /** Files each child gets in its fresh /tmp (the matplotlib font cache). */
  childFiles: readonly SandboxFile[]
  /** The fork server's environment (the python runtime's). */
  env: Readonly<Record<string, string>>
  /** seccomp BPF programs by network mode. */
  seccomp: { none: Uint8Array; loopback: Uint8Array }
  /** Python modules imported once, before any fork. */
  preload: readonly string[]
  /** The host path of the sandboxes' pid 1 program (`buildSandboxInit`). */
  initPath: string
  /** The host path of the fork server's loop, a shared library (`buildForkServerLoop`). */
  loopPath: string
  logger: Logger
}

/** A child's sandbox, what it is made with. */
export interface ForkChildSpec {
  network: 'none' | 'loopback'
  diskBytes: number
  tmpBytes: number
  shmBytes: number
  openFiles: number
  fileSizeBytes: number
}

/** How a child ended. */
export interface ForkChildExit {
  code: number | null
  signal: number | null
}

/** A prepared child: connected, set up, waiting for its request. */
export interface ForkChild {
  readonly id: string
  /** Its two processes' pids on the host: the sandbox's init, and the one that runs the program. */
  readonly hostPids: readonly number[]
  /** The pid on the host of the process that runs the program (in the sandbox's mounts). */
  readonly programHostPid: number
  readonly stdin: net.Socket
  readonly stdout: net.Socket
  readonly stderr: net.Socket
  /** Resolves when the fork server reaped it; never rejects (a dead fork server is a SIGKILL). */
  readonly exited: Promise<ForkChildExit>
}

interface PendingChild {
  id: string
  /** The program's and the init's pids in the fork server's pid namespace. */
  nsPid?: number
  initNsPid?: number
  streams: Partial<Record<'stdin' | 'stdout' | 'stderr', net.Socket>>
  resolveExit: (exit: ForkChildExit) => void
  exited: Promise<ForkChildExit>
  settle?: ((error?: Error) => void) | undefined
  ready: boolean
}

/**
 * One fork server ("zygote", DESIGN section 4): a Python interpreter in its own bubblewrap
 * sandbox that has imported the heavy libraries and forks a sandbox per `spawn`. It never runs
 * user code; its children do, each after giving up every right the fork server kept.
 */
export class ForkServer {
  readonly id: string
  readonly startedAt = Date.now()
  /** Children asked of it so far. */
  spawned = 0
  readonly #launch: ForkServerLaunch
  readonly #process: ChildProcess
  readonly #listener: net.Server
  readonly #children = new Map<string, PendingChild>()
  #hostPid: number | undefined
  #exitReason: string | undefined
  /** How many pid namespaces deep the fork server is, seen from the host. */
  #depth: number | undefined
  /** The fork server's children seen so far: host pid -> pid in the fork server's namespace. */
  readonly #nsPidOfChild = new Map<number, number>()
  readonly #exitedPromise: Promise<void>
  #onExit: ((reason: string) => void) | undefined

  private constructor(launch: ForkServerLaunch, child: ChildProcess, listener: net.Server) {
    this.id = launch.id
    this.#launch = launch
    this.#process = child
    this.#listener = listener
    this.#exitedPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#died(`the fork server exited (code ${code}, signal ${signal})`)
      })
      child.once('close', () => resolve())
    })
  }

  /** Starts a fork server and waits until it has preloaded its libraries. */
  static async start(launch: ForkServerLaunch): Promise<ForkServer> {
    await fsp.mkdir(launch.socketDir, { recursive: true, mode: 0o711 })
    const socketPath = path.join(launch.socketDir, socketName)
    await fsp.rm(socketPath, { force: true })
    const listener = net.createServer({ allowHalfOpen: true })
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject)
      listener.listen(socketPath, () => resolve())
    })
    if (launch.uid !== undefined) await fsp.chown(socketPath, launch.uid, launch.gid ?? launch.uid)
    await fsp.chmod(socketPath, 0o600)

    const config = {
      socket: `${innerSocketDir}/${socketName}`,
      seccomp: {
        none: `${innerDir}/seccomp-none.bpf`,
        loopback: `${innerDir}/seccomp-loopback.bpf`,
      },
      files: Object.fromEntries(
        launch.childFiles.map((file, index) => [file.target, `${innerDir}/file-${index}`]),
      ),
      preload: launch.preload,
      env: launch.env,
      init: `${innerDir}/hutch-sandbox-init`,
      native: `${innerDir}/hutch-forkserver.so`,
    }
    const files: { target: string; content: Uint8Array; mode?: string }[] = [
      {
        target: `${innerDir}/hutch-sandbox-init`,
        content: await fsp.readFile(launch.initPath),
        mode: '0555',
      },
      { target: `${innerDir}/hutch-forkserver.so`, content: await fsp.readFile(launch.loopPath) },
      { target: `${innerDir}/forkserver.py`, content: await fsp.readFile(forkServerScriptPath) },
      { target: `${innerDir}/config.json`, content: Buffer.from(JSON.stringify(config)) },
      { target: `${innerDir}/seccomp-none.bpf`, content: launch.seccomp.none },
      { target: `${innerDir}/seccomp-loopback.bpf`, content: launch.seccomp.loopback },
      ...launch.childFiles.map((file, index) => ({
        target: `${innerDir}/file-${index}`,
        content: file.content,
      })),
    ]
    const argsFd = 3
    const gateFd = 4
    const firstFileFd = 5
    const args = buildBwrapArgs(
      {
        mounts: launch.mounts,
        network: 'none',
        env: {},
        limits: defaultLimits,
      },
      {
        rootLinks: launch.rootLinks,
        hostFiles: launch.hostFiles,
        fds: {},
        tmpBytes: 64 * 1024 * 1024,
        shmBytes: 4096,
        keepCapabilities: true,
      },
    )
    const remountAt = args.indexOf('--remount-ro')
    args.splice(
      remountAt,
      0,
      '--ro-bind',
      launch.socketDir,
      innerSocketDir,
      ...files.flatMap((file, index) => [
        '--perms',
        file.mode ?? '0444',
        '--ro-bind-data',
        String(firstFileFd + index),
        file.target,
      ]),
    )
    const keptFds = [0, 1, 2, argsFd, ...files.map((_, index) => firstFileFd + index)]
    const child = spawn(
      '/bin/bash',
      [
        '--noprofile',
        '--norc',
        '-c',
        gateScript(
          { openFiles: undefined, fileSizeBytes: 2 ** 40, cpuSeconds: undefined },
          keptFds,
        ),
        'hutch-forkserver',
        launch.bwrapPath,
        '--args',
        String(argsFd),
        '--',
        launch.pythonPath,
        '-I',
        `${innerDir}/forkserver.py`,
      ],
      {
        cwd: '/',
        env: {},
        ...(launch.uid === undefined ? {} : { uid: launch.uid, gid: launch.gid ?? launch.uid }),
        stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe', ...files.map(() => 'pipe' as const)],
      },
    )
    const server = new ForkServer(launch, child, listener)
    listener.on('connection', (socket) => server.#accept(socket))
    try {
      if (child.pid === undefined)
        throw new SandboxError('backend_unavailable', 'bash did not start')
      await launch.cgroup.addProcess(child.pid)
      const stdio = child.stdio as unknown as readonly (Writable | null)[]
      stdio[argsFd]?.end(Buffer.from(args.map((a) => `${a}\0`).join('')))
      files.forEach((file, index) => stdio[firstFileFd + index]?.end(file.content))
      for (const stream of stdio) stream?.on('error', () => {})
      stdio[gateFd]?.end('go\n')
      await server.#awaitHello(child.pid)
      return server
    } catch (error) {
      await server.stop()
      throw error
    }
  }

  /** The fork server's pid on the host, once it has started. */
  get hostPid(): number | undefined {
    return this.#hostPid
  }

  /** Whether it still takes `spawn`s. */
  get alive(): boolean {
    return this.#exitReason === undefined
  }

  /** Children prepared or running. */
  get liveChildren(): number {
    return this.#children.size
  }

  /** Called once, when the fork server dies (crash, kill, or stop). */
  onExit(listener: (reason: string) => void): void {
    this.#onExit = listener
    if (this.#exitReason !== undefined) listener(this.#exitReason)
  }

  /** Forks a child sandbox and waits until it is set up and connected. */
  spawn(id: string, spec: ForkChildSpec): Promise<ForkChild> {
    if (this.#exitReason !== undefined) {
      return Promise.reject(new SandboxError('backend_unavailable', this.#exitReason))
    }
    let command: string
    try {
      command = spawnCommand(id, spec)
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
    this.spawned++
    let resolveExit!: (exit: ForkChildExit) => void
    const pending: PendingChild = {
      id,
      streams: {},
      ready: false,
      resolveExit: (exit) => resolveExit(exit),
      exited: new Promise((resolve) => (resolveExit = resolve)),
    }
    this.#children.set(id, pending)
    // The sandbox's streams stay open past its exit (output may still be in flight); the slot
    // closes them when it is released.
    void pending.exited.then(() => this.#children.delete(id))
    return new Promise<ForkChild>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.settle?.(
          new SandboxError('backend_unavailable', 'a fork server child did not start'),
        )
      }, spawnTimeoutMs)
      pending.settle = (error) => {
        clearTimeout(timer)
        pending.settle = undefined
        if (error !== undefined) {
          pending.resolveExit({ code: null, signal: 9 })
          reject(error)
          return
        }
        try {
          resolve(this.#childOf(pending))
        } catch (childError) {
          reject(childError instanceof Error ? childError : new Error(String(childError)))
        }
      }
      this.#send(command)
    })
  }

  /** Stops the fork server; its children die with it. */
  async stop(): Promise<void> {
    this.#died('the fork server was stopped')
    this.#process.kill('SIGKILL')
    await this.#launch.cgroup.killAll().catch(() => {})
    await this.#exitedPromise
    this.#listener.close()
    await fsp.rm(path.join(this.#launch.socketDir, socketName), { force: true })
  }

  #childOf(pending: PendingChild): ForkChild {
    const { stdin, stdout, stderr } = pending.streams
    if (
      pending.nsPid === undefined ||
      pending.initNsPid === undefined ||
      !stdin ||
      !stdout ||
      !stderr ||
      this.#hostPid === undefined
    ) {
      throw new SandboxError('backend_unavailable', 'a fork server child is incomplete')
    }
    const [programHostPid, initHostPid] = this.#hostPidsOf([pending.nsPid, pending.initNsPid])
    if (programHostPid === undefined || initHostPid === undefined) {
      throw new SandboxError('backend_unavailable', 'a fork server child vanished')
    }
    return {
      id: pending.id,
      hostPids: [initHostPid, programHostPid],
      programHostPid,
      stdin,
      stdout,
      stderr,
      exited: pending.exited,
    }
  }

  /**
   * Host pids of the fork server's children with these pids in its namespace. Its children are
   * listed each time; the pid namespace each one sits in is read once per child, not per lookup
   * (a listed child, reaped or not, keeps its pids).
   */
  #hostPidsOf(nsPidsWanted: readonly number[]): (number | undefined)[] {
    const forkServer = this.#hostPid
    if (forkServer === undefined) return nsPidsWanted.map(() => undefined)
    this.#depth ??= nsPids(forkServer)?.length
    const depth = this.#depth
    if (depth === undefined) return nsPidsWanted.map(() => undefined)
    const children = childPids(forkServer)
    const listed = new Set(children)
    for (const pid of this.#nsPidOfChild.keys()) {
      if (!listed.has(pid)) this.#nsPidOfChild.delete(pid)
    }
    const hostPidOf = new Map<number, number>()
    for (const pid of children) {
      let nsPid = this.#nsPidOfChild.get(pid)
      if (nsPid === undefined) {
        nsPid = nsPids(pid)?.[depth - 1]
        if (nsPid === undefined) continue
        this.#nsPidOfChild.set(pid, nsPid)
      }
      hostPidOf.set(nsPid, pid)
    }
    return nsPidsWanted.map((nsPid) => hostPidOf.get(nsPid))
  }

  #maybeReady(pending: PendingChild): void {
    const { stdin, stdout, stderr } = pending.streams
    if (pending.ready && stdin && stdout && stderr) pending.settle?.()
  }

  #accept(socket: net.Socket): void {
    let hello = Buffer.alloc(0)
    socket.on('error', () => {})
    const onData = (chunk: Buffer): void => {
      hello = Buffer.concat([hello, chunk])
      const end = hello.indexOf(10)
      if (end < 0) {
        if (hello.length > 512) socket.destroy()
        return
      }
      socket.off('data', onData)
      socket.pause()
      const rest = hello.subarray(end + 1)
      if (rest.length > 0) socket.unshift(rest)
      let message: { id?: unknown; stream?: unknown }
      try {
        message = JSON.parse(hello.subarray(0, end).toString('utf8')) as typeof message
      } catch {
        socket.destroy()
        return
      }
      const pending = typeof message.id === 'string' ? this.#children.get(message.id) : undefined
      const stream = message.stream
      if (
        pending === undefined ||
        (stream !== 'stdin' && stream !== 'stdout' && stream !== 'stderr') ||
        pending.streams[stream] !== undefined ||
        pending.settle === undefined
      ) {
        socket.destroy()
        return
      }
      pending.streams[stream] = socket
      this.#maybeReady(pending)
    }
    socket.on('data', onData)
  }

  #send(line: string): void {
    const stdin = this.#process.stdin
    if (stdin === null || this.#exitReason !== undefined) return
    stdin.write(`${line}\n`)
  }

  #awaitHello(gatePid: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new SandboxError('backend_unavailable', 'the fork server did not start in time'))
      }, helloTimeoutMs)
      let stderrText = ''
      this.#process.stderr?.on('data', (chunk: Buffer) => {
        if (stderrText.length < 4000) stderrText += chunk.toString('utf8')
        this.#launch.logger.warn(
          { forkServer: this.id, stderr: chunk.toString('utf8') },
          'fork server',
        )
      })
      void this.#exitedPromise.then(() => {
        clearTimeout(timer)
        reject(
          new SandboxError(
            'backend_unavailable',
            `the fork server exited: ${stderrText.split('\n').slice(-3).join(' ').trim()}`,
          ),
        )
      })
      readLines(this.#process.stdout, (line) => {
        let event: {
          ev?: unknown
          id?: unknown
          pid?: unknown
          init?: unknown
          code?: unknown
          signal?: unknown
          reason?: unknown
        }
        try {
          event = JSON.parse(line) as typeof event
        } catch {
          return
        }
        if (event.ev === 'hello' && typeof event.pid === 'number') {
          this.#hostPid = findDescendant(gatePid, (pids) => pids.at(-1) === event.pid)
          clearTimeout(timer)
          if (this.#hostPid === undefined) {
            reject(
              new SandboxError('backend_unavailable', 'cannot find the fork server on the host'),
            )
          } else resolve()
          return
        }
        const pending = typeof event.id === 'string' ? this.#children.get(event.id) : undefined
        if (pending === undefined) return
        if (
          event.ev === 'ready' &&
          typeof event.pid === 'number' &&
          typeof event.init === 'number'
        ) {
          pending.nsPid = event.pid
          pending.initNsPid = event.init
          pending.ready = true
          this.#maybeReady(pending)
        } else if (event.ev === 'failed') {
          this.#launch.logger.error(
            { forkServer: this.id, reason: event.reason },
            'fork server child failed',
          )
          pending.settle?.(
            new SandboxError(
              'backend_unavailable',
              `a fork server child failed: ${String(event.reason)}`,
            ),
          )
        } else if (event.ev === 'exit') {
          pending.resolveExit({
            code: typeof event.code === 'number' ? event.code : null,
            signal: typeof event.signal === 'number' ? event.signal : null,
          })
        }
      })
    })
  }

  #died(reason: string): void {
    if (this.#exitReason !== undefined) return
    this.#exitReason = reason
    for (const pending of this.#children.values()) {
      pending.settle?.(new SandboxError('backend_unavailable', reason))
      pending.resolveExit({ code: null, signal: 9 })
      for (const stream of Object.values(pending.streams)) stream.destroy()
    }
    this.#onExit?.(reason)
  }
}

function readLines(stream: Readable | null, onLine: (line: string) => void): void {
  let buffered = ''
  stream?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8')
    let end: number
    while ((end = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, end)
      buffered = buffered.slice(end + 1)
      onLine(line)
    }
  })
}
