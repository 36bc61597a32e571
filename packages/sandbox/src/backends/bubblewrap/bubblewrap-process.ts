import type { ChildProcess } from 'node:child_process'
import fsp from 'node:fs/promises'
import type { Readable, Writable } from 'node:stream'
import { PassThrough } from 'node:stream'
import type { RunCgroup } from '../../cgroups/cgroups.ts'
import type { Logger } from '../../logger.ts'
import type { SlotProcess, SlotStartSpec } from '../backend.ts'

/** What the launcher reads before it lets bwrap start, and where the control pipes are. */
export interface LauncherInputs {
  args: Buffer
  seccomp: Uint8Array
  files: { fd: number; content: Uint8Array }[]
  /** The control pipes' numbers in the launcher, when it has them. */
  control?: { toProgram: number; fromProgram: number }
}

/**
 * A long-lived program in a bubblewrap sandbox: stdout and stderr stream to the spec's callbacks,
 * the control pipes stay open, and the slot's cgroup says which processes are its own.
 */
export class BubblewrapProcess implements SlotProcess {
  readonly control: Writable
  readonly events: Readable
  readonly exited: Promise<{ exitCode: number | null; signal: string | null }>
  readonly #child: ChildProcess
  readonly #cgroup: RunCgroup

  constructor(child: ChildProcess, cgroup: RunCgroup, spec: SlotStartSpec, logger: Logger) {
    this.#child = child
    this.#cgroup = cgroup
    const stdio = child.stdio as unknown as readonly (Readable | Writable | null | undefined)[]
    for (const stream of stdio) stream?.on('error', () => {})
    ;(stdio[1] as Readable | null | undefined)?.on('data', (chunk: Buffer) =>
      spec.onStdout?.(chunk),
    )
    ;(stdio[2] as Readable | null | undefined)?.on('data', (chunk: Buffer) =>
      spec.onStderr?.(chunk),
    )
    // The pipes are the last two descriptors the launcher was given.
    const control = stdio[stdio.length - 2] as Writable | null | undefined
    const events = stdio[stdio.length - 1] as Readable | null | undefined
    this.control = control ?? new PassThrough()
    this.events = events ?? new PassThrough()
    this.exited = new Promise((resolve) => {
      child.once('error', (error) => {
        logger.error({ err: error }, 'a sandboxed program could not be started')
        resolve({ exitCode: null, signal: 'SIGKILL' })
      })
      child.once('close', (code, signal) => resolve({ exitCode: code, signal }))
    })
  }

  /** @internal Hands the launcher its inputs and lets it start bwrap. */
  feed(inputs: LauncherInputs): void {
    const stdio = this.#child.stdio as unknown as readonly (Writable | null | undefined)[]
    stdio[3]?.end(inputs.args)
    stdio[5]?.end(inputs.seccomp)
    for (const file of inputs.files) stdio[file.fd]?.end(file.content)
    stdio[4]?.end('go\n')
  }

  async signal(
    sandboxPid: number,
    signal: NodeJS.Signals,
    options: { descendants?: boolean } = {},
  ): Promise<number> {
    const processes = await describeProcesses(await this.#cgroup.pids())
    const target = processes.find((p) => p.sandboxPid === sandboxPid)
    if (target === undefined) return 0
    let chosen = [target.pid]
    if (options.descendants === true) {
      const found = new Set<number>([target.pid])
      let grew = true
      while (grew) {
        grew = false
        for (const p of processes) {
          if (!found.has(p.pid) && found.has(p.parentPid)) {
            found.add(p.pid)
            grew = true
          }
        }
      }
      found.delete(target.pid)
      chosen = [...found]
    }
    let signalled = 0
    for (const pid of chosen) {
      try {
        process.kill(pid, signal)
        signalled++
      } catch {
        // gone already
      }
    }
    return signalled
  }

  async kill(): Promise<void> {
    await this.#cgroup.killAll()
    await this.exited
  }
}

/** Each process's host pid, parent and innermost pid (its pid inside the sandbox). */
async function describeProcesses(
  pids: readonly number[],
): Promise<{ pid: number; parentPid: number; sandboxPid: number }[]> {
  const described: { pid: number; parentPid: number; sandboxPid: number }[] = []
  for (const pid of pids) {
    const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined)
    if (status === undefined) continue
    const nsPids = /^NSpid:\s*(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? []
    const parentPid = Number(/^PPid:\s*(\d+)/m.exec(status)?.[1] ?? 0)
    const sandboxPid = Number(nsPids[nsPids.length - 1] ?? 0)
    described.push({ pid, parentPid, sandboxPid })
  }
  return described
}
