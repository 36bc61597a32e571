import fs from 'node:fs'
import { describe, expect, it } from 'vitest'
import { bash, python } from '../../support/sandbox.ts'

// DESIGN 3.3: every namespace unshared, no new user namespaces inside, a new session.
describe('escape: making namespaces or reaching other processes', () => {
  it('cannot create a user namespace (unshare -U fails)', async () => {
    const result = await bash('unshare -U -r id 2>&1; echo "exit $?"')
    expect(result.stdout).not.toMatch(/uid=0/)
    expect(result.stdout).toMatch(/exit [1-9]/)
  })

  it('sees only its own processes', async () => {
    const result = await bash(
      'ls /proc | grep -E "^[0-9]+$" | wc -l; cat /proc/1/cmdline | tr "\\0" " "',
    )
    const [count = '99'] = result.stdout.split('\n')
    expect(Number(count)).toBeLessThanOrEqual(6)
    // pid 1 is the sandbox's own init: bwrap's, or on the fast path the fork server child's.
    expect(result.stdout).toMatch(/bwrap|hutch-sandbox-init/)
  })

  it('has its own hostname and its own namespace of every kind', async () => {
    const kinds = ['cgroup', 'ipc', 'mnt', 'net', 'pid', 'user', 'uts']
    const result = await python(`
import os, socket
print(socket.gethostname())
for kind in ${JSON.stringify(kinds)}:
    print(kind, os.readlink(f'/proc/self/ns/{kind}'))
`)
    const [hostname, ...lines] = result.stdout.trim().split('\n')
    expect(hostname).toBe('hutch')
    expect(lines).toHaveLength(kinds.length)
    for (const line of lines) {
      const [kind = '', inside] = line.split(' ')
      expect(inside, kind).not.toBe(fs.readlinkSync(`/proc/self/ns/${kind}`))
    }
  })

  it('runs in a new session without a terminal, so TIOCSTI has none to reach', async () => {
    // A session led from outside the sandbox's pid namespace reads as 0: this one is led inside.
    const session = await python('import os; print(os.getsid(0) > 0)')
    expect(session.stdout).toBe('True\n')
    const tty = await bash('tty; echo "exit $?"')
    expect(tty.stdout).toContain('not a tty')
  })
})
