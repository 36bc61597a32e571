import fs, { constants, type Dirent, type Stats } from 'node:fs'
import { open, opendir, stat, type FileHandle } from 'node:fs/promises'
import { SandboxError } from '../sandbox-error.ts'

// Node has no openat(2). Opening `/proc/self/fd/<fd>/<name>`, where `name` is one component that
// is neither `.` nor `..`, resolves the magic link to the very directory the descriptor holds and
// then looks up `name` inside it: the same as openat(fd, name, flags). O_NOFOLLOW then refuses a
// final symbolic link. Node opens every descriptor with O_CLOEXEC, so none leaks into a sandbox.

/** Opens a directory that must not be a symbolic link. */
export const directoryFlags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW

/** Opens a file for reading without following a link, blocking on a FIFO or taking a tty. */
export const readFileFlags =
  constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY

/** Creates a new file; fails if anything, a symbolic link included, already has the name. */
export const createFileFlags =
  constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW

/** The path through which the open descriptor (a handle, or a plain fd) itself is reached. */
export function descriptorPath(handle: FileHandle | number): string {
  return `/proc/self/fd/${typeof handle === 'number' ? handle : handle.fd}`
}

/** The path equivalent to `openat(directory, name)`; `name` must be a single component. */
export function childPath(directory: FileHandle | number, name: Uint8Array | string): Buffer {
  return Buffer.concat([Buffer.from(`${descriptorPath(directory)}/`), Buffer.from(name)])
}

/**
 * Opens a trusted root directory: a workdir the server made, a destination the operator chose.
 * Links in `rootDir` itself are resolved as usual; nothing below it is ever reached through one.
 */
export async function openRootDirectory(rootDir: string): Promise<FileHandle> {
  let root: FileHandle
  try {
    root = await open(rootDir, constants.O_RDONLY | constants.O_DIRECTORY)
  } catch (error) {
    throw rootOpenFailure(error)
  }
  try {
    const [viaDescriptor, direct] = await Promise.all([stat(descriptorPath(root)), root.stat()])
    if (!sameFile(viaDescriptor, direct)) throw new Error('/proc/self/fd names another file')
  } catch (error) {
    await root.close()
    throw procFdUnavailable(error)
  }
  return root
}

/** What opening a root directory that failed with `error` reports. */
function rootOpenFailure(error: unknown): unknown {
  const code = errnoCode(error)
  if (code === 'ENOENT') {
    return new SandboxError('file_not_found', 'directory does not exist', {}, { cause: error })
  }
  if (code === 'ENOTDIR' || code === 'ELOOP') {
    return new SandboxError('invalid_path', 'not a directory', {}, { cause: error })
  }
  return error
}

function procFdUnavailable(error: unknown): SandboxError {
  return new SandboxError(
    'backend_unavailable',
    'safe file I/O needs /proc mounted with /proc/self/fd readable',
    {},
    { cause: error },
  )
}

/**
 * `openRootDirectory`, synchronously, for walks that do their directory work without the thread
 * pool (see tree-walk.ts); returns a plain descriptor the caller closes with `fs.closeSync`.
 */
export function openRootDirectorySync(rootDir: string): number {
  let root: number
  try {
    root = fs.openSync(rootDir, constants.O_RDONLY | constants.O_DIRECTORY)
  } catch (error) {
    throw rootOpenFailure(error)
  }
  try {
    if (!sameFile(fs.statSync(descriptorPath(root)), fs.fstatSync(root))) {
      throw new Error('/proc/self/fd names another file')
    }
  } catch (error) {
    fs.closeSync(root)
    throw procFdUnavailable(error)
  }
  return root
}

/**
 * The entries of an open directory, read lazily so a huge directory is never listed whole. Names
 * are raw bytes: they need not be UTF-8.
 */
export async function* readDirectoryEntries(directory: FileHandle): AsyncGenerator<Dirent<Buffer>> {
  // Node honours encoding 'buffer' here although its types only list string encodings.
  const listing = await opendir(descriptorPath(directory), {
    encoding: 'buffer' as BufferEncoding,
    bufferSize: 128,
  })
  for await (const entry of listing) {
    const dirent = entry as unknown as Dirent<Buffer>
    if (!Buffer.isBuffer(dirent.name)) throw new Error('opendir returned a string name')
    yield dirent
  }
}

/** `readDirectoryEntries`, synchronously (see `openRootDirectorySync`). */
export function* readDirectoryEntriesSync(directory: number): Generator<Dirent<Buffer>> {
  const listing = fs.opendirSync(descriptorPath(directory), {
    encoding: 'buffer' as BufferEncoding,
    bufferSize: 128,
  })
  try {
    for (;;) {
      const entry = listing.readSync() as unknown as Dirent<Buffer> | null
      if (entry === null) return
      if (!Buffer.isBuffer(entry.name)) throw new Error('opendir returned a string name')
      yield entry
    }
  } finally {
    listing.closeSync()
  }
}

/** Whether two stats describe the same inode. */
export function sameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino
}

/** The `code` of a Node system error (`'ENOENT'`), if it is one. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined
  return typeof error.code === 'string' ? error.code : undefined
}
