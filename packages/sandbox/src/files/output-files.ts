import { createHash } from 'node:crypto'
import type { FileHandle } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { SandboxError } from '../sandbox-error.ts'
import { digestFile, fileContent, type FileDigest } from './file-content.ts'
import { detectMediaType, mediaTypeSniffBytes } from './media-type.ts'
import { walkTree, type SkipReason } from './tree-walk.ts'
import { writeFileInto } from './write-files.ts'

/** Bounds on a walk of a workdir its tenant filled: how deep, how many, how much is read. */
export interface SnapshotCaps {
  /**
   * Largest file hashed or copied, in bytes of apparent size: a sparse file counts in full and is
   * refused before a byte of it is read.
   */
  readonly maxFileBytes: number
  /** Most bytes hashed or copied over the whole walk. */
  readonly maxTotalBytes: number
  /**
   * Deepest path, in components: `a.txt` has depth 1, `a/b/c.txt` depth 3. From 1 to
   * {@link maxWalkDepth}; the walk holds one open descriptor per level.
   */
  readonly maxDepth: number
  /** Most directory entries examined, of any kind, so a million empty files cannot stall a walk. */
  readonly maxEntries: number
}

/** Bounds on the files copied out of a workdir after a run. */
export interface OutputCaps extends SnapshotCaps {
  /** Most files copied out. */
  readonly maxFiles: number
}

/** The largest `maxDepth` a walk accepts. */
export const maxWalkDepth = 256

/** What a snapshot remembers of one regular file. */
export interface TreeSnapshotEntry {
  /** Apparent size in bytes. */
  readonly size: number
  /** Modification time in milliseconds since the epoch. The tenant can set it: never trusted alone. */
  readonly mtimeMs: number
  /**
   * Hex SHA-256 of the content, or null when the file was over `maxFileBytes` or past the
   * `maxTotalBytes` hashing budget and so was not read.
   */
  readonly sha256: string | null
}

/**
 * The single-link regular files of a workdir by workdir-relative path. A `Map`, not an object, so
 * a file named `__proto__` is just a file.
 */
export type TreeSnapshot = ReadonlyMap<string, TreeSnapshotEntry>

/** A file a run created or changed, as copied out. */
export interface CollectedFile {
  /** Workdir-relative POSIX path; always passes `validateRelativePath`. */
  readonly path: string
  /** Size in bytes. */
  readonly size: number
  /** From `detectMediaType`. */
  readonly mediaType: string
  /** Hex SHA-256 of the content. */
  readonly sha256: string
}

/** An entry that was not copied out. */
export interface SkippedEntry {
  /** Workdir-relative path; for `bad_name`, escaped for display only. */
  readonly path: string
  readonly reason: SkipReason
}

/** What {@link collectOutputFiles} copied out and what it left. */
export interface CollectOutputResult {
  /** Sorted by path. */
  readonly files: CollectedFile[]
  /** Sorted by path; at most one per entry examined, so bounded by `maxEntries`. */
  readonly skipped: SkippedEntry[]
  /**
   * True when a cap left something out (`too_large`, `too_many`, `too_deep` or `total_bytes` in
   * `skipped`). Links, special files and bad names are policy, not truncation.
   */
  readonly truncated: boolean
}

/** An output file on its way to a {@link OutputSink}. */
export interface CollectedFileContent extends CollectedFile {
  /** Exactly `size` bytes of the file. Readable only until the sink's promise settles. */
  readonly content: Readable
}

/**
 * Receives each output file in turn (to upload it to storage, say) and settles once it is stored.
 * A rejection stops the collection and is rethrown by {@link collectOutputFiles}.
 */
export type OutputSink = (file: CollectedFileContent) => Promise<void>

/** Where {@link collectOutputFiles} delivers file contents; with neither, it only lists them. */
export interface CollectOutputOptions {
  /**
   * A trusted host directory (the CLI's `--out DIR`) in which each output file is recreated by
   * `writeFileInto`, never through a link; an existing file of the same path is replaced.
   */
  readonly destDir?: string
  /** Receives each output file's content, after `destDir` when both are given. */
  readonly sink?: OutputSink
}

/**
 * Files up to this size are read whole, synchronously (one open, read and close of a workdir's
 * tmpfs or local disk, microseconds), rather than streamed through the thread pool.
 */
const wholeReadBytes = 64 * 1024

function sha256Of(content: Uint8Array): string {
  return createHash('sha256').update(content).digest('hex')
}

const capReasons: ReadonlySet<SkipReason> = new Set([
  'too_large',
  'too_many',
  'too_deep',
  'total_bytes',
])

/**
 * Records every single-link regular file of a workdir before a run, so that
 * {@link collectOutputFiles} can tell which files the run created or changed. Walks the same way,
 * never following a link, and hashes at most `maxFileBytes` per file and `maxTotalBytes` in all;
 * files beyond are recorded without a hash.
 *
 * @throws SandboxError `invalid_limit` for bad caps, `file_not_found` when `rootDir` is missing.
 */
export async function snapshotTree(rootDir: string, caps: SnapshotCaps): Promise<TreeSnapshot> {
  validateCaps(caps)
  const snapshot = new Map<string, TreeSnapshotEntry>()
  let hashedBytes = 0
  for await (const entry of walkTree(rootDir, caps)) {
    if (entry.kind !== 'file') continue
    const { size, mtimeMs } = entry.stats
    if (size > caps.maxFileBytes || hashedBytes + size > caps.maxTotalBytes) {
      snapshot.set(entry.path, { size, mtimeMs, sha256: null })
      continue
    }
    if (size <= wholeReadBytes) {
      const content = entry.readWhole()
      if (typeof content === 'string') continue
      hashedBytes += content.length
      snapshot.set(entry.path, { size: content.length, mtimeMs, sha256: sha256Of(content) })
      continue
    }
    const handle = await entry.open()
    if (typeof handle === 'string') continue
    try {
      const digest = await digestFile(handle, size, 0)
      hashedBytes += digest.sizeBytes
      snapshot.set(entry.path, { size: digest.sizeBytes, mtimeMs, sha256: digest.sha256 })
    } finally {
      await handle.close()
    }
  }
  return snapshot
}

/**
 * Copies the files a run created or changed out of its workdir, once every sandbox process is
 * dead. Walks the tree one component at a time relative to open descriptors, never following a
 * link; reads only regular files with a single link, opened non-blocking so a FIFO cannot stall
 * it; reports everything else in `skipped`.
 *
 * A file counts as changed when its SHA-256 differs from `before`; a different size decides it
 * without hashing. A file `before` holds without a hash (it was too large to hash) counts as
 * unchanged while its size and mtime are.
 *
 * Caps apply in walk order (depth first, names in byte order): new or changed files past
 * `maxFiles`, over `maxFileBytes` (apparent size: a sparse file is refused unread) or past
 * `maxTotalBytes` are skipped, directories at `maxDepth` are not entered, and the walk stops for
 * good after `maxEntries` entries.
 *
 * @throws SandboxError `invalid_limit` for bad caps, `file_not_found` when `rootDir` is missing,
 *   what `writeFileInto` throws for `destDir`, and whatever `sink` rejects with.
 */
export async function collectOutputFiles(
  rootDir: string,
  before: TreeSnapshot,
  caps: OutputCaps,
  options: CollectOutputOptions = {},
): Promise<CollectOutputResult> {
  validateCaps(caps)
  const files: CollectedFile[] = []
  const skipped: SkippedEntry[] = []
  let totalBytes = 0
  for await (const entry of walkTree(rootDir, caps)) {
    if (entry.kind === 'skipped') {
      skipped.push({ path: entry.path, reason: entry.reason })
      continue
    }
    const { path, stats } = entry
    const previous = before.get(path)
    const sameSize = previous !== undefined && previous.size === stats.size
    // A file of unchanged size is compared by hash; when `before` has no usable hash, by mtime.
    const compareByHash = sameSize && previous.sha256 !== null && stats.size <= caps.maxFileBytes
    if (sameSize && !compareByHash && previous.mtimeMs === stats.mtimeMs) continue

    let reason: SkipReason | undefined
    if (stats.size > caps.maxFileBytes) reason = 'too_large'
    else if (files.length >= caps.maxFiles) reason = 'too_many'
    else if (totalBytes + stats.size > caps.maxTotalBytes) reason = 'total_bytes'
    // An unchanged file is left out silently, so its hash is checked before a cap is reported.
    if (reason !== undefined && !compareByHash) {
      skipped.push({ path, reason })
      continue
    }

    if (stats.size <= wholeReadBytes) {
      const content = entry.readWhole()
      if (typeof content === 'string') {
        skipped.push({ path, reason: content })
        continue
      }
      const digest: FileDigest = {
        sha256: sha256Of(content),
        sizeBytes: content.length,
        head: content.subarray(0, mediaTypeSniffBytes),
      }
      if (compareByHash && digest.sha256 === previous.sha256) continue
      if (reason !== undefined) {
        skipped.push({ path, reason })
        continue
      }
      const file = collectedFile(path, digest)
      await deliver(content, file, options)
      files.push(file)
      totalBytes += file.size
      continue
    }
    const handle = await entry.open()
    if (typeof handle === 'string') {
      skipped.push({ path, reason: handle })
      continue
    }
    try {
      const digest = await digestFile(handle, stats.size, mediaTypeSniffBytes)
      if (compareByHash && digest.sha256 === previous.sha256) continue
      if (reason !== undefined) {
        skipped.push({ path, reason })
        continue
      }
      const file = collectedFile(path, digest)
      await deliver({ handle, size: file.size }, file, options)
      files.push(file)
      totalBytes += file.size
    } finally {
      await handle.close()
    }
  }
  files.sort(byPath)
  skipped.sort(byPath)
  return { files, skipped, truncated: skipped.some((entry) => capReasons.has(entry.reason)) }
}

function collectedFile(path: string, digest: FileDigest): CollectedFile {
  return {
    path,
    size: digest.sizeBytes,
    mediaType: detectMediaType(path, digest.head),
    sha256: digest.sha256,
  }
}

/** A file's content as a fresh stream for each use: an open file's, or bytes read whole. */
type ContentSource = Buffer | { readonly handle: FileHandle; readonly size: number }

/** Copies a file to `destDir` and hands it to `sink`, as asked; each reads it from its start. */
async function deliver(
  source: ContentSource,
  file: CollectedFile,
  { destDir, sink }: CollectOutputOptions,
): Promise<void> {
  if (destDir !== undefined) {
    const written = await withContent(source, (content) =>
      writeFileInto(destDir, file.path, content, { overwrite: true }),
    )
    if (written.sha256 !== file.sha256) {
      throw new SandboxError('internal', 'output file changed while being copied', {
        path: file.path,
      })
    }
  }
  if (sink !== undefined) await withContent(source, (content) => sink({ ...file, content }))
}

/**
 * Streams the content from its start; an open file never past `size` bytes, the size that
 * passed the caps.
 */
async function withContent<T>(
  source: ContentSource,
  use: (content: Readable) => Promise<T>,
): Promise<T> {
  const content = Buffer.isBuffer(source)
    ? Readable.from([source], { objectMode: false })
    : fileContent(source.handle, source.size)
  try {
    return await use(content)
  } finally {
    content.destroy()
  }
}

function validateCaps(caps: SnapshotCaps | OutputCaps): void {
  const named: Record<string, number> = {
    maxFileBytes: caps.maxFileBytes,
    maxTotalBytes: caps.maxTotalBytes,
    maxDepth: caps.maxDepth,
    maxEntries: caps.maxEntries,
    ...('maxFiles' in caps ? { maxFiles: caps.maxFiles } : {}),
  }
  for (const [name, value] of Object.entries(named)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new SandboxError('invalid_limit', `${name} must be a non-negative integer`, {
        [name]: value,
      })
    }
  }
  if (caps.maxDepth < 1 || caps.maxDepth > maxWalkDepth) {
    throw new SandboxError('invalid_limit', `maxDepth must be between 1 and ${maxWalkDepth}`, {
      maxDepth: caps.maxDepth,
    })
  }
}

function byPath(a: { path: string }, b: { path: string }): number {
  return Buffer.compare(Buffer.from(a.path), Buffer.from(b.path))
}
