import { describe, expect, it } from 'vitest'
import { testSandbox } from '../../support/sandbox.ts'

// Issue 4: on the fast path, sandboxes are siblings forked from one fork server under one host
// uid. A run must not see, signal or trace the fork server or a sibling.
describe('escape: reaching the fork server or a sibling sandbox', () => {
  it('cannot see, signal or trace the fork server or a sibling', async () => {
    const sandbox = await testSandbox('forkserver')
    const sibling = sandbox.run({
      language: 'python',
      code: 'import time; time.sleep(2); print("sibling alive")',
    })
    // Give the sibling time to start before the attack.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const attack = await sandbox.run({
      language: 'python',
      code: `
import ctypes, errno, glob, os, signal
pids = sorted(int(p.split('/')[2]) for p in glob.glob('/proc/[0-9]*'))
print('pids', pids)
seen = [open(f'/proc/{p}/cmdline', 'rb').read() for p in pids if p != os.getpid()]
print('forkserver visible', any(b'forkserver' in c for c in seen))
print('sleep visible', any(b'time.sleep' in c for c in seen))
for target in (-1, 1):
    try:
        os.kill(target, signal.SIGKILL)
    except OSError as error:
        print('kill', target, errno.errorcode[error.errno])
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH = 16
for target in (1, 3):
    result = libc.ptrace(PTRACE_ATTACH, target, 0, 0)
    print('ptrace', target, 'attached' if result == 0 else errno.errorcode[ctypes.get_errno()])
print('done')
`,
    })
    expect(attack.status, attack.stderr).toBe('ok')
    // Its own init (1) and itself (2), nothing else.
    expect(attack.stdout).toContain('pids [1, 2]\n')
    expect(attack.stdout).toContain('forkserver visible False\n')
    expect(attack.stdout).toContain('sleep visible False\n')
    expect(attack.stdout).not.toContain('attached')
    expect(attack.stdout).toContain('done\n')
    expect(await sibling).toMatchObject({ status: 'ok', stdout: 'sibling alive\n' })
  })

  it('cannot reach the socket its sandbox was connected through', async () => {
    const sandbox = await testSandbox('forkserver')
    const result = await sandbox.run({
      language: 'bash',
      code: 'ls -A /tmp; ls /tmp/.hutch 2>&1; find / -xdev -type s 2>/dev/null; echo done',
    })
    expect(result.stdout).not.toContain('c.sock')
    expect(result.stdout).not.toContain('forkserver.py')
    expect(result.stdout).toContain('done\n')
  })
})

// The sandbox's init on the fast path runs as the program's own user: the program must not be
// able to take it over (write its memory, use its pipe to the fork server), nor to step outside
// the run's cgroup through it.
describe('escape: taking over the sandbox init on the fast path', () => {
  it('cannot open its memory or its descriptors, and it shares the run cgroup', async () => {
    const sandbox = await testSandbox('forkserver')
    const attack = await sandbox.run({
      language: 'python',
      code: `
import os
for path in ('/proc/1/mem', '/proc/1/fd'):
    try:
        if path.endswith('mem'):
            open(path, 'r+b')
        else:
            os.listdir(path)
        print(path, 'open')
    except PermissionError:
        print(path, 'denied')
print('same cgroup', open('/proc/1/cgroup').read() == open('/proc/self/cgroup').read())
status = dict(line.split(':\t', 1) for line in open('/proc/1/status').read().splitlines() if ':\t' in line)
print('init', status['Name'], status['CapEff'], status['CapPrm'], status['CapBnd'], status['NoNewPrivs'])
for path in ('/proc/1/root/tmp', '/proc/1/cwd'):
    try:
        print(path, os.listdir(path))
    except PermissionError:
        print(path, 'denied')
`,
    })
    expect(attack.status, attack.stderr).toBe('ok')
    expect(attack.stdout).toBe(
      [
        '/proc/1/mem denied',
        '/proc/1/fd denied',
        'same cgroup True',
        // The init is hutch-init.c: no capability left, no new privileges, not dumpable (its
        // root, where the fork server's socket is, cannot be followed).
        'init hutch-sandbox-i 0000000000000000 0000000000000000 0000000000000000 1',
        '/proc/1/root/tmp denied',
        '/proc/1/cwd denied',
        '',
      ].join('\n'),
    )
    const next = await sandbox.run({ language: 'python', code: 'print("still serving")' })
    expect(next.stdout).toBe('still serving\n')
  })
})
