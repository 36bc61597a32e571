import fs, { type Stats } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import {
  childPath,
  directoryFlags,
  errnoCode,
  openRootDirectorySync,
  readDirectoryEntriesSync,
  readFileFlags,
  sameFile,
} from './descriptors.ts'
import { decodeSafeName, displayName, maxPathBytes } from './paths.ts'

/**
 * Why an entry of a workdir was not copied out.
 *
 * - `symlink`: a symbolic link; never followed.
 * - `hardlink`: a regular file with more than one link, which may be a host file's other name.
 * - `not_regular`: a FIFO, socket or device node.
 * - `unreadable`: permissions deny reading it.
 * - `too_large`: larger than `maxFileBytes` (apparent size, so sparse files count in full).
 * - `too_many`: past `maxFiles`; or, for the one entry that reached `maxEntries`, where the walk
 *   stopped.
 * - `too_deep`: a directory at `maxDepth`, whose contents were not examined.
 * - `total_bytes`: would take the output past `maxTotalBytes`.
 * - `bad_name`: a name with invalid UTF-8 or control characters, or a path too long to recreate;
 *   its path is shown with `\xNN` escapes.
 */
export type SkipReason =
  | 'symlink'
  | 'hardlink'
  | 'not_regular'
  | 'unreadable'
  | 'too_large'
  | 'too_many'
  | 'too_deep'
  | 'total_bytes'
  | 'bad_name'

/** A regular file with a single link, found by {@link walkTree}. */
export interface WalkedFile {
  readonly kind: 'file'
  /** Workdir-relative path; always passes `validateRelativePath`. */
  readonly path: string
  /** lstat of the entry. */
  readonly stats: Stats
  /**
   * Opens the file for reading, checking it is still the same single-link regular file. Valid
   * only until the walk is resumed; the caller closes the handle.
   */
  open(): Promise<FileHandle | SkipReason>
  /**
   * Reads the whole file at once, synchronously, with the same checks as `open`: for small files
   * (at most `stats.size` bytes are read). Valid only until the walk is resumed.
   */
  readWhole(): Buffer | SkipReason
}

/** An entry {@link walkTree} passed over, and why. */
export interface WalkedSkip {
  readonly kind: 'skipped'
  readonly path: string
  readonly reason: SkipReason
}

interface EntryBudget {
  entriesLeft: number
  exhausted: boolean
  /** Steps taken since the walk last let the event loop run. */
  sinceYield: number
}

/**
 * Steps a walk takes between two turns of the event loop, a step being an entry listed or an
 * entry examined. Its directory work (listing, lstat, opening directories) is synchronous: on the
 * tmpfs or local disk of a workdir each call takes microseconds, where one through libuv's thread
 * pool costs the event loop ~0.1 ms; this bounds how long a huge tree holds the loop at a time.
 */
const stepsPerTurn = 256

/**
 * Walks a workdir depth first, in byte order of names, without ever following a link: yields every
 * single-link regular file and every entry passed over. Stops for good once `maxEntries` entries
 * have been examined.
 */
export async function* walkTree(
  rootDir: string,
  caps: { readonly maxDepth: number; readonly maxEntries: number },
): AsyncGenerator<WalkedFile | WalkedSkip, void, undefined> {
  const root = openRootDirectorySync(rootDir)
  try {
    const budget = { entriesLeft: caps.maxEntries, exhausted: false, sinceYield: 0 }
    yield* walkDirectory(root, '', 1, caps.maxDepth, budget)
  } finally {
    fs.closeSync(root)
  }
}

/** Lets the event loop run once every `stepsPerTurn` steps. */
async function pace(budget: EntryBudget): Promise<void> {
  if (++budget.sinceYield < stepsPerTurn) return
  budget.sinceYield = 0
  await new Promise((resolve) => setImmediate(resolve))
}

async function* walkDirectory(
  directory: number,
  prefix: string,
  depth: number,
  maxDepth: number,
  budget: EntryBudget,
): AsyncGenerator<WalkedFile | WalkedSkip, void, undefined> {
  const names: Buffer[] = []
  if (!budget.exhausted) {
    for (const entry of readDirectoryEntriesSync(directory)) {
      if (budget.entriesLeft === 0) {
        budget.exhausted = true
        yield skipped(prefix + (decodeSafeName(entry.name) ?? displayName(entry.name)), 'too_many')
        break
      }
      budget.entriesLeft -= 1
      names.push(entry.name)
      await pace(budget)
    }
  }
  names.sort((a, b) => Buffer.compare(a, b))

  for (const name of names) {
    await pace(budget)
    const safeName = decodeSafeName(name)
    const path = prefix + (safeName ?? displayName(name))
    if (safeName === undefined || Buffer.byteLength(path) > maxPathBytes) {
      yield skipped(path, 'bad_name')
      continue
    }
    let stats: Stats
    try {
      stats = fs.lstatSync(childPath(directory, name))
    } catch (error) {
      yield skipped(path, failureReason(error))
      continue
    }
    if (stats.isSymbolicLink()) {
      yield skipped(path, 'symlink')
    } else if (stats.isFile()) {
      yield stats.nlink === 1
        ? {
            kind: 'file',
            path,
            stats,
            open: () => openFile(directory, name, stats),
            readWhole: () => readWholeFile(directory, name, stats),
          }
        : skipped(path, 'hardlink')
    } else if (stats.isDirectory()) {
      if (depth >= maxDepth) {
        yield skipped(path, 'too_deep')
        continue
      }
      const child = openEntrySync(directory, name, directoryFlags)
      if (typeof child === 'string') {
        yield skipped(path, child)
        continue
      }
      try {
        if (sameFile(fs.fstatSync(child), stats)) {
          yield* walkDirectory(child, `${path}/`, depth + 1, maxDepth, budget)
        } else {
          yield skipped(path, 'not_regular')
        }
      } finally {
        fs.closeSync(child)
      }
    } else {
      yield skipped(path, 'not_regular')
    }
  }
}

/** Why an opened entry is not the single-link regular file `expected` described, if it is not. */
function fileMismatch(stats: Stats, expected: Stats): SkipReason | undefined {
  if (!sameFile(stats, expected) || !stats.isFile()) return 'not_regular'
  if (stats.nlink !== 1) return 'hardlink'
  return undefined
}

async function openFile(
  directory: number,
  name: Buffer,
  expected: Stats,
): Promise<FileHandle | SkipReason> {
  let handle: FileHandle
  try {
    handle = await open(childPath(directory, name), readFileFlags)
  } catch (error) {
    return failureReason(error)
  }
  let reason: SkipReason | undefined
  try {
    reason = fileMismatch(await handle.stat(), expected)
  } catch (error) {
    await handle.close()
    throw error
  }
  if (reason === undefined) return handle
  await handle.close()
  return reason
}

function readWholeFile(directory: number, name: Buffer, expected: Stats): Buffer | SkipReason {
  const fd = openEntrySync(directory, name, readFileFlags)
  if (typeof fd === 'string') return fd
  try {
    const stats = fs.fstatSync(fd)
    const reason = fileMismatch(stats, expected)
    if (reason !== undefined) return reason
    const content = Buffer.allocUnsafe(stats.size)
    let length = 0
    while (length < content.length) {
      const read = fs.readSync(fd, content, length, content.length - length, length)
      if (read === 0) break
      length += read
    }
    return content.subarray(0, length)
  } finally {
    fs.closeSync(fd)
  }
}

function openEntrySync(directory: number, name: Buffer, flags: number): number | SkipReason {
  try {
    return fs.openSync(childPath(directory, name), flags)
  } catch (error) {
    return failureReason(error)
  }
}

/** Maps an error opening or statting an entry to a skip reason, rethrowing the unexpected. */
function failureReason(error: unknown): SkipReason {
  switch (errnoCode(error)) {
    // O_NOFOLLOW gives ELOOP on a link, O_DIRECTORY|O_NOFOLLOW gives ENOTDIR.
    case 'ELOOP':
    case 'ENOTDIR':
      return 'symlink'
    case 'EACCES':
    case 'EPERM':
    case 'ENOENT':
      return 'unreadable'
    default:
      throw error
  }
}

function skipped(path: string, reason: SkipReason): WalkedSkip {
  return { kind: 'skipped', path, reason }
}
