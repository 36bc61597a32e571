import fs from 'node:fs'
import type { Policy } from '../../policy/policy.ts'
import { sandboxUid, sandboxWorkdir } from '../../policy/policy.ts'

/** Descriptors the launcher hands bubblewrap, by their number in bwrap's process. */
export interface BwrapDescriptors {
  /** The workdir to bind at /work; without it, /work is an empty directory (a fork server's). */
  workdir?: number
  /** The seccomp filter; only a fork server, which runs no user code, goes without one. */
  seccomp?: number
  jsonStatus?: number
}

/** Files hutch writes once per backend and shows every sandbox. */
export interface BwrapHostFiles {
  /** Synthetic /etc/passwd naming only root, the sandbox user and nobody. */
  passwd: string
  group: string
}

const mergedUsrLinks = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'] as const

/** Host files the network mode `host` needs to resolve names and check certificates. */
const hostNetworkFiles = [
  '/etc/resolv.conf',
  '/etc/hosts',
  '/etc/nsswitch.conf',
  '/etc/gai.conf',
  '/etc/host.conf',
  '/etc/ssl',
  '/etc/ca-certificates',
  '/etc/pki',
] as const

/** Device nodes of a fork server's /dev: those of bwrap's `--dev` but the terminals. */
const forkServerDevices = [
  '/dev/null',
  '/dev/zero',
  '/dev/full',
  '/dev/random',
  '/dev/urandom',
  '/dev/tty',
] as const
const devLinks = {
  '/dev/fd': '/proc/self/fd',
  '/dev/stdin': '/proc/self/fd/0',
  '/dev/stdout': '/proc/self/fd/1',
  '/dev/stderr': '/proc/self/fd/2',
} as const

/**
 * The host's root-level directories that merged-/usr turns into symlinks (`/bin -> usr/bin`),
 * read once: they become the same symlinks in the sandbox, or read-only binds on hosts that
 * have not merged /usr.
 */
export function describeRootLinks(): { name: string; link?: string; dir?: boolean }[] {
  const found: { name: string; link?: string; dir?: boolean }[] = []
  for (const name of mergedUsrLinks) {
    const hostPath = `/${name}`
    try {
      const stat = fs.lstatSync(hostPath)
      if (stat.isSymbolicLink()) found.push({ name, link: fs.readlinkSync(hostPath) })
      else if (stat.isDirectory()) found.push({ name, dir: true })
    } catch {
      // absent on this host: nothing to show
    }
  }
  return found
}

/** What one sandbox is given beyond its policy. */
export interface BwrapLayout {
  rootLinks: readonly { name: string; link?: string; dir?: boolean }[]
  hostFiles: BwrapHostFiles
  fds: BwrapDescriptors
  /** Size of the private /tmp, bytes. */
  tmpBytes: number
  /** Size of the private /dev/shm, bytes. */
  shmBytes: number
  /**
   * Keep every capability inside the sandbox's own user namespace: only for a fork server, which
   * needs them to give each child its own namespaces and mounts, and whose children drop them all.
   */
  keepCapabilities?: boolean
}

/**
 * The bubblewrap arguments (passed on a descriptor with `--args`) that enforce a policy: never
 * the host's `/`, only /usr and the few files a runtime needs, read-only; every namespace
 * unshared, user namespaces disabled inside, a new session, an empty environment but the
 * policy's own, private /proc, /dev, /tmp and /dev/shm, the workdir bound by descriptor.
 */
export function buildBwrapArgs(policy: Policy, layout: BwrapLayout): string[] {
  const args: string[] = [
    '--unshare-all',
    '--unshare-user',
    // A fork server must be able to return to its own pid namespace (setns) after each fork,
    // which a nested user namespace would forbid; its children cannot make one (seccomp).
    ...(layout.keepCapabilities === true ? [] : ['--disable-userns']),
    '--die-with-parent',
    '--new-session',
    ...(layout.keepCapabilities === true ? ['--cap-add', 'ALL'] : ['--cap-drop', 'ALL']),
    '--uid',
    String(sandboxUid),
    '--gid',
    String(sandboxUid),
    '--hostname',
    'hutch',
  ]
  if (policy.network === 'host') args.push('--share-net')
  args.push('--clearenv')
  for (const [name, value] of Object.entries(policy.env)) args.push('--setenv', name, value)

  args.push('--ro-bind', '/usr', '/usr')
  for (const entry of layout.rootLinks) {
    if (entry.link !== undefined) args.push('--symlink', entry.link, `/${entry.name}`)
    else if (entry.dir === true) args.push('--ro-bind', `/${entry.name}`, `/${entry.name}`)
  }
  args.push('--ro-bind', '/etc/ld.so.cache', '/etc/ld.so.cache')
  args.push('--ro-bind', layout.hostFiles.passwd, '/etc/passwd')
  args.push('--ro-bind', layout.hostFiles.group, '/etc/group')
  args.push('--ro-bind-try', '/etc/alternatives', '/etc/alternatives')
  args.push('--ro-bind-try', '/etc/localtime', '/etc/localtime')
  if (policy.network === 'host') {
    for (const file of hostNetworkFiles) args.push('--ro-bind-try', file, file)
  }
  for (const mount of policy.mounts) {
    args.push(mount.readOnly ? '--ro-bind-try' : '--bind-try', mount.source, mount.target)
  }

  args.push('--proc', '/proc')
  if (layout.keepCapabilities === true) {
    // `--dev` needs a devpts mount, for which bwrap nests a second user namespace; a fork server
    // in a nested one could not return to its own pid namespace after a fork (setns needs the
    // rights of the namespace's owner). The same devices, bound one by one, need no devpts.
    args.push('--size', '65536', '--tmpfs', '/dev')
    for (const device of forkServerDevices) args.push('--dev-bind', device, device)
    for (const [name, target] of Object.entries(devLinks)) args.push('--symlink', target, name)
    args.push('--dir', '/dev/shm', '--dir', '/dev/pts', '--symlink', 'pts/ptmx', '/dev/ptmx')
  } else {
    args.push('--dev', '/dev')
  }
  args.push('--size', String(layout.tmpBytes), '--tmpfs', '/tmp')
  args.push('--size', String(layout.shmBytes), '--tmpfs', '/dev/shm')
  if (layout.fds.workdir === undefined) args.push('--dir', sandboxWorkdir)
  else args.push('--bind-fd', String(layout.fds.workdir), sandboxWorkdir)
  args.push('--chdir', sandboxWorkdir)
  args.push('--remount-ro', '/')
  if (layout.fds.seccomp !== undefined) args.push('--seccomp', String(layout.fds.seccomp))
  if (layout.fds.jsonStatus !== undefined) {
    args.push('--json-status-fd', String(layout.fds.jsonStatus))
  }
  return args
}

/** Synthetic account files: the sandbox user and nothing of the host's. */
export function syntheticAccounts(): { passwd: string; group: string } {
  return {
    passwd: [
      'root:x:0:0:root:/root:/usr/sbin/nologin',
      `user:x:${sandboxUid}:${sandboxUid}:hutch sandbox:/tmp:/bin/bash`,
      'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
      '',
    ].join('\n'),
    group: ['root:x:0:', `user:x:${sandboxUid}:`, 'nogroup:x:65534:', ''].join('\n'),
  }
}
