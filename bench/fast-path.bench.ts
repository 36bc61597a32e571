/**
 * Issue 4's side-by-side benchmark: the same workloads (a trivial print, pandas `describe()` of a
 * 10k-row frame, a matplotlib figure saved to PNG, bash `echo`) over HTTP through
 *   - hutch with the fast path on (fork servers, warm pool 4-16) and off (HUTCH_FAST_PATH=false);
 *   - a naive Node server spawning /usr/bin/python3 (or bash) per request, no isolation;
 *   - the same server wrapping each run in bubblewrap (cold interpreter, no hutch);
 *   - the NVIDIA agent-toolkit model: a Python server forking a multiprocessing.Process per request;
 *   - the same Node server wrapping each run in gVisor `runsc do`, where runsc is installed.
 * Figures: p50/p99 latency at concurrency 1, runs/s at concurrency 4 and 16, CPU ms per run of the
 * whole machine, and PSS per idle warm sandbox; each baseline as a ratio to hutch (fast path on).
 * All servers are up at once; one path is measured at a time, the paths in turn for each workload,
 * so that drift in the machine's other work falls on all alike. It measures; it asserts nothing.
 *
 *   ./scripts/bench fast [runs] [path] (default 40: runs at c1, 5x at c4 and c16; heavy workloads
 *                                      half at c1 and 1x at c4 and c16; path: only the paths whose
 *                                      label holds this text, as `hutch` or `fast path on`)
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import readline from 'node:readline'
import { testServerPlacement } from '../test/support/server.ts'

const runs = Number(process.argv[2] ?? 40)
/** Only the paths whose label holds this text (`hutch`, `fast path on`...), when given. */
const onlyPaths = process.argv[3]
const root = path.resolve(import.meta.dirname, '..')
const benchStartedAt = performance.now()
const loadAverage = () =>
  os
    .loadavg()
    .map((value) => value.toFixed(1))
    .join(' ')
const loadAtStart = loadAverage()

interface Workload {
  name: string
  language: 'python' | 'bash'
  code: string
  /** A light workload takes `runs` at c1 and 5x at c4/c16; a heavy one half and 1x. */
  heavy: boolean
  expectStdout: (stdout: string) => boolean
}

const workloads: Workload[] = [
  {
    name: 'trivial python `print(1)`',
    language: 'python',
    code: 'print(1)',
    heavy: false,
    expectStdout: (stdout) => stdout === '1\n',
  },
  {
    name: 'pandas `describe()` of 10k rows',
    language: 'python',
    code: [
      'import numpy as np',
      'import pandas as pd',
      "frame = pd.DataFrame(np.random.default_rng(0).random((10_000, 4)), columns=list('abcd'))",
      'print(frame.describe())',
    ].join('\n'),
    heavy: true,
    expectStdout: (stdout) => stdout.includes('count  10000.000000'),
  },
  {
    name: 'matplotlib figure saved to PNG',
    language: 'python',
    code: [
      'import matplotlib',
      "matplotlib.use('Agg')",
      'import matplotlib.pyplot as plt',
      'fig, ax = plt.subplots()',
      'ax.plot(range(100), [i * i for i in range(100)])',
      "fig.savefig('plot.png')",
      "print('saved')",
    ].join('\n'),
    heavy: true,
    expectStdout: (stdout) => stdout === 'saved\n',
  },
  {
    name: 'bash `echo hi`',
    language: 'bash',
    code: 'echo hi',
    heavy: false,
    expectStdout: (stdout) => stdout === 'hi\n',
  },
]

/** Memory at rest: per idle warm sandbox, and of the long-lived helpers (fork servers, servers). */
interface Memory {
  sandboxMb: number | undefined
  sandboxes: number
  sandboxNote?: string
  /** Private memory (USS) per idle warm sandbox: what one more costs, shared pages aside. */
  sandboxPrivateMb?: number | undefined
  helpersMb: number | undefined
  helpersNote: string
}

interface BenchPath {
  label: string
  /** Why the path cannot run on this machine, if it cannot. */
  unavailable?: () => string | undefined
  /** A share of the run counts, for a path too slow to take them all in the time. */
  runShare?: number
  /** hutch's own account of each run since the last call (queue, sync in, run, sync out). */
  takeTimings?: () => Timings[]
  start(): Promise<void>
  /** One run over HTTP; throws unless the workload's output came back. */
  execute(workload: Workload): Promise<void>
  memory(): Promise<Memory>
  stop(): Promise<void>
}

type Timings = Record<'queueMs' | 'syncInMs' | 'runMs' | 'syncOutMs' | 'totalMs', number>

interface Figures {
  p50Ms: number
  p99Ms: number
  c4PerSecond: number
  c16PerSecond: number
  cpuMsPerRun: number
  /** Of it, the bench's own process: the load generator (every server is a child process). */
  benchCpuMsPerRun: number
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}

/** Runs `total` calls of `once`, `concurrency` at a time, after `warmUp` calls one at a time. */
async function load(
  once: () => Promise<void>,
  total: number,
  concurrency: number,
  warmUp = 1,
): Promise<{
  samples: number[]
  perSecond: number
  cpuMsPerRun: number
  benchCpuMsPerRun: number
}> {
  for (let run = 0; run < warmUp; run++) await once()
  const samples: number[] = []
  let next = 0
  const cpuBefore = busyCpuMs()
  const benchCpuBefore = process.cpuUsage()
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next++
        const t0 = performance.now()
        await once()
        samples.push(performance.now() - t0)
      }
    }),
  )
  const perSecond = (total / (performance.now() - started)) * 1000
  const benchCpu = process.cpuUsage(benchCpuBefore)
  return {
    samples,
    perSecond,
    cpuMsPerRun: (busyCpuMs() - cpuBefore) / total,
    benchCpuMsPerRun: (benchCpu.user + benchCpu.system) / 1000 / total,
  }
}

const clockTicksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100

/** Whole-machine busy CPU time (user+nice+system+irq+softirq from /proc/stat), in ms. */
function busyCpuMs(): number {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/) ?? []
  const [user, nice, system, , , irq, softirq] = fields.slice(1).map(Number)
  const jiffies = [user, nice, system, irq, softirq].reduce<number>((a, b) => a + (b ?? 0), 0)
  return (jiffies * 1000) / clockTicksPerSecond
}

/** Proportional set size of a process in kB (0 if it is gone). */
function pssKb(pid: number): number {
  return smapsKb(pid, ['Pss'])
}

/** Memory only this process maps (private clean and dirty pages: its USS), in kB. */
function privateKb(pid: number): number {
  return smapsKb(pid, ['Private_Clean', 'Private_Dirty'])
}

function smapsKb(pid: number, fields: string[]): number {
  try {
    const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
    return fields.reduce(
      (total, field) =>
        total + Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0),
      0,
    )
  } catch {
    return 0
  }
}

/** A process's name (`comm`), or '' once it is gone. */
function commOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  } catch {
    return ''
  }
}

/** A process's parent pid, or 0 once it is gone. */
function parentOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
  } catch {
    return 0
  }
}

/** Every process's children, from /proc. */
function processChildren(): Map<number, number[]> {
  const children = new Map<number, number[]>()
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
    } catch {
      // gone meanwhile
    }
  }
  return children
}

/** A process and all its descendants. */
function processTree(pid: number): number[] {
  const children = processChildren()
  const tree: number[] = []
  const pending = [pid]
  while (pending.length > 0) {
    const next = pending.pop() as number
    tree.push(next)
    pending.push(...(children.get(next) ?? []))
  }
  return tree
}

const mb = (kb: number) => kb / 1024

/** The pids of each `run-*` cgroup under a test server's cgroup parent (pids hierarchy). */
function runCgroups(dataDir: string): { name: string; pids: number[] }[] {
  const parent = path.join('/sys/fs/cgroup/pids', testServerPlacement(dataDir).cgroupParent)
  if (!fs.existsSync(parent)) return []
  return fs
    .readdirSync(parent)
    .filter((name) => name.startsWith('run-'))
    .map((name) => ({
      name,
      pids: fs
        .readFileSync(path.join(parent, name, 'cgroup.procs'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map(Number),
    }))
}

/** The baselines run code unisolated, as root: only requests carrying this token. */
const benchToken = randomBytes(24).toString('hex')
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
/** A run that has not answered by then counts as failed (the path's row says so). */
const requestTimeoutMs = 180_000

function hutchPath(label: string, fastPath: boolean): BenchPath {
  const server = childServer(
    process.execPath,
    ['--conditions=hutch-source', 'bench/baselines/hutch-server.ts'],
    {
      HUTCH_FAST_PATH: String(fastPath),
      HUTCH_POOL_MIN_WARM: '4',
      HUTCH_POOL_MAX_WARM: '16',
      HUTCH_MAX_CONCURRENT_RUNS: '16',
      HUTCH_RATE_LIMIT_PER_MINUTE: '0',
      HUTCH_MAX_QUEUE_DEPTH: '256',
    },
  )
  let timings: Timings[] = []
  const warmUp = () =>
    fetch(`${server.url()}/v1/pool/warm-up`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    })
  return {
    label,
    takeTimings() {
      const taken = timings
      timings = []
      return taken
    },
    async start() {
      await server.start()
      await warmUp()
    },
    async execute(workload) {
      const t0 = performance.now()
      const response = await fetch(`${server.url()}/v1/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        signal: AbortSignal.timeout(requestTimeoutMs),
        body: JSON.stringify({
          language: workload.language,
          code: workload.code,
          timeoutMs: 120_000,
        }),
      })
      const result = (await response.json()) as {
        status?: string
        stdout?: string
        outputFiles?: { path: string }[]
        timings?: Omit<Timings, 'totalMs'>
      }
      if (result.timings !== undefined) {
        timings.push({ ...result.timings, totalMs: performance.now() - t0 })
      }
      const pngBack =
        !workload.code.includes('savefig') || result.outputFiles?.[0]?.path === 'plot.png'
      if (result.status !== 'ok' || !workload.expectStdout(result.stdout ?? '') || !pngBack) {
        throw new Error(`hutch run failed: ${JSON.stringify(result).slice(0, 400)}`)
      }
    },
    async memory() {
      // Idle: the pool topped up and nothing running.
      await warmUp()
      await sleep(2000)
      const cgroups = runCgroups(server.dataDir())
      const forkServerCgroups = cgroups.filter(({ name }) => name.startsWith('run-forkserver-'))
      const forkServerPids = new Set(forkServerCgroups.flatMap(({ pids }) => pids))
      // The python fork server with the libraries preloaded (not python-stdlib's).
      const pythonForkServerPids = new Set(
        forkServerCgroups
          .filter(
            ({ name }) =>
              name.startsWith('run-forkserver-python-') &&
              !name.startsWith('run-forkserver-python-stdlib-'),
          )
          .flatMap(({ pids }) => pids),
      )
      // A warm run sandbox runs no bubblewrap: on the fast path it is its init and the program's
      // process, on the slow path no process at all (a workdir and a cgroup). What runs
      // bubblewrap outside a fork server's cgroup is a standby or live session kernel.
      const others = cgroups.filter(({ name }) => !name.startsWith('run-forkserver-'))
      const kernels = others.filter(({ pids }) => pids.some((pid) => commOf(pid) === 'bwrap'))
      const warm = others.filter((cgroup) => !kernels.includes(cgroup))
      // The python sandboxes: those forked by the python fork server (not the bash one).
      const slots = (
        fastPath
          ? warm.filter(({ pids }) => pids.some((pid) => pythonForkServerPids.has(parentOf(pid))))
          : warm
      ).map(({ pids }) => pids)
      // Those of the python-stdlib fork server (nothing preloaded), reported beside them.
      const stdlibForkServerPids = new Set(
        forkServerCgroups
          .filter(({ name }) => name.startsWith('run-forkserver-python-stdlib-'))
          .flatMap(({ pids }) => pids),
      )
      const stdlibSlots = warm
        .filter(({ pids }) => pids.some((pid) => stdlibForkServerPids.has(parentOf(pid))))
        .map(({ pids }) => pids)
      const forkServers = forkServerCgroups.length
      const sum = (pids: number[], kb: (pid: number) => number) =>
        pids.reduce((total, pid) => total + kb(pid), 0)
      const meanOf = (of: number[][], kb: (pid: number) => number) =>
        of.length > 0
          ? mb(of.reduce((total, pids) => total + sum(pids, kb), 0) / of.length)
          : undefined
      const mean = (kb: (pid: number) => number) => meanOf(slots, kb)
      const processes = slots.reduce((total, pids) => total + pids.length, 0)
      const stdlibNote =
        stdlibSlots.length === 0
          ? ''
          : `; python-stdlib pool: ${meanOf(stdlibSlots, pssKb)?.toFixed(1)} MB PSS, ${meanOf(stdlibSlots, privateKb)?.toFixed(1)} MB USS (mean of ${stdlibSlots.length})`
      return {
        sandboxNote:
          processes === 0
            ? 'no process (a workdir and a cgroup)'
            : `${(processes / slots.length).toFixed(1)} processes each${stdlibNote}`,
        sandboxMb: mean(pssKb),
        sandboxPrivateMb: mean(privateKb),
        sandboxes: slots.length,
        helpersMb: fastPath ? mb(sum([...forkServerPids], pssKb)) : 0,
        helpersNote: `${fastPath ? `${forkServers} fork servers` : 'none'} (the Node server and ${kernels.length} standby session kernels not counted)`,
      }
    },
    stop: () => server.stop(),
  }
}

/**
 * A server started as a child process that prints its port on its first line (hutch's: its port
 * and data directory).
 */
function childServer(
  command: string,
  args: string[],
  env: Record<string, string>,
): {
  start(): Promise<void>
  url(): string
  dataDir(): string
  pid(): number
  stop(): Promise<void>
} {
  let child: ChildProcess | undefined
  let port = ''
  let dataDir = ''
  return {
    async start() {
      const started = spawn(command, args, {
        cwd: root,
        env: { ...process.env, ...env, HUTCH_BENCH_TOKEN: benchToken },
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      child = started
      const lines = readline.createInterface({ input: started.stdout })
      const first = await new Promise<string>((resolve, reject) => {
        started.once('error', reject)
        started.once('exit', (code) => reject(new Error(`${command} exited with ${code}`)))
        lines.once('line', resolve)
      })
      ;[port = '', dataDir = ''] = first.split(' ')
    },
    url: () => `http://127.0.0.1:${port}`,
    dataDir: () => dataDir,
    pid: () => child?.pid ?? 0,
    async stop() {
      const running = child
      child = undefined
      if (running === undefined || running.exitCode !== null) return
      const exited = new Promise((resolve) => running.once('exit', resolve))
      running.kill('SIGTERM')
      await Promise.race([exited, sleep(15_000)])
      if (running.exitCode === null) running.kill('SIGKILL')
    },
  }
}

function serverMemory(pid: number, note: string): Memory {
  const kb = processTree(pid).reduce((total, one) => total + pssKb(one), 0)
  return { sandboxMb: undefined, sandboxes: 0, helpersMb: mb(kb), helpersNote: note }
}

function onPath(program: string): boolean {
  return (process.env['PATH'] ?? '')
    .split(':')
    .some((dir) => dir !== '' && fs.existsSync(path.join(dir, program)))
}

function spawnPath(
  label: string,
  mode: 'naive' | 'bwrap' | 'runsc',
  mplConfigDir: string,
): BenchPath {
  const server = childServer(process.execPath, ['bench/baselines/spawn-server.ts', mode], {
    MPLCONFIGDIR: mplConfigDir,
  })
  return {
    label,
    ...(mode === 'runsc'
      ? { unavailable: () => (onPath('runsc') ? undefined : 'not installed'), runShare: 0.25 }
      : {}),
    start: () => server.start(),
    async execute(workload) {
      const response = await fetch(`${server.url()}/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-bench-token': benchToken },
        signal: AbortSignal.timeout(requestTimeoutMs),
        body: JSON.stringify({ language: workload.language, code: workload.code }),
      })
      const result = (await response.json()) as { exitCode?: number; stdout?: string }
      if (result.exitCode !== 0 || !workload.expectStdout(result.stdout ?? '')) {
        throw new Error(`${mode} run failed: ${JSON.stringify(result).slice(0, 400)}`)
      }
    },
    memory: () =>
      Promise.resolve(serverMemory(server.pid(), 'the Node server (nothing kept warm)')),
    stop: () => server.stop(),
  }
}

function nvidiaPath(label: string, mplConfigDir: string): BenchPath {
  const server = childServer('/usr/bin/python3', ['bench/baselines/nvidia_style_server.py'], {
    MPLCONFIGDIR: mplConfigDir,
    MPLBACKEND: 'Agg',
  })
  return {
    label,
    start: () => server.start(),
    async execute(workload) {
      const response = await fetch(`${server.url()}/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-bench-token': benchToken },
        signal: AbortSignal.timeout(requestTimeoutMs),
        body: JSON.stringify({
          generated_code: workload.code,
          timeout: 120,
          language: workload.language,
        }),
      })
      const result = (await response.json()) as { process_status?: string; stdout?: string }
      if (result.process_status !== 'completed' || !workload.expectStdout(result.stdout ?? '')) {
        throw new Error(`NVIDIA-style run failed: ${JSON.stringify(result).slice(0, 400)}`)
      }
    },
    memory: () =>
      Promise.resolve(serverMemory(server.pid(), 'the Python server (nothing kept warm)')),
    stop: () => server.stop(),
  }
}

// Matplotlib's font cache, built once and shared by the baselines (hutch builds its own).
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-bench-fast-'))
const mplConfigDir = path.join(scratch, 'matplotlib')
fs.mkdirSync(mplConfigDir)
execFileSync('/usr/bin/python3', ['-c', 'import matplotlib.pyplot'], {
  env: { ...process.env, MPLCONFIGDIR: mplConfigDir, MPLBACKEND: 'Agg' },
})

const paths: BenchPath[] = [
  hutchPath('hutch, fast path on', true),
  hutchPath('hutch, fast path off', false),
  spawnPath('naive: Node spawns python3 per request', 'naive', mplConfigDir),
  spawnPath('bubblewrap per request, cold interpreter', 'bwrap', mplConfigDir),
  nvidiaPath('NVIDIA toolkit style: fork a multiprocessing.Process', mplConfigDir),
  spawnPath('gVisor `runsc do` per request', 'runsc', mplConfigDir),
].filter((benchPath) => onlyPaths === undefined || benchPath.label.includes(onlyPaths))

const figures = new Map<string, Map<string, Figures | string>>()
const breakdowns = new Map<string, Map<string, Timings[]>>()
const memories = new Map<string, Memory | string>()
const log = (line: string) => process.stderr.write(`${line}\n`)

/** Starts a path; says why it cannot run, if it cannot. */
async function startPath(benchPath: BenchPath): Promise<string | undefined> {
  const reason = benchPath.unavailable?.()
  if (reason !== undefined) return reason
  try {
    await benchPath.start()
    return undefined
  } catch (error) {
    await Promise.race([benchPath.stop(), sleep(30_000)])
    return `failed to start: ${String(error).slice(0, 200)}`
  }
}

/** One workload through one path: c1, then c4 (with the CPU count), then c16. */
async function measure(benchPath: BenchPath, workload: Workload): Promise<Figures | string> {
  const share = benchPath.runShare ?? 1
  const c1Runs = Math.max(2, Math.ceil((workload.heavy ? runs / 2 : runs) * share))
  const loadRuns = Math.max(4, Math.ceil((workload.heavy ? runs : runs * 5) * share))
  const once = () => benchPath.execute(workload)
  try {
    benchPath.takeTimings?.()
    // Every path's server and client are long-lived: the c1 figures are taken once both are
    // warm (JIT, caches), after as many untimed runs as a quarter of the timed ones, at least 5.
    const c1 = await load(once, c1Runs, 1, Math.max(5, Math.ceil(c1Runs / 4)))
    const c1Timings = benchPath.takeTimings?.()
    if (c1Timings !== undefined) {
      const byLabel = breakdowns.get(benchPath.label) ?? new Map<string, Timings[]>()
      breakdowns.set(benchPath.label, byLabel.set(workload.name, c1Timings))
    }
    const c4 = await load(once, loadRuns, 4)
    const c16 = await load(once, loadRuns, 16)
    return {
      p50Ms: percentile(c1.samples, 50),
      p99Ms: percentile(c1.samples, 99),
      c4PerSecond: c4.perSecond,
      c16PerSecond: c16.perSecond,
      cpuMsPerRun: c4.cpuMsPerRun,
      benchCpuMsPerRun: c4.benchCpuMsPerRun,
    }
  } catch (error) {
    return `failed: ${String(error).slice(0, 200)}`
  }
}

const running: BenchPath[] = []
try {
  // Every path's server up at once, idle but for the path being measured, and the paths taken in
  // turn for each workload: drift in whatever else the machine does falls on all of them alike.
  for (const benchPath of paths) {
    const byWorkload = new Map<string, Figures | string>()
    figures.set(benchPath.label, byWorkload)
    const failure = await startPath(benchPath)
    if (failure !== undefined) {
      memories.set(benchPath.label, failure)
      for (const workload of workloads) byWorkload.set(workload.name, failure)
      continue
    }
    running.push(benchPath)
    memories.set(benchPath.label, await benchPath.memory())
  }
  for (const workload of workloads) {
    for (const benchPath of running) {
      figures.get(benchPath.label)?.set(workload.name, await measure(benchPath, workload))
      log(
        `${benchPath.label} / ${workload.name}: done at ${((performance.now() - benchStartedAt) / 1000).toFixed(0)} s`,
      )
    }
  }
} finally {
  // A path that hung does not hold up the rest.
  for (const benchPath of running) await Promise.race([benchPath.stop(), sleep(30_000)])
  fs.rmSync(scratch, { recursive: true, force: true })
}

const reference = paths[0]?.label ?? ''
const ratio = (value: number, base: number | undefined, isReference: boolean) =>
  isReference || base === undefined || !Number.isFinite(base) || base === 0
    ? ''
    : ` (${times(value / base)}x)`

/** A ratio with two significant digits below 10 (0.048, 0.52, 3.1) and none above (12, 150). */
const times = (ratio: number) => (ratio >= 10 ? ratio.toFixed(0) : ratio.toPrecision(2))

function workloadTable(workload: Workload): string[] {
  const base = figures.get(reference)?.get(workload.name)
  const baseFigures = typeof base === 'object' ? base : undefined
  const lines = [
    `### ${workload.name}`,
    '',
    '| path | p50 ms (c1) | p99 ms (c1) | runs/s c4 | runs/s c16 | CPU ms/run | of which the bench process |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const { label } of paths) {
    const result = figures.get(label)?.get(workload.name)
    if (typeof result !== 'object') {
      lines.push(`| ${label} | ${result ?? 'not run'} | | | | | |`)
      continue
    }
    const isReference = label === reference
    const cell = (value: number, key: keyof Figures) =>
      `${value.toFixed(1)}${ratio(value, baseFigures?.[key], isReference)}`
    lines.push(
      `| ${label} | ${cell(result.p50Ms, 'p50Ms')} | ${cell(result.p99Ms, 'p99Ms')} | ${cell(result.c4PerSecond, 'c4PerSecond')} | ${cell(result.c16PerSecond, 'c16PerSecond')} | ${cell(result.cpuMsPerRun, 'cpuMsPerRun')} | ${result.benchCpuMsPerRun.toFixed(1)} |`,
    )
  }
  return [...lines, '']
}

function memoryTable(): string[] {
  const lines = [
    '### Memory at rest (PSS)',
    '',
    '| path | PSS per idle warm python sandbox, MB | private (USS) per sandbox, MB | long-lived helpers (PSS), MB |',
    '| --- | ---: | ---: | --- |',
  ]
  for (const { label } of paths) {
    const memory = memories.get(label)
    if (typeof memory !== 'object') {
      lines.push(`| ${label} | ${memory ?? 'not run'} | | |`)
      continue
    }
    const sandbox =
      memory.sandboxMb === undefined
        ? 'none kept warm'
        : `${memory.sandboxMb.toFixed(1)} (mean of ${memory.sandboxes}${memory.sandboxNote === undefined ? '' : `; ${memory.sandboxNote}`})`
    const helpers =
      memory.helpersMb === undefined ? '' : `${memory.helpersMb.toFixed(1)}: ${memory.helpersNote}`
    const own = memory.sandboxPrivateMb?.toFixed(1) ?? ''
    lines.push(`| ${label} | ${sandbox} | ${own} | ${helpers} |`)
  }
  return [...lines, '']
}

function targetsTable(): string[] {
  const fast = figures.get(reference)
  const get = (name: string) => {
    const result = fast?.get(name)
    return typeof result === 'object' ? result : undefined
  }
  const trivial = get(workloads[0]?.name ?? '')
  const pandas = get(workloads[1]?.name ?? '')
  const matplotlib = get(workloads[2]?.name ?? '')
  const memory = memories.get(reference)
  const sandboxMb = typeof memory === 'object' ? memory.sandboxMb : undefined
  const targets: [string, number | undefined, (value: number) => boolean][] = [
    ['trivial print p50 <= 5 ms over HTTP', trivial?.p50Ms, (v) => v <= 5],
    ['trivial print p99 <= 20 ms over HTTP', trivial?.p99Ms, (v) => v <= 20],
    ['pandas describe() p50 <= 30 ms', pandas?.p50Ms, (v) => v <= 30],
    ['matplotlib PNG p50 <= 120 ms', matplotlib?.p50Ms, (v) => v <= 120],
    ['>= 150 trivial runs/s at c16', trivial?.c16PerSecond, (v) => v >= 150],
    ['<= 8 MB PSS per idle warm python sandbox', sandboxMb, (v) => v <= 8],
  ]
  return [
    '### Targets (issue 4), hutch with the fast path on',
    '',
    '| target | measured | met |',
    '| --- | ---: | --- |',
    ...targets.map(([name, value, met]) =>
      value === undefined
        ? `| ${name} | not measured | no |`
        : `| ${name} | ${value.toFixed(1)} | ${met(value) ? 'yes' : 'no'} |`,
    ),
    '',
  ]
}

/** Where hutch's time goes at c1: medians of its own timings against the client's total. */
function breakdownTable(): string[] {
  const lines = [
    "### hutch's account of a run at c1 (medians of each column, ms)",
    '',
    '| path | workload | total (client) | queue | sync in | run | sync out | rest (HTTP, records, scheduling) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const [label, byWorkload] of breakdowns) {
    for (const [name, timings] of byWorkload) {
      const rest = (one: Timings) =>
        one.totalMs - one.queueMs - one.syncInMs - one.runMs - one.syncOutMs
      const medians = [
        ...(['totalMs', 'queueMs', 'syncInMs', 'runMs', 'syncOutMs'] as const).map((key) =>
          percentile(
            timings.map((one) => one[key]),
            50,
          ),
        ),
        percentile(timings.map(rest), 50),
      ]
      lines.push(`| ${label} | ${name} | ${medians.map((ms) => ms.toFixed(1)).join(' | ')} |`)
    }
  }
  return [...lines, '']
}

const heavyRuns = Math.max(2, Math.ceil(runs / 2))
const report = [
  '## Fast path side by side',
  '',
  `${new Date().toISOString().slice(0, 10)}, ${os.cpus()[0]?.model ?? ''}, ${os.availableParallelism()} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, /usr/bin/python3, bwrap, ${onPath('runsc') ? 'runsc (gVisor 20221219, default ptrace platform, --network=none --ignore-cgroups)' : 'runsc not installed'}. Every path over HTTP on loopback; all servers up at once, one measured at a time, the paths taken in turn for each workload (each server, hutch's too, a child process of the bench).`,
  `Runs: print and echo ${runs} at c1 and ${runs * 5} at c4 and at c16; pandas and matplotlib ${heavyRuns} at c1 and ${runs} at c4 and at c16; a quarter of that for runsc (too slow for all in ~10 minutes); before the c1 runs a quarter as many untimed (at least 5), one before each other. Load average (1, 5, 15 min) at the start ${loadAtStart}, at the end ${loadAverage()}: other work on the machine weighs on every figure.`,
  "In parentheses: the figure divided by hutch (fast path on)'s (latency and CPU: higher is worse; runs/s: higher is better).",
  `CPU ms/run: the whole machine's busy time (/proc/stat user+nice+system+irq+softirq jiffies) before and after the c4 runs, divided by the runs; it includes the load generator, the server and anything else the machine did meanwhile. Of which the bench process: its own CPU time (process.cpuUsage) over the same runs, the load generator's HTTP client.`,
  "hutch: warm pool 4-16, 16 concurrent runs, no rate limit. PSS per idle warm python sandbox: the processes (its init and the program's) of each `run-*` cgroup under the server's cgroup parent after warm-up that the python fork server (the one with the libraries preloaded) forked; the python-stdlib pool's (nothing preloaded, for standard-library-only code) is given beside it, the bash pool's and standby session kernels are left out, the fork servers (`run-forkserver-*`) counted apart; PSS splits the pages the sandboxes share with their fork server among them all, USS is what one more sandbox costs; the baselines keep no sandbox warm, so their servers' own PSS is shown instead.",
  '',
  ...workloads.flatMap(workloadTable),
  ...memoryTable(),
  ...breakdownTable(),
  ...targetsTable(),
  `Total bench time ${((performance.now() - benchStartedAt) / 1000).toFixed(0)} s.`,
].join('\n')
fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true })
fs.writeFileSync(path.join(root, 'bench/results/fast-path.md'), `${report}\n`)
process.stdout.write(`${report}\n`)
