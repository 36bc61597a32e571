import { describe, expect, it } from 'vitest'
import { bash, python, run } from '../../support/sandbox.ts'

// DESIGN 3.1: the host's / is never bound; only /usr and a few files, read-only.
describe('escape: reading or writing the host filesystem', () => {
  it('sees none of the host outside /usr and the files it was given', async () => {
    const root = await bash('ls -A /')
    const allowedRoot = [
      'bin',
      'dev',
      'etc',
      'lib',
      'lib32',
      'lib64',
      'libx32',
      'proc',
      'sbin',
      'tmp',
      'usr',
      'work',
    ]
    expect(
      root.stdout
        .trim()
        .split('\n')
        .filter((name) => !allowedRoot.includes(name)),
    ).toEqual([])
    const etc = await bash('ls -A /etc')
    const allowedEtc = ['alternatives', 'group', 'ld.so.cache', 'localtime', 'passwd']
    expect(
      etc.stdout
        .trim()
        .split('\n')
        .filter((name) => !allowedEtc.includes(name)),
    ).toEqual([])
  })

  it('cannot read /etc/shadow, the host passwd or the hutch checkout', async () => {
    const result = await python(`
import os
for path in ['/etc/shadow', '/root', '/home', '${process.cwd()}', '/var/lib/hutch', '/sys/fs/cgroup']:
    print(path, os.path.exists(path))
print(open('/etc/passwd').read())
`)
    expect(result.stdout).toContain('/etc/shadow False')
    expect(result.stdout).toContain('/root False')
    expect(result.stdout).toContain(`${process.cwd()} False`)
    expect(result.stdout).toContain('/var/lib/hutch False')
    expect(result.stdout).toContain('/sys/fs/cgroup False')
    expect(result.stdout).toContain('user:x:1000:1000')
    expect(result.stdout.match(/^[a-z]+:x:/gm)).toHaveLength(3)
  })

  it('cannot write to /, /usr or /etc', async () => {
    const result = await bash(
      'for p in /x /usr/x /usr/bin/python3 /etc/passwd /etc/x; do (echo pwned > $p) 2>/dev/null && echo "wrote $p"; done; echo done',
    )
    expect(result.stdout).toBe('done\n')
  })

  it('can write only its workdir, /tmp and /dev/shm', async () => {
    const result = await bash(
      'echo a > /work/a && echo b > /tmp/b && echo c > /dev/shm/c && cat /work/a /tmp/b /dev/shm/c',
    )
    expect(result.stdout).toBe('a\nb\nc\n')
  })

  it('paths through /proc (/proc/1/root, /proc/self/root, cwd and fd links of pid 1) lead only into the sandbox', async () => {
    // pid 1 is bwrap's init inside the sandbox; the bwrap outside, and the server, are not in its
    // pid namespace, so none of their /proc entries can be named.
    // On the fast path pid 1 is the sandbox's own init, not dumpable: its links are refused
    // outright (PermissionError), which leads nowhere either.
    const result = await python(`
import os
own = sorted(os.listdir('/'))
for path in ('/proc/1/root/', '/proc/self/root/', '/proc/2/root/', '/proc/1/root/proc/1/root/'):
    try:
        print(path, sorted(os.listdir(path)) == own)
    except PermissionError:
        print(path, 'denied')
try:
    print(os.readlink('/proc/1/cwd'), os.readlink('/proc/1/root'))
except PermissionError:
    print('denied')
try:
    fds = os.listdir('/proc/1/fd')
except PermissionError:
    fds = []
for fd in fds:
    try:
        print('fd', os.readlink(f'/proc/1/fd/{fd}'))
    except OSError as e:
        print('fd', fd, type(e).__name__)
print(os.path.exists('/proc/1/root/var/lib/hutch'), os.path.exists('/proc/1/root/root'))
`)
    expect(result.status).toBe('ok')
    const lines = result.stdout.trim().split('\n')
    const pid1Denied = lines[0] === '/proc/1/root/ denied'
    expect(lines.slice(0, 4)).toEqual([
      pid1Denied ? '/proc/1/root/ denied' : '/proc/1/root/ True',
      '/proc/self/root/ True',
      '/proc/2/root/ True',
      pid1Denied ? '/proc/1/root/proc/1/root/ denied' : '/proc/1/root/proc/1/root/ True',
    ])
    expect(lines[4]).toBe(pid1Denied ? 'denied' : '/work /')
    expect(lines.at(-1)).toBe('False False')
    for (const line of lines.filter((l) => l.startsWith('fd '))) {
      expect(line).toMatch(/^fd (\/dev\/null|pipe:|socket:|anon_inode:|\d+ PermissionError)/)
    }
  })

  it("a JavaScript run gets the server's Node.js binary and nothing that lies beside it", async () => {
    // The runtime mounted the binary's grandparent directory: wherever Node.js was installed.
    // For ~/.local/bin/node that is ~/.local, which holds an unprivileged server's state and so
    // every other run's workdir, readable by the sandbox (same host uid).
    const result = await run({
      language: 'javascript',
      code: `const fs = require('node:fs')
console.log(JSON.stringify(fs.readdirSync('/opt/hutch/node', { recursive: true }).sort()))
console.log(process.version)`,
    })
    expect(result.status).toBe('ok')
    const [listing, version] = result.stdout.trim().split('\n')
    expect(JSON.parse(listing ?? '[]')).toEqual(['bin', 'bin/node'])
    expect(version).toBe(process.version)
  })

  it('sees only the harmless devices in /dev, and cannot make others', async () => {
    const result = await bash(
      'ls -A /dev | tr "\\n" " "; echo; mknod /dev/shm/sda b 8 0 2>&1 | head -c 0 && ls /dev/shm; cat /dev/core 2>&1 | head -c 0; echo "exit ${PIPESTATUS[0]}"',
    )
    const [devices = ''] = result.stdout.split('\n')
    const allowed = ['console', 'core', 'fd', 'full', 'null', 'ptmx', 'pts', 'random', 'shm']
    allowed.push('stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero')
    expect(
      devices
        .trim()
        .split(' ')
        .filter((name) => !allowed.includes(name)),
    ).toEqual([])
    expect(result.stdout).not.toContain('sda')
    expect(result.stdout).toMatch(/exit [1-9]/)
  })
})
