import { createHash, randomUUID } from 'node:crypto'
import { constants, type Stats } from 'node:fs'
import { lstat, mkdir, open, rename, rmdir, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import {
  childPath,
  createFileFlags,
  decodeSafeName,
  detectMediaType,
  directoryFlags,
  errnoCode,
  mediaTypeSniffBytes,
  readDirectoryEntries,
  readFileFlags,
  sameFile,
  validateRelativePath,
} from '@hutch/sandbox'
import { AppError } from '../app-error.ts'
import type { Namespace } from '../namespace.ts'
import { decodeHeader, encodeHeader, headerBytes } from './file-header.ts'
import {
  bodyChunks,
  fromSandboxError,
  listConfig,
  namespaceIds,
  putConfig,
  storagePath,
} from './storage-inputs.ts'
import type {
  ListOptions,
  ListResult,
  PutOptions,
  Storage,
  StorageBody,
  StorageCheckResult,
  StorageUsage,
  StoredFile,
} from './storage.ts'

/** What {@link LocalStorage.recover} cleaned up. */
export interface RecoverResult {
  /** Temporary files of writes that never finished, removed. */
  removedTempFiles: number
}

// Both under rootDir, so on one filesystem (checked) and outside every namespace tree: a user
// path `tmp/x` or `.meta/x` is just a path.
const dataDirName = 'data'
const tempDirName = 'tmp'
const directoryMode = 0o700
const fileMode = 0o600
// A concurrent delete may remove an empty directory a put is about to rename into.
const placeAttempts = 5
// Errors of the disk rather than of the request: a client can retry later.
const unavailableCodes = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EMFILE', 'ENFILE', 'EACCES'])

interface OpenedFile {
  readonly handle: FileHandle
  readonly file: StoredFile
}

/** A regular file met while walking a namespace, by {@link walkFiles}. */
interface WalkedFile {
  readonly path: string
  readonly stats: Stats
  /** Opens it for reading, undefined when it is gone or no longer the file walked past. */
  open(): Promise<FileHandle | undefined>
}

/**
 * {@link Storage} in a local directory: `rootDir/data/{userId}/{chatId}/{path}` holds each file,
 * its metadata in a fixed header before the content (see `file-header.ts`), and
 * `rootDir/tmp/` holds writes in progress.
 *
 * A put writes a temporary file, fsyncs it, renames it into place and fsyncs the directory, so a
 * crash or kill at any moment leaves either the old file or the new one, complete; what a crash
 * leaves in `tmp/` is removed before the first operation of the next instance, or by
 * {@link LocalStorage.recover}. Every component below `rootDir/data` is opened relative to its
 * parent's descriptor without following a link, so a link planted in the tree is never followed:
 * `get`, `stat` and `list` pass over links and anything else that is not a stored file.
 *
 * One root belongs to one process at a time: another process's writes in progress would look
 * like leftovers of a crash to its recovery.
 */
export class LocalStorage implements Storage {
  /** The directory given to the constructor; trusted, so links in it are followed. */
  readonly rootDir: string
  readonly #dataDir: string
  readonly #tempDir: string
  /** Temporary files this instance is writing, which {@link recover} leaves alone. */
  readonly #tempFilesInUse = new Set<string>()
  #ready: Promise<void> | undefined

  /** Creates nothing yet: `rootDir` and its subdirectories are made on first use. */
  constructor(rootDir: string) {
    this.rootDir = rootDir
    this.#dataDir = join(rootDir, dataDirName)
    this.#tempDir = join(rootDir, tempDirName)
  }

  async put(
    namespace: Namespace,
    path: string,
    body: StorageBody,
    options: PutOptions = {},
  ): Promise<StoredFile> {
    const ids = namespaceIds(namespace)
    const filePath = storagePath(path)
    const config = putConfig(options)
    await this.#prepare()
    const tempName = `${randomUUID()}.part`
    this.#tempFilesInUse.add(tempName)
    let stored = false
    try {
      const tempDir = await open(this.#tempDir, directoryFlags)
      try {
        const temp = childPath(tempDir, tempName)
        try {
          const file = await writeTempFile(temp, filePath, body, config)
          await this.#place(ids, filePath, temp)
          stored = true
          return file
        } finally {
          if (!stored) await unlink(temp).catch(() => undefined)
        }
      } finally {
        await tempDir.close()
      }
    } catch (error) {
      throw storageError(error)
    } finally {
      this.#tempFilesInUse.delete(tempName)
    }
  }

  async get(
    namespace: Namespace,
    path: string,
  ): Promise<{ file: StoredFile; body: Readable } | undefined> {
    const opened = await this.#openFile(namespace, path)
    if (opened === undefined) return undefined
    const { handle, file } = opened
    if (file.size === 0) {
      await handle.close()
      return { file, body: Readable.from([]) }
    }
    // The open descriptor keeps this very content readable after a put or delete replaces it.
    const body = handle.createReadStream({
      start: headerBytes,
      end: headerBytes + file.size - 1,
      autoClose: true,
    })
    return { file, body }
  }

  async stat(namespace: Namespace, path: string): Promise<StoredFile | undefined> {
    const opened = await this.#openFile(namespace, path)
    if (opened === undefined) return undefined
    await opened.handle.close()
    return opened.file
  }

  async list(namespace: Namespace, options: ListOptions = {}): Promise<ListResult> {
    const ids = namespaceIds(namespace)
    const { prefix, limit } = listConfig(options)
    try {
      await this.#prepare()
      const directory = await this.#openDirectory(ids, [], false)
      const files: StoredFile[] = []
      if (directory === undefined) return { files, truncated: false }
      try {
        for await (const entry of walkFiles(directory, '', prefix)) {
          const file = await readWalkedFile(entry)
          if (file === undefined) continue
          // One file past the limit is read, so `truncated` never counts a damaged file.
          if (files.length === limit) return { files, truncated: true }
          files.push(file)
        }
      } finally {
        await directory.close()
      }
      return { files, truncated: false }
    } catch (error) {
      throw storageError(error)
    }
  }

  async delete(namespace: Namespace, path: string): Promise<boolean> {
    const ids = namespaceIds(namespace)
    const filePath = storagePath(path)
    try {
      await this.#prepare()
      const parents = filePath.split('/')
      const name = parents.pop() ?? filePath
      const directory = await this.#openDirectory(ids, parents, false)
      if (directory === undefined) return false
      try {
        const target = childPath(directory, name)
        const stats = await lstat(target).catch(absentAs(undefined))
        if (stats === undefined || !stats.isFile()) return false
        const removed = await unlink(target).then(() => true, absentAs(false))
        if (!removed) return false
        await directory.sync()
      } finally {
        await directory.close()
      }
      await this.#removeEmptyParents(ids, parents)
      return true
    } catch (error) {
      throw storageError(error)
    }
  }

  async usage(namespace: Namespace): Promise<StorageUsage> {
    const ids = namespaceIds(namespace)
    try {
      await this.#prepare()
      const usage = { files: 0, bytes: 0 }
      const directory = await this.#openDirectory(ids, [], false)
      if (directory === undefined) return usage
      try {
        // Sizes alone, no file opened: a damaged file that list passes over still takes room.
        for await (const { stats } of walkFiles(directory, '', '')) {
          if (stats.size < headerBytes) continue
          usage.files += 1
          usage.bytes += stats.size - headerBytes
        }
      } finally {
        await directory.close()
      }
      return usage
    } catch (error) {
      throw storageError(error)
    }
  }

  /** Ready when both directories are there and a file can be created and removed in `tmp/`. */
  async check(): Promise<StorageCheckResult> {
    const probeName = `${randomUUID()}.part`
    this.#tempFilesInUse.add(probeName)
    try {
      await this.#prepare()
      const dataDir = await open(this.#dataDir, directoryFlags)
      await dataDir.close()
      const tempDir = await open(this.#tempDir, directoryFlags)
      try {
        const probe = await open(childPath(tempDir, probeName), createFileFlags, fileMode)
        await probe.close()
        await unlink(childPath(tempDir, probeName))
      } finally {
        await tempDir.close()
      }
      return { ok: true }
    } catch (error) {
      const code = errnoCode(error)
      // /ready is public: the reason names the failure, not the directory.
      const cause = code ?? (error instanceof AppError ? error.message : 'unusable')
      return { ok: false, reason: `local storage: ${cause}` }
    } finally {
      this.#tempFilesInUse.delete(probeName)
    }
  }

  /**
   * Creates `rootDir`, `data/` and `tmp/` when missing and removes the temporary files of writes
   * that never finished (a crash, a kill). Runs by itself before the first operation; safe to
   * call again at any time, as it leaves this instance's writes in progress alone.
   *
   * @throws AppError `backend_unavailable` when the directories cannot be made, or `data/` and
   *   `tmp/` are on different filesystems (a rename between them could not be atomic).
   */
  async recover(): Promise<RecoverResult> {
    try {
      await mkdir(this.rootDir, { recursive: true, mode: directoryMode })
      // rootDir is the operator's: a link there is followed.
      const root = await open(this.rootDir, constants.O_RDONLY | constants.O_DIRECTORY)
      try {
        const dataDir = await openOrCreateDirectory(root, dataDirName, dataDirName)
        try {
          const tempDir = await openOrCreateDirectory(root, tempDirName, tempDirName)
          try {
            const [dataStats, tempStats] = await Promise.all([dataDir.stat(), tempDir.stat()])
            if (dataStats.dev !== tempStats.dev) {
              throw new AppError(
                'backend_unavailable',
                `${dataDirName}/ and ${tempDirName}/ of the storage root are on different filesystems`,
              )
            }
            return { removedTempFiles: await this.#removeTempFiles(tempDir) }
          } finally {
            await tempDir.close()
          }
        } finally {
          await dataDir.close()
        }
      } finally {
        await root.close()
      }
    } catch (error) {
      if (error instanceof AppError && error.code === 'backend_unavailable') throw error
      throw new AppError(
        'backend_unavailable',
        'cannot prepare the storage directory',
        { code: errnoCode(error) },
        { cause: error },
      )
    }
  }

  /** Runs {@link recover} once; again after a failure, so a disk mounted late is picked up. */
  #prepare(): Promise<void> {
    this.#ready ??= this.recover().then(
      () => undefined,
      (error: unknown) => {
        this.#ready = undefined
        throw error
      },
    )
    return this.#ready
  }

  async #removeTempFiles(tempDir: FileHandle): Promise<number> {
    let removed = 0
    for await (const entry of readDirectoryEntries(tempDir)) {
      if (this.#tempFilesInUse.has(entry.name.toString('latin1'))) continue
      try {
        await unlink(childPath(tempDir, entry.name))
        removed += 1
      } catch (error) {
        // A directory (EISDIR) is nothing a put made; a file may be gone meanwhile.
        if (errnoCode(error) !== 'EISDIR' && errnoCode(error) !== 'ENOENT') throw error
      }
    }
    return removed
  }

  /** Renames a complete temporary file to its path, creating the directories on the way. */
  async #place(ids: readonly string[], filePath: string, temp: Buffer): Promise<void> {
    const parents = filePath.split('/')
    const name = parents.pop() ?? filePath
    for (let attempt = 1; ; attempt += 1) {
      try {
        const directory = await this.#openDirectory(ids, parents, true)
        if (directory === undefined) throw new Error('a created directory is missing')
        try {
          await renameIntoPlace(temp, directory, name, filePath)
          await directory.sync()
        } finally {
          await directory.close()
        }
        return
      } catch (error) {
        // ENOENT: a delete removed a directory of the path, now empty, meanwhile.
        if (errnoCode(error) !== 'ENOENT' || attempt === placeAttempts) throw error
      }
    }
  }

  async #openFile(namespace: Namespace, path: string): Promise<OpenedFile | undefined> {
    const ids = namespaceIds(namespace)
    const filePath = storagePath(path)
    try {
      await this.#prepare()
      const parents = filePath.split('/')
      const name = parents.pop() ?? filePath
      const directory = await this.#openDirectory(ids, parents, false)
      if (directory === undefined) return undefined
      let handle: FileHandle
      try {
        const opened = await openIfPresent(childPath(directory, name), readFileFlags)
        if (opened === undefined) return undefined
        handle = opened
      } finally {
        await directory.close()
      }
      try {
        const stats = await handle.stat()
        const file = stats.isFile() ? await readStoredFile(handle, stats, filePath) : undefined
        if (file !== undefined) return { handle, file }
      } catch (error) {
        await handle.close()
        throw error
      }
      await handle.close()
      return undefined
    } catch (error) {
      throw storageError(error)
    }
  }

  /**
   * Opens `data/{userId}/{chatId}/{parents...}` one component at a time, never through a link.
   * Without `create`, undefined when a component is missing, a link or not a directory; with it,
   * missing directories are made and a component that is not a directory is `invalid_path`.
   */
  async #openDirectory(
    ids: readonly string[],
    parents: readonly string[],
    create: boolean,
  ): Promise<FileHandle | undefined> {
    let directory = await open(this.#dataDir, directoryFlags)
    const names = [...ids, ...parents]
    for (const [index, name] of names.entries()) {
      const shownPath = index < ids.length ? '' : parents.slice(0, index - ids.length + 1).join('/')
      let child: FileHandle | undefined
      try {
        child = create
          ? await openOrCreateDirectory(directory, name, shownPath)
          : await openIfPresent(childPath(directory, name), directoryFlags)
      } finally {
        await directory.close()
      }
      if (child === undefined) return undefined
      directory = child
    }
    return directory
  }

  /** Removes the directories of `parents` a delete left empty, deepest first. */
  async #removeEmptyParents(ids: readonly string[], parents: readonly string[]): Promise<void> {
    for (let depth = parents.length; depth > 0; depth -= 1) {
      const parent = await this.#openDirectory(ids, parents.slice(0, depth - 1), false)
      if (parent === undefined) return
      try {
        await rmdir(childPath(parent, parents[depth - 1] ?? ''))
        await parent.sync()
      } catch (error) {
        // Not empty (a put was quicker), gone, or not a directory: nothing more to prune.
        if (['ENOTEMPTY', 'EEXIST', 'ENOENT', 'ENOTDIR'].includes(errnoCode(error) ?? '')) return
        throw error
      } finally {
        await parent.close()
      }
    }
  }
}

/** Streams a body into a new file after room for its header, then writes the header and syncs. */
async function writeTempFile(
  temp: Buffer,
  filePath: string,
  body: StorageBody,
  config: { readonly maxBytes: number; readonly mediaType: string | undefined },
): Promise<StoredFile> {
  const handle = await open(temp, createFileFlags, fileMode)
  try {
    const hash = createHash('sha256')
    const head: Buffer[] = []
    let headLength = 0
    let size = 0
    for await (const chunk of bodyChunks(body)) {
      if (size + chunk.byteLength > config.maxBytes) {
        throw new AppError('payload_too_large', `file is larger than ${config.maxBytes} bytes`, {
          maxBytes: config.maxBytes,
        })
      }
      hash.update(chunk)
      if (headLength < mediaTypeSniffBytes) {
        // Copied: a caller may reuse the chunk's memory once it is written.
        const part = Buffer.from(chunk.subarray(0, mediaTypeSniffBytes - headLength))
        head.push(part)
        headLength += part.byteLength
      }
      await writeAll(handle, chunk, headerBytes + size)
      size += chunk.byteLength
    }
    const file: StoredFile = {
      path: filePath,
      size,
      mediaType: config.mediaType ?? detectMediaType(filePath, Buffer.concat(head)),
      sha256: hash.digest('hex'),
      modifiedAt: new Date().toISOString(),
    }
    await writeAll(handle, encodeHeader(file), 0)
    await handle.sync()
    return file
  } finally {
    await handle.close()
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let offset = 0; offset < bytes.byteLength;) {
    const { bytesWritten } = await handle.write(
      bytes,
      offset,
      bytes.byteLength - offset,
      position + offset,
    )
    offset += bytesWritten
  }
}

/**
 * rename(2) replaces a file or a planted link at the name (never following it), atomically. A
 * directory there is removed first when empty (one a delete could not prune), else the path is
 * taken.
 */
async function renameIntoPlace(
  temp: Buffer,
  directory: FileHandle,
  name: string,
  filePath: string,
): Promise<void> {
  const target = childPath(directory, name)
  try {
    await rename(temp, target)
    return
  } catch (error) {
    const code = errnoCode(error)
    if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error
  }
  try {
    await rmdir(target)
  } catch (error) {
    throw new AppError(
      'invalid_path',
      'a directory already has this name',
      { path: filePath, reason: 'is_directory' },
      { cause: error },
    )
  }
  await rename(temp, target)
}

/** Opens `name` under `parent` as a directory, making it when missing. */
async function openOrCreateDirectory(
  parent: FileHandle,
  name: string,
  shownPath: string,
): Promise<FileHandle> {
  const existing = await openExistingDirectory(parent, name, shownPath)
  if (existing !== undefined) return existing
  try {
    await mkdir(childPath(parent, name), { mode: directoryMode })
    // The new entry must survive a crash as surely as the file about to be renamed into it.
    await parent.sync()
  } catch (error) {
    // Something appeared under the name since: the open below decides whether it is usable.
    if (errnoCode(error) !== 'EEXIST') throw error
  }
  const created = await openExistingDirectory(parent, name, shownPath)
  if (created === undefined) {
    // Removed again by a concurrent delete; the caller retries.
    throw Object.assign(new Error('directory vanished while being created'), { code: 'ENOENT' })
  }
  return created
}

async function openExistingDirectory(
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
      throw new AppError(
        'invalid_path',
        'a parent of the path is a file',
        { path: shownPath, reason: 'parent_not_directory' },
        { cause: error },
      )
    }
    throw error
  }
}

/** Opens a path, undefined when it is missing, a link, or under something not a directory. */
async function openIfPresent(path: Buffer, flags: number): Promise<FileHandle | undefined> {
  try {
    return await open(path, flags)
  } catch (error) {
    const code = errnoCode(error)
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return undefined
    throw error
  }
}

/** The file an open regular file holds, or undefined when it is not a stored file. */
async function readStoredFile(
  handle: FileHandle,
  stats: Stats,
  filePath: string,
): Promise<StoredFile | undefined> {
  if (stats.size < headerBytes) return undefined
  const bytes = Buffer.alloc(headerBytes)
  const { bytesRead } = await handle.read(bytes, 0, headerBytes, 0)
  const header = decodeHeader(bytes.subarray(0, bytesRead), stats.size - headerBytes)
  return header === undefined ? undefined : { path: filePath, ...header }
}

async function readWalkedFile(entry: WalkedFile): Promise<StoredFile | undefined> {
  const handle = await entry.open()
  if (handle === undefined) return undefined
  try {
    return await readStoredFile(handle, await handle.stat(), entry.path)
  } finally {
    await handle.close()
  }
}

/**
 * The regular files under a directory at any depth, whose paths start with `prefix`, in byte
 * order of their paths: a directory sorts as its name and a `/`, so a depth-first walk gives
 * the order of a sorted list of whole paths (`a-b` before `a/c`), as S3 lists keys. Links,
 * special files and names no path could have are passed over; directories that cannot hold a
 * match are not entered. Holds one descriptor per level.
 */
async function* walkFiles(
  directory: FileHandle,
  directoryPath: string,
  prefix: string,
): AsyncGenerator<WalkedFile, void, undefined> {
  const children: { name: Buffer; path: string; stats: Stats; sortKey: Buffer }[] = []
  for await (const entry of readDirectoryEntries(directory)) {
    const name = decodeEntryName(entry.name)
    if (name === undefined) continue
    const path = directoryPath + name
    const stats = await lstat(childPath(directory, entry.name)).catch(absentAs(undefined))
    if (stats === undefined) continue
    if (stats.isDirectory()) {
      const key = `${path}/`
      if (key.startsWith(prefix) || prefix.startsWith(key)) {
        children.push({ name: entry.name, path, stats, sortKey: Buffer.from(key) })
      }
    } else if (stats.isFile() && path.startsWith(prefix)) {
      children.push({ name: entry.name, path, stats, sortKey: Buffer.from(path) })
    }
  }
  children.sort((a, b) => Buffer.compare(a.sortKey, b.sortKey))

  for (const { name, path, stats } of children) {
    if (stats.isFile()) {
      yield { path, stats, open: () => openSameFile(childPath(directory, name), stats) }
      continue
    }
    const child = await openIfPresent(childPath(directory, name), directoryFlags)
    if (child === undefined) continue
    try {
      // Replaced between lstat and open: not the directory that was sorted in.
      if (sameFile(await child.stat(), stats)) yield* walkFiles(child, `${path}/`, prefix)
    } finally {
      await child.close()
    }
  }
}

async function openSameFile(path: Buffer, expected: Stats): Promise<FileHandle | undefined> {
  const handle = await openIfPresent(path, readFileFlags)
  if (handle === undefined) return undefined
  try {
    const stats = await handle.stat()
    if (stats.isFile() && sameFile(stats, expected)) return handle
  } catch (error) {
    await handle.close()
    throw error
  }
  await handle.close()
  return undefined
}

/** A rejection handler that turns ENOENT into `value` and rethrows anything else. */
function absentAs<T>(value: T): (error: unknown) => T {
  return (error) => {
    if (errnoCode(error) === 'ENOENT') return value
    throw error
  }
}

/** An `AppError` for what the disk said, when it is about the disk; anything else as is. */
function storageError(error: unknown): unknown {
  const converted = fromSandboxError(error)
  if (converted instanceof AppError) return converted
  const code = errnoCode(converted)
  if (code !== undefined && unavailableCodes.has(code)) {
    return new AppError(
      'backend_unavailable',
      'file storage is unavailable',
      { code },
      { cause: error },
    )
  }
  return converted
}

/**
 * A directory entry's name as text, or undefined when it is not one a stored path could have:
 * invalid UTF-8, a control character, too long, or a name the path rules refuse.
 */
function decodeEntryName(name: Uint8Array): string | undefined {
  const text = decodeSafeName(name)
  if (text === undefined) return undefined
  try {
    return validateRelativePath(text) === text ? text : undefined
  } catch {
    return undefined
  }
}
