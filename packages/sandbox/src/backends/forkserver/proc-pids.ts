import fs from 'node:fs'

/**
 * A process's pids in each pid namespace it belongs to, outermost (the host's) first: the
 * `NSpid` line of /proc/PID/status. Undefined when the process is gone.
 */
export function nsPids(hostPid: number): number[] | undefined {
  let status: string
  try {
    status = fs.readFileSync(`/proc/${hostPid}/status`, 'utf8')
  } catch {
    return undefined
  }
  const line = status.split('\n').find((l) => l.startsWith('NSpid:'))
  if (line === undefined) return undefined
  return line
    .slice('NSpid:'.length)
    .trim()
    .split(/\s+/)
    .map((word) => Number(word))
}

/** Direct children of a process (every thread's), by host pid. */
export function childPids(hostPid: number): number[] {
  const found: number[] = []
  let tasks: string[]
  try {
    tasks = fs.readdirSync(`/proc/${hostPid}/task`)
  } catch {
    return found
  }
  for (const task of tasks) {
    try {
      const text = fs.readFileSync(`/proc/${hostPid}/task/${task}/children`, 'utf8')
      for (const word of text.trim().split(/\s+/)) {
        const pid = Number(word)
        if (Number.isInteger(pid) && pid > 0) found.push(pid)
      }
    } catch {
      // the task ended meanwhile
    }
  }
  return found
}

/** The first descendant of `rootPid` (breadth first, `maxDepth` levels) whose NSpid matches. */
export function findDescendant(
  rootPid: number,
  matches: (pids: number[]) => boolean,
  maxDepth = 4,
): number | undefined {
  let level = [rootPid]
  for (let depth = 0; depth <= maxDepth && level.length > 0; depth++) {
    const next: number[] = []
    for (const pid of level) {
      const pids = nsPids(pid)
      if (pids !== undefined && pids.length > 1 && matches(pids)) return pid
      next.push(...childPids(pid))
    }
    level = next
  }
  return undefined
}
