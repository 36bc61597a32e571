import type { Readable } from 'node:stream'
import type { Namespace } from '../namespace.ts'

/** What storage knows of one file. */
export interface StoredFile {
  /** Namespace-relative POSIX path, normalised by `validateRelativePath` (`'data/in.csv'`). */
  path: string
  /** Content length in bytes. */
  size: number
  /** The media type given to `put`, or detected from content and extension. */
  mediaType: string
  /** Hex SHA-256 of the content. */
  sha256: string
  /** When the current content was stored, ISO 8601 in UTC. */
  modifiedAt: string
}

/** The content of a stored file: anything a Node `Readable` or an HTTP request body is. */
export type StorageBody = AsyncIterable<Uint8Array> | Uint8Array | string

/** How {@link Storage.put} stores a file. */
export interface PutOptions {
  /** Largest content accepted, in bytes; unlimited by default. */
  maxBytes?: number
  /**
   * Media type to record, printable ASCII of at most {@link maxMediaTypeLength} characters;
   * detected from the first bytes and the extension by default.
   */
  mediaType?: string
}

/** Which files {@link Storage.list} returns. */
export interface ListOptions {
  /**
   * A plain string prefix of the stored paths, as S3 has it: `'data'` matches `data.csv` and
   * `data/x.csv`, `'data/'` only the second. `''` (the default) matches every file.
   */
  prefix?: string
  /** Most files returned, a non-negative integer; {@link defaultListLimit} by default. */
  limit?: number
}

/** A page of {@link Storage.list}. */
export interface ListResult {
  /** In byte order of their UTF-8 paths (the order S3 lists keys in). */
  files: StoredFile[]
  /** Whether more files matched than `limit` allowed. */
  truncated: boolean
}

/** What a namespace holds, for quotas. */
export interface StorageUsage {
  /** Number of stored files. */
  files: number
  /** Their total content length in bytes. */
  bytes: number
}

/** Whether the backing store answers; `reason` is for the operator, never for a tenant. */
export type StorageCheckResult = { ok: true } | { ok: false; reason: string }

/** A presigned download, from {@link Storage.downloadUrl}. */
export interface DownloadUrl {
  readonly file: StoredFile
  /** Downloads the file as an attachment, without hutch in the way, until it expires. */
  readonly url: string
  /** When the URL stops working, ISO 8601 in UTC. */
  readonly expiresAt: string
}

/** Files {@link Storage.list} returns when no `limit` is given. */
export const defaultListLimit = 1000

/** Longest media type {@link Storage.put} records, in characters. */
export const maxMediaTypeLength = 255

/**
 * The files of each namespace, stored under the key `{userId}/{chatId}/{path}`.
 *
 * Paths go through `validateRelativePath` (`'./a//b'` is stored as `'a/b'`); a bad one is an
 * `AppError` `invalid_path`. Like a sandbox workdir, into which a namespace's files are copied,
 * the files of a namespace form a tree: a file and a directory never share a name, so storing
 * `a/b` while `a` is a file, or `a` while a file `a/...` exists, is `invalid_path` too.
 *
 * Backend failures (a full disk, an unreachable bucket) are `backend_unavailable`.
 */
export interface Storage {
  /**
   * Streams a body in, never holding the whole of it in memory. Replaces an existing file
   * atomically: a reader sees the old content or the new, never a mix, and a reader that got the
   * file before keeps reading the old content to its end. Past `maxBytes` it fails with
   * `payload_too_large` and leaves nothing behind (an existing file stays as it was); so does a
   * body that fails, whose error is rethrown. A Node `Readable` is a valid body.
   */
  put(
    namespace: Namespace,
    path: string,
    body: StorageBody,
    options?: PutOptions,
  ): Promise<StoredFile>
  /**
   * The file and a stream of its content, or undefined when absent. The stream holds the content
   * as it was when `get` returned; read it to its end or destroy it.
   */
  get(namespace: Namespace, path: string): Promise<{ file: StoredFile; body: Readable } | undefined>
  /** The file, or undefined when absent. */
  stat(namespace: Namespace, path: string): Promise<StoredFile | undefined>
  /**
   * Files under a prefix, at any depth, in byte order of their paths, at most `limit` of them.
   * @throws AppError `invalid_request` for a bad `limit`.
   */
  list(namespace: Namespace, options?: ListOptions): Promise<ListResult>
  /** Deletes a file; whether there was one. Directories left empty disappear with it. */
  delete(namespace: Namespace, path: string): Promise<boolean>
  /** Total content bytes and number of files in a namespace (for quotas). */
  usage(namespace: Namespace): Promise<StorageUsage>
  /** Whether the backing store answers (for `/ready`). Never throws. */
  check(): Promise<StorageCheckResult>
  /**
   * A URL that downloads the file straight from the backing store until it expires; undefined
   * when there is no such file. Only stores that can sign such URLs (S3) have it.
   */
  downloadUrl?(namespace: Namespace, path: string): Promise<DownloadUrl | undefined>
}
