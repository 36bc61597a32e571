import { createHash, randomBytes } from 'node:crypto'
import { constants, type Stats } from 'node:fs'
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises'
import { SandboxError } from '../sandbox-error.ts'
import {
  childPath,
  createFileFlags,
  directoryFlags,
  errnoCode,
  openRootDirectory,
} from './descriptors.ts'
import { fileContent } from './file-content.ts'
import { validateRelativePath } from './paths.ts'

/** How {@link writeFileInto} creates a file. */
export interface WriteFileOptions {
  /**
   * Permission bits of the new file, within 0o777 (no setuid, setgid or sticky bit); 0o644 by
   * default.
   */
  readonly mode?: number
  /**
   * Owner of the new file and of every directory created for it (the sandbox's pool uid when the
   * server runs as root); unchanged by default. Needs the privilege to chown.
   */
  readonly uid?: number
  /** Group of the new file and of every directory created for it; unchanged by default. */
  readonly gid?: number
  /** Largest content accepted, in bytes; unlimited by default. */
  readonly maxFileBytes?: number
  /**
   * Replace a file or link already at the path, never a directory: the content goes to a temporary
   * file beside it that is then renamed over, so a link there is replaced, not followed. False by
   * default, when an existing name is an error.
   */
  readonly overwrite?: boolean
}

/** What {@link writeFileInto} wrote. */
export interface WriteFileResult {
  /** Bytes written. */
  readonly size: number
  /** Hex SHA-256 of the bytes written. */
  readonly sha256: string
}

const directoryMode = 0o755
const defaultFileMode = 0o644

/**
 * Creates a new file at a workdir-relative path, creating missing parent directories (mode 0o755)
 * on the way. Every component is opened relative to its parent's descriptor without following a
 * link, so a symbolic link the tenant planted (a directory pointing at `/etc`, a file pointing at
 * a host file) makes it fail instead of writing outside `rootDir`. It replaces nothing unless
 * `options.overwrite` says so.
 *
 * `rootDir` is trusted: links in it are resolved as usual. A partly written file is removed on
 * failure; directories created for it stay.
 *
 * @param data bytes, a string (written as UTF-8), or any async iterable of them (a Node stream).
 * @throws SandboxError `invalid_path` for a bad path, a path through a link or non-directory, or a
 *   name that already exists; `payload_too_large` past `options.maxFileBytes`; `invalid_request`
 *   for bad options or a stream yielding something other than bytes or strings.
 */
export async function writeFileInto(
  rootDir: string,
  relativePath: string,
  data: Uint8Array | string | AsyncIterable<Uint8Array | string>,
  options: WriteFileOptions = {},
): Promise<WriteFileResult> {
  const path = validateRelativePath(relativePath)
  validateOptions(options)
  const parents = path.split('/')
  const fileName = parents.pop() ?? path
  let directory = await openRootDirectory(rootDir)
  try {
    for (const [index, name] of parents.entries()) {
      const shownPath = parents.slice(0, index + 1).join('/')
      const child = await openOrCreateDirectory(directory, name, shownPath, options)
      const parent = directory
      directory = child
      await parent.close()
    }
    return await createFile(directory, fileName, data, options)
  } finally {
    await directory.close()
  }
}

/**
 * Opens a file of the host to read into a sandbox: a regular file, or a clear error.
 * @throws SandboxError `file_not_found` when `hostPath` does not exist, `invalid_request` when it
 *   is not a regular file or cannot be opened.
 */
export async function openHostFile(
  hostPath: string,
): Promise<{ handle: FileHandle; stats: Stats }> {
  let handle: FileHandle
  try {
    handle = await open(hostPath, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (error) {
    const code = errnoCode(error)
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new SandboxError('file_not_found', 'host file does not exist', {}, { cause: error })
    }
    throw new SandboxError('invalid_request', 'cannot open host file', { code }, { cause: error })
  }
  const stats = await handle.stat()
  if (!stats.isFile()) {
    await handle.close()
    throw new SandboxError('invalid_request', 'host path is not a regular file')
  }
  return { handle, stats }
}

/**
 * Copies a host file into a workdir with {@link writeFileInto}. `hostPath` comes from the operator
 * (a CLI argument, server config), so links in it are followed, but it must end at a regular file.
 * The new file keeps the source's permission bits unless `options.mode` says otherwise.
 *
 * @throws SandboxError `file_not_found` when `hostPath` does not exist, `invalid_request` when it is
 *   not a regular file or cannot be read, and whatever {@link writeFileInto} throws.
 */
export async function copyHostFileInto(
  rootDir: string,
  relativePath: string,
  hostPath: string,
  options: WriteFileOptions = {},
): Promise<WriteFileResult> {
  validateRelativePath(relativePath)
  const { handle: source, stats } = await openHostFile(hostPath)
  try {
    const content = fileContent(source, Number.POSITIVE_INFINITY)
    try {
      return await writeFileInto(rootDir, relativePath, content, {
        mode: stats.mode & 0o777,
        ...options,
      })
    } finally {
      content.destroy()
    }
  } finally {
    await source.close()
  }
}

async function openOrCreateDirectory(
  parent: FileHandle,
  name: string,
  shownPath: string,
  options: WriteFileOptions,
): Promise<FileHandle> {
  const existing = await openDirectory(parent, name, shownPath)
  if (existing !== undefined) return existing
  try {
    await mkdir(childPath(parent, name), { mode: 0o700 })
  } catch (error) {
    // Something appeared under the name since: the open below decides whether it is usable.
    if (errnoCode(error) !== 'EEXIST') throw error
  }
  const created = await openDirectory(parent, name, shownPath)
  if (created === undefined) {
    throw new SandboxError('invalid_path', 'parent directory vanished while being created', {
      path: shownPath,
    })
  }
  try {
    await setOwnership(created, options)
    await created.chmod(directoryMode)
  } catch (error) {
    await created.close()
    throw error
  }
  return created
}

/** Opens a directory under `parent`, undefined when absent; refuses links and non-directories. */
async function openDirectory(
  parent: FileHandle,
  name: string,
  shownPath: string,
): Promise<FileHandle | undefined> {
  try {
    return await open(childPath(parent, name), directoryFlags)
  } catch (error) {
    const code = errnoCode(error)
    if (code === 'ENOENT') return undefined
    if (code === 'ENOTDIR' || code === 'ELOOP') {
      throw new SandboxError(
        'invalid_path',
        'a parent of the path is a symbolic link or not a directory',
        { path: shownPath },
        { cause: error },
      )
    }
    throw error
  }
}

async function createFile(
  directory: FileHandle,
  name: string,
  data: Uint8Array | string | AsyncIterable<Uint8Array | string>,
  options: WriteFileOptions,
): Promise<WriteFileResult> {
  const overwrite = options.overwrite === true
  // A short temporary name: `name` may already be the longest a component can be.
  const createdName = overwrite ? `.hutch-${randomBytes(8).toString('hex')}.tmp` : name
  const created = childPath(directory, createdName)
  let file: FileHandle
  try {
    file = await open(created, createFileFlags, 0o600)
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') throw nameTaken(error)
    throw error
  }
  let complete = false
  try {
    await setOwnership(file, options)
    await file.chmod(options.mode ?? defaultFileMode)
    const result = await writeContent(file, data, options.maxFileBytes ?? Number.POSITIVE_INFINITY)
    if (overwrite) {
      // rename(2) replaces a link itself, never its target, and refuses to replace a directory.
      await rename(created, childPath(directory, name)).catch((error: unknown) => {
        const code = errnoCode(error)
        throw code === 'EISDIR' || code === 'ENOTEMPTY' || code === 'EEXIST'
          ? nameTaken(error)
          : error
      })
    }
    complete = true
    return result
  } finally {
    await file.close()
    if (!complete) await unlink(created).catch(() => undefined)
  }
}

function nameTaken(cause: unknown): SandboxError {
  return new SandboxError(
    'invalid_path',
    'a file, directory or link already has this name',
    { reason: 'exists' },
    { cause },
  )
}

async function writeContent(
  file: FileHandle,
  data: Uint8Array | string | AsyncIterable<Uint8Array | string>,
  maxFileBytes: number,
): Promise<WriteFileResult> {
  const hash = createHash('sha256')
  let size = 0
  const chunks: Iterable<unknown> | AsyncIterable<unknown> =
    typeof data === 'string' || data instanceof Uint8Array ? [data] : data
  for await (const chunk of chunks) {
    const bytes = toBytes(chunk)
    size += bytes.byteLength
    if (size > maxFileBytes) {
      throw new SandboxError('payload_too_large', `file is larger than ${maxFileBytes} bytes`, {
        maxFileBytes,
      })
    }
    hash.update(bytes)
    for (let offset = 0; offset < bytes.byteLength;) {
      const { bytesWritten } = await file.write(bytes, offset, bytes.byteLength - offset)
      offset += bytesWritten
    }
  }
  return { size, sha256: hash.digest('hex') }
}

function toBytes(chunk: unknown): Uint8Array {
  if (typeof chunk === 'string') return Buffer.from(chunk)
  if (chunk instanceof Uint8Array) return chunk
  throw new SandboxError('invalid_request', 'file content must be bytes or strings')
}

async function setOwnership(handle: FileHandle, options: WriteFileOptions): Promise<void> {
  if (options.uid === undefined && options.gid === undefined) return
  await handle.chown(options.uid ?? -1, options.gid ?? -1)
}

function validateOptions(options: WriteFileOptions): void {
  const { mode, uid, gid, maxFileBytes } = options
  if (mode !== undefined && (!Number.isInteger(mode) || mode < 0 || mode > 0o777)) {
    throw new SandboxError('invalid_request', 'mode must be permission bits within 0o777', { mode })
  }
  for (const [name, id] of [
    ['uid', uid],
    ['gid', gid],
  ] as const) {
    if (id !== undefined && (!Number.isInteger(id) || id < 0 || id >= 2 ** 32 - 1)) {
      throw new SandboxError('invalid_request', `${name} must be a user or group id`, {
        [name]: id,
      })
    }
  }
  if (maxFileBytes !== undefined && (!Number.isSafeInteger(maxFileBytes) || maxFileBytes < 0)) {
    throw new SandboxError('invalid_limit', 'maxFileBytes must be a non-negative integer', {
      maxFileBytes,
    })
  }
}
