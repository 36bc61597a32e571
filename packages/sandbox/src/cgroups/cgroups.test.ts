import type { ChildProcessByStdio } from 'node:child_process'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { createInterface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../logger.ts'
import { SandboxError } from '../sandbox-error.ts'
import { cgroupFileExists, isErrno, readCgroupFile } from './cgroup-files.ts'
import { findV2Hierarchy, parseMountInfo, parseProcCgroup } from './cgroup-mounts.ts'
import type { CgroupLimits, CgroupManager, RunCgroup } from './cgroups.ts'
import { detectCgroups } from './cgroups.ts'
import { frozenAnchorName } from './v1-cgroup-manager.ts'
import { openV2Cgroups, V2RunCgroup } from './v2-cgroup-manager.ts'

const mib = 1024 * 1024
const isRoot = process.getuid?.() === 0
// Its own parent, so removeOrphans here never touches the runs of other suites or a live server.
const parentName = `hutch-test-${process.pid}`
const detection = isRoot ? await detectCgroups({ parentName }) : undefined
const manager = detection?.ok === true ? detection.manager : undefined
const roomyLimits: CgroupLimits = { memoryBytes: 256 * mib, pids: 64, cpuQuotaCores: 1 }

function skipReasonFor(version: 'v1' | 'v2'): string | undefined {
  if (!isRoot) return 'needs root to create cgroups'
  if (detection === undefined || !detection.ok) {
    return `no usable cgroup hierarchy: ${detection?.ok === false ? detection.reason : 'unknown'}`
  }
  if (detection.manager.version === version) return undefined
  return version === 'v2'
    ? 'no cgroup v2 hierarchy with the memory controller here (this host uses v1)'
    : `this host uses cgroup ${detection.manager.version}`
}

afterAll(async () => {
  if (manager === undefined) return
  // A second manager sees anything a failed test left behind as an orphan.
  const cleanup = await detectCgroups({ parentName })
  if (cleanup.ok) await cleanup.manager.removeOrphans()
  for (const dir of manager.parentDirectories) await fsp.rmdir(dir).catch(() => {})
})

let runCounter = 0
function nextRunId(label: string): string {
  runCounter++
  return `${label}-${process.pid}-${runCounter}`
}

/**
 * Starts `command` under a child subreaper (this host's pid 1 leaves orphans as zombies, which
 * `kill(pid, 0)` cannot tell from the living) behind a gate: the shell waits on stdin, so the test
 * moves it into a cgroup before it can fork anything.
 */
const reaperScript = `
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
    sys.exit('prctl(PR_SET_CHILD_SUBREAPER) failed')
pid = os.fork()
if pid == 0:
    devnull = os.open('/dev/null', os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.execv('/bin/sh', ['/bin/sh', '-c', 'read _ || exit 1; exec /bin/sh -c "$1"', 'gate', sys.argv[1]])
print(pid, flush=True)
while True:
    try:
        reaped, status = os.wait()
    except ChildProcessError:
        break
    print('reaped', reaped, status, flush=True)
`

class GatedTree {
  readonly gatePid: number
  readonly #reaper: ChildProcessByStdio<Writable, Readable, null>
  readonly #reaped: Map<number, number>
  readonly #exited: Promise<void>

  private constructor(
    reaper: ChildProcessByStdio<Writable, Readable, null>,
    gatePid: number,
    reaped: Map<number, number>,
    exited: Promise<void>,
  ) {
    this.#reaper = reaper
    this.gatePid = gatePid
    this.#reaped = reaped
    this.#exited = exited
  }

  static async start(command: string): Promise<GatedTree> {
    const reaper = spawn('/usr/bin/python3', ['-c', reaperScript, command], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    const exited = new Promise<void>((resolve) => reaper.once('close', () => resolve()))
    const reaped = new Map<number, number>()
    const gatePid = await new Promise<number>((resolve, reject) => {
      reaper.once('error', reject)
      void exited.then(() => reject(new Error('the reaper exited before starting the gate')))
      createInterface({ input: reaper.stdout }).on('line', (line) => {
        const [first, pid, status] = line.split(' ')
        if (first === 'reaped') reaped.set(Number(pid), Number(status))
        else resolve(Number(first))
      })
    })
    return new GatedTree(reaper, gatePid, reaped, exited)
  }

  /** Lets the gated shell run its command. */
  release(): void {
    this.#reaper.stdin.end('go\n')
  }

  /** The wait status of a reaped direct or orphaned descendant. */
  async waitReaped(pid: number): Promise<number> {
    await waitFor(() => Promise.resolve(this.#reaped.has(pid)), `pid ${pid} to be reaped`)
    return this.#reaped.get(pid) ?? -1
  }

  /** Resolves once every descendant is reaped and the reaper has exited. */
  async closed(): Promise<void> {
    this.#reaper.stdin.end()
    await this.#exited
  }
}

function terminatingSignal(waitStatus: number): number {
  return waitStatus & 0x7f
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    if (isErrno(error, 'ESRCH')) return false
    throw error
  }
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 15_000) {
  const deadline = performance.now() + timeoutMs
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

/** Creates a run cgroup, hands it to `body`, and always destroys it. */
async function withRun(
  cgroups: CgroupManager,
  label: string,
  limits: CgroupLimits,
  body: (run: RunCgroup) => Promise<void>,
): Promise<void> {
  const run = await cgroups.create(nextRunId(label), limits)
  try {
    await body(run)
  } finally {
    await run.destroy()
  }
}

/** Starts a gated tree inside `run`; the caller must await `closed()` after killing it. */
async function startInside(run: RunCgroup, command: string): Promise<GatedTree> {
  const tree = await GatedTree.start(command)
  try {
    await run.addProcess(tree.gatePid)
  } catch (error) {
    await tree.closed()
    throw error
  }
  tree.release()
  return tree
}

async function expectAllGone(run: RunCgroup, tree: GatedTree, pids: readonly number[]) {
  expect(await run.pids()).toEqual([])
  await tree.closed()
  for (const pid of pids) expect(isAlive(pid), `pid ${pid}`).toBe(false)
}

for (const version of ['v1', 'v2'] as const) {
  const skipReason = skipReasonFor(version)
  const skipNote = skipReason === undefined ? '' : ` (skipped: ${skipReason})`
  const title = `cgroup ${version} run cgroups${skipNote}`

  describe.skipIf(skipReason !== undefined)(title, () => {
    const cgroups = manager as CgroupManager

    it('keeps a gated process tree, grandchildren included, and kills it whole', async () => {
      await withRun(cgroups, 'tree', roomyLimits, async (run) => {
        const tree = await startInside(run, 'sleep 1000 & sleep 1000 & wait')
        const comm = (pid: number): Promise<string> =>
          fsp.readFile(`/proc/${pid}/comm`, 'utf8').then((text) => text.trim())
        // Forked children show the shell's name until their exec of sleep completes.
        await waitFor(async () => {
          const children = (await run.pids()).filter((pid) => pid !== tree.gatePid)
          return (
            children.length === 2 &&
            (await Promise.all(children.map(comm))).every((c) => c === 'sleep')
          )
        }, 'two sleeps to start')
        const pids = await run.pids()
        expect(pids).toContain(tree.gatePid)
        for (const pid of pids.filter((other) => other !== tree.gatePid)) {
          expect((await fsp.readFile(`/proc/${pid}/comm`, 'utf8')).trim()).toBe('sleep')
          const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8')
          expect(Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])).toBe(tree.gatePid)
          // In every hierarchy the run uses: one /proc/<pid>/cgroup line per directory.
          const lines = (await fsp.readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n')
          const inRun = lines.filter((line) => line.endsWith(`/${parentName}/${run.name}`))
          expect(inRun).toHaveLength(run.directories.length)
        }
        expect((await run.stats()).processCount).toBe(3)

        await run.killAll()
        await expectAllGone(run, tree, pids)
        await run.destroy()
        for (const dir of run.directories) expect(existsSync(dir), dir).toBe(false)
        await run.destroy()
      })
    })

    it('contains a fork loop with pids.max and still kills it', async () => {
      const pidsMax = 16
      await withRun(cgroups, 'forkloop', { ...roomyLimits, pids: pidsMax }, async (run) => {
        const tree = await startInside(run, 'while :; do sleep 100 & done')
        await waitFor(async () => (await run.pids()).length >= pidsMax - 2, 'the loop to fill up')
        const seen = new Set<number>()
        for (let sample = 0; sample < 10; sample++) {
          const pids = await run.pids()
          expect(pids.length).toBeLessThanOrEqual(pidsMax)
          for (const pid of pids) seen.add(pid)
          await sleep(20)
        }
        await run.killAll()
        await expectAllGone(run, tree, [...seen])
      })
    })

    it('kills a fork bomb that keeps forking while it is killed', async () => {
      const bomb = `exec /usr/bin/python3 -c "
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"`
      const limits = { memoryBytes: 256 * mib, pids: 32, cpuQuotaCores: 0.5 }
      await withRun(cgroups, 'forkbomb', limits, async (run) => {
        const tree = await startInside(run, bomb)
        await waitFor(async () => (await run.pids()).length >= 16, 'the bomb to spread')
        const pids = await run.pids()
        expect(pids.length).toBeLessThanOrEqual(32)
        await run.killAll()
        await expectAllGone(run, tree, pids)
      })
    })

    it('OOM-kills a memory hog and reports it', async () => {
      const memoryBytes = 64 * mib
      await withRun(cgroups, 'memhog', { ...roomyLimits, memoryBytes }, async (run) => {
        const tree = await startInside(run, 'exec /usr/bin/python3 -c "b=bytearray(300*1024*1024)"')
        const status = await tree.waitReaped(tree.gatePid)
        expect(terminatingSignal(status)).toBe(9)
        await run.killAll()
        const stats = await run.stats()
        expect(stats.oomKilled).toBe(true)
        expect(stats.memoryLimitHit).toBe(true)
        expect(stats.peakMemoryBytes).toBeGreaterThan(memoryBytes * 0.75)
        expect(stats.peakMemoryBytes).toBeLessThanOrEqual(memoryBytes * 1.05)
        expect(stats.processCount).toBe(0)
        await tree.closed()
      })
    })

    it('reports no OOM for a run that stays under its limit', async () => {
      await withRun(cgroups, 'calm', roomyLimits, async (run) => {
        const tree = await startInside(run, 'exec /usr/bin/python3 -c "b=bytearray(8*1024*1024)"')
        expect(terminatingSignal(await tree.waitReaped(tree.gatePid))).toBe(0)
        const stats = await run.stats()
        expect(stats.oomKilled).toBe(false)
        expect(stats.memoryLimitHit).toBe(false)
        expect(stats.peakMemoryBytes).toBeGreaterThan(8 * mib)
        await tree.closed()
      })
    })

    it.skipIf(version !== 'v1')(
      'lets no run swap: its memory cgroup starts with swappiness 0',
      async () => {
        await withRun(cgroups, 'swappiness', roomyLimits, async (run) => {
          const memory = run.directories.filter((dir) =>
            existsSync(path.join(dir, 'memory.swappiness')),
          )
          expect(memory).toHaveLength(1)
          const swappiness = await fsp.readFile(path.join(memory[0] ?? '', 'memory.swappiness'))
          expect(swappiness.toString().trim()).toBe('0')
        })
      },
    )

    it.skipIf(version !== 'v1')(
      'keeps an empty cgroup frozen beside its freezer parent, which no removal touches',
      async () => {
        const freezerParent = cgroups.parentDirectories.find((dir) =>
          existsSync(path.join(dir, 'freezer.state')),
        )
        const anchor = path.join(path.dirname(freezerParent ?? ''), frozenAnchorName)
        // Gone (thawed first, as anyone removing it would), a manager's start makes it again.
        await fsp.writeFile(path.join(anchor, 'freezer.state'), 'THAWED').catch(() => {})
        await fsp.rmdir(anchor).catch(() => {})
        expect(existsSync(anchor)).toBe(false)
        const restarted = await detectCgroups({ parentName })
        if (!restarted.ok) throw new Error(restarted.reason)
        expect((await readCgroupFile(anchor, 'freezer.state')).trim()).toBe('FROZEN')
        expect((await readCgroupFile(anchor, 'cgroup.procs')).trim()).toBe('')
        await cgroups.removeOrphans()
        expect(existsSync(anchor)).toBe(true)
      },
    )

    it('counts CPU time and holds a burner to its quota', async () => {
      const measureCores = async (run: RunCgroup, windowMs: number): Promise<number> => {
        const before = await run.stats()
        const startedMs = performance.now()
        await sleep(windowMs)
        const after = await run.stats()
        return (after.cpuUsageMs - before.cpuUsageMs) / (performance.now() - startedMs)
      }
      await withRun(cgroups, 'burner', roomyLimits, async (run) => {
        const tree = await startInside(run, 'while :; do :; done')
        await sleep(300)
        expect((await run.stats()).cpuUsageMs).toBeGreaterThan(0)
        expect(await measureCores(run, 1000)).toBeGreaterThan(0.1)
        await run.killAll()
        await tree.closed()
      })
      await withRun(cgroups, 'halfcore', { ...roomyLimits, cpuQuotaCores: 0.5 }, async (run) => {
        const tree = await startInside(run, 'while :; do :; done')
        await sleep(300)
        const cores = await measureCores(run, 2000)
        // Generous: the other test worker may share the CPU, but the quota is a ceiling.
        expect(cores).toBeGreaterThan(0.05)
        expect(cores).toBeLessThan(0.75)
        await run.killAll()
        await tree.closed()
      })
    })

    it('freezes and thaws a run', async () => {
      await withRun(cgroups, 'freeze', roomyLimits, async (run) => {
        const tree = await startInside(run, 'while :; do :; done')
        await sleep(200)
        await run.freeze()
        const frozenAt = (await run.stats()).cpuUsageMs
        await sleep(300)
        expect((await run.stats()).cpuUsageMs - frozenAt).toBeLessThan(20)
        await run.thaw()
        await sleep(300)
        expect((await run.stats()).cpuUsageMs - frozenAt).toBeGreaterThan(20)
        // A frozen run is still killed whole.
        await run.freeze()
        const pids = await run.pids()
        await run.killAll()
        await expectAllGone(run, tree, pids)
      })
    })

    it('shares one kill between concurrent callers and returns at once when empty', async () => {
      await withRun(cgroups, 'concurrent', roomyLimits, async (run) => {
        const tree = await startInside(run, 'sleep 1000 & sleep 1000 & wait')
        const comm = (pid: number): Promise<string> =>
          fsp.readFile(`/proc/${pid}/comm`, 'utf8').then((text) => text.trim())
        // Forked children show the shell's name until their exec of sleep completes.
        await waitFor(async () => {
          const children = (await run.pids()).filter((pid) => pid !== tree.gatePid)
          return (
            children.length === 2 &&
            (await Promise.all(children.map(comm))).every((c) => c === 'sleep')
          )
        }, 'two sleeps to start')
        const pids = await run.pids()
        await Promise.all([run.killAll(), run.killAll(), run.killAll()])
        await expectAllGone(run, tree, pids)
        await run.killAll()
      })
    })

    it('removes a leftover run cgroup with a live process, and only leftovers', async () => {
      const ours = await cgroups.create(nextRunId('ours'), roomyLimits)
      const leftover = await cgroups.create(nextRunId('leftover'), roomyLimits)
      try {
        const tree = await startInside(leftover, 'exec sleep 1000')
        await waitFor(async () => (await leftover.pids()).length === 1, 'the sleep to start')
        // Another server process (a restart) sees both as leftovers; ours it must not see.
        expect(await cgroups.removeOrphans()).toBe(0)
        const restarted = await detectCgroups({ parentName })
        if (!restarted.ok) throw new Error(restarted.reason)
        await ours.destroy()
        expect(await restarted.manager.removeOrphans()).toBe(1)
        for (const dir of leftover.directories) expect(existsSync(dir), dir).toBe(false)
        await tree.closed()
        expect(isAlive(tree.gatePid)).toBe(false)
        expect(await restarted.manager.removeOrphans()).toBe(0)
      } finally {
        await ours.destroy()
        await leftover.destroy()
      }
    })

    it('refuses names that are not plain and limits that are not positive', async () => {
      for (const runId of ['../escape', 'a/b', '', 'x'.repeat(65), '.']) {
        await expect(cgroups.create(runId, roomyLimits)).rejects.toThrow(SandboxError)
      }
      await expect(
        cgroups.create(nextRunId('limits'), { ...roomyLimits, memoryBytes: 0 }),
      ).rejects.toMatchObject({ code: 'invalid_limit' })
      await expect(detectCgroups({ parentName: '../hutch' })).rejects.toThrow(SandboxError)
    })

    it('refuses a run id already in use', async () => {
      const runId = nextRunId('twice')
      const run = await cgroups.create(runId, roomyLimits)
      try {
        await expect(cgroups.create(runId, roomyLimits)).rejects.toThrow(/exists already/)
        expect(existsSync(run.directories[0] ?? '')).toBe(true)
      } finally {
        await run.destroy()
      }
    })
  })
}

/**
 * The v2 kill and freeze paths on a hybrid host: its cgroup2 hierarchy has no controllers, but
 * cgroup.procs, cgroup.freeze, cgroup.events and cgroup.kill work all the same.
 */
const hybridV2 = await (async () => {
  if (!isRoot || manager?.version !== 'v1') return undefined
  const mounts = parseMountInfo(await fsp.readFile('/proc/self/mountinfo', 'utf8'))
  const procCgroup = parseProcCgroup(await fsp.readFile('/proc/self/cgroup', 'utf8'))
  const hierarchy = findV2Hierarchy(mounts, procCgroup)
  if (hierarchy === undefined || hierarchy.readOnly) return undefined
  return { parent: path.join(hierarchy.mountPoint, parentName) }
})()

describe.skipIf(hybridV2 === undefined)(
  'cgroup v2 kill and freeze without controllers' +
    (hybridV2 === undefined ? ' (skipped: needs root and a hybrid v1/v2 host)' : ''),
  () => {
    const parent = hybridV2?.parent ?? ''
    beforeAll(async () => {
      await fsp.mkdir(parent)
    })
    afterAll(async () => {
      await fsp.rmdir(parent).catch(() => {})
    })

    it('refuses a v2 hierarchy without controllers and says why', async () => {
      const mounts = parseMountInfo(await fsp.readFile('/proc/self/mountinfo', 'utf8'))
      const procCgroup = parseProcCgroup(await fsp.readFile('/proc/self/cgroup', 'utf8'))
      const hierarchy = findV2Hierarchy(mounts, procCgroup)
      if (hierarchy === undefined) throw new Error('no cgroup2 mount')
      const opened = await openV2Cgroups(hierarchy, {
        parentName: 'hutch-never-created',
        killTimeoutMs: 1_000,
        logger: silentLogger,
      })
      expect(opened.ok).toBe(false)
      if (!opened.ok) expect(opened.reason).toMatch(/memory, pids, cpu not delegated/)
      expect(existsSync(path.join(hierarchy.mountPoint, 'hutch-never-created'))).toBe(false)
    })

    for (const useKillFile of [true, false]) {
      const label = useKillFile ? 'cgroup.kill' : 'freeze, kill, thaw'
      it(`kills a forking tree with ${label}`, async (context) => {
        if (useKillFile && !(await cgroupFileExists(parent, 'cgroup.kill'))) {
          context.skip('this kernel has no cgroup.kill (before 5.14)')
        }
        const name = `run-${nextRunId(useKillFile ? 'kill' : 'freezekill')}`
        const dir = path.join(parent, name)
        await fsp.mkdir(dir)
        const run = new V2RunCgroup(name, dir, {
          killTimeoutMs: 10_000,
          logger: silentLogger,
          hasKillFile: useKillFile,
        })
        try {
          const tree = await startInside(run, 'while :; do sh -c "sleep 0.3" & sleep 0.01; done')
          await waitFor(async () => (await run.pids()).length >= 8, 'the loop to spread')
          await run.freeze()
          expect(await readCgroupFile(dir, 'cgroup.events')).toMatch(/^frozen 1$/m)
          const pids = await run.pids()
          await run.thaw()
          expect(await readCgroupFile(dir, 'cgroup.events')).toMatch(/^frozen 0$/m)
          expect((await run.stats()).processCount).toBeGreaterThan(0)
          await run.killAll()
          await expectAllGone(run, tree, pids)
          await run.destroy()
          expect(existsSync(dir)).toBe(false)
        } finally {
          await run.destroy()
        }
      })
    }
  },
)
