import { createHash, randomUUID } from 'node:crypto'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { Readable } from 'node:stream'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { detectMediaType, mediaTypeSniffBytes, validateRelativePath } from '@hutch/sandbox'
import { AppError } from '../app-error.ts'
import type { Namespace } from '../namespace.ts'
import {
  bodyChunks,
  listConfig,
  namespaceIds,
  putConfig,
  storagePath,
  type PutConfig,
} from './storage-inputs.ts'
import type {
  DownloadUrl,
  ListOptions,
  ListResult,
  PutOptions,
  Storage,
  StorageBody,
  StorageCheckResult,
  StorageUsage,
  StoredFile,
} from './storage.ts'

/** When the S3 client adds checksums to requests and checks those of responses. */
export type S3ChecksumMode = 'when_supported' | 'when_required'

/** How {@link S3Storage} reaches its bucket. */
export interface S3StorageOptions {
  bucket: string
  region: string
  /** Another S3-compatible server (`http://127.0.0.1:7480`); AWS by default. */
  endpoint?: string
  /** `endpoint/bucket/key` instead of `bucket.endpoint/key`. */
  forcePathStyle?: boolean
  /** Static keys; the AWS SDK's default credential chain without them. */
  credentials?: { accessKeyId: string; secretAccessKey: string }
  /** `when_required` for S3-compatible servers that reject the SDK's default checksums. */
  checksumMode?: S3ChecksumMode
  /** Prepended to every key (`hutch/`): lets several deployments share a bucket. */
  keyPrefix?: string
  /** Size of the parts of a multipart upload and the most of a body held in memory; >= 5 MiB. */
  partSizeBytes?: number
  /** Time to connect before a request fails (fail fast when the store is down). */
  connectTimeoutMs?: number
  /** Time a request may go without an answer before it fails. */
  requestTimeoutMs?: number
  /** How long a URL of {@link S3Storage.downloadUrl} works; at most 7 days. */
  presignExpiresMs?: number
}

const mebibyte = 1024 * 1024
/** S3's smallest part, except the last. */
const minPartSizeBytes = 5 * mebibyte
const defaultPartSizeBytes = 8 * mebibyte
/** S3's longest key, in bytes of UTF-8. */
const maxKeyBytes = 1024
/** HEAD requests in flight while listing: `list` needs each file's metadata. */
const listConcurrency = 16
const listPageKeys = 1000
/** S3 requests of one storage in flight at once; more wait their turn. */
const maxRequestsInFlight = 64
/** SigV4 presigned URLs work for at most 7 days. */
const maxPresignSeconds = 7 * 24 * 3600
// Outside every namespace: namespace ids never start with a dot.
const stagingDirectory = '.staging/'
const sha256Metadata = 'sha256'
const modifiedAtMetadata = 'modified-at'
// A body below this is collected as chunks; past it, copied into one buffer that grows to a part.
const collectChunksBytes = 256 * 1024

/**
 * {@link Storage} in an S3 bucket: `{keyPrefix}{userId}/{chatId}/{path}` holds each file, its
 * media type as the object's content type, its SHA-256 and time in the object's metadata.
 *
 * A body smaller than a part is one PUT, atomic as S3 makes every PUT. A larger one streams, a
 * part at a time, as a multipart upload to a staging key outside every namespace, then is copied
 * to its key with its metadata (a server-side copy: S3 allows 5 GiB) and the staging object
 * removed: the key holds the old object or the new one, whole. At most one part of a body is in
 * memory at a time. A failed or refused upload is aborted; a crash can leave a staging object or
 * an unfinished upload behind, which a bucket lifecycle rule on `.staging/` and on incomplete
 * multipart uploads should expire.
 *
 * S3 has no directories, so "a file and a directory never share a name" is checked before a put
 * (a HEAD of each parent, a one-key listing under the path): two concurrent puts of `a` and `a/b`
 * can both pass it. Listing needs a HEAD per file for its metadata.
 */
export class S3Storage implements Storage {
  readonly bucket: string
  readonly keyPrefix: string
  readonly #client: S3Client
  readonly #partSizeBytes: number
  readonly #presignExpiresSeconds: number
  readonly #requestSlots = new Slots(maxRequestsInFlight)

  constructor(options: S3StorageOptions) {
    const {
      bucket,
      region,
      endpoint,
      forcePathStyle = endpoint !== undefined,
      credentials,
      checksumMode = 'when_supported',
      keyPrefix = '',
      partSizeBytes = defaultPartSizeBytes,
      connectTimeoutMs = 3_000,
      requestTimeoutMs = 30_000,
      presignExpiresMs = 15 * 60_000,
    } = options
    if (!Number.isSafeInteger(partSizeBytes) || partSizeBytes < minPartSizeBytes) {
      throw new Error(`partSizeBytes must be an integer of at least ${minPartSizeBytes}`)
    }
    if (keyPrefix !== '' && !keyPrefix.endsWith('/')) {
      throw new Error('keyPrefix must be empty or end with a slash')
    }
    this.bucket = bucket
    this.keyPrefix = keyPrefix
    this.#partSizeBytes = partSizeBytes
    this.#presignExpiresSeconds = Math.max(
      1,
      Math.min(maxPresignSeconds, Math.floor(presignExpiresMs / 1000)),
    )
    const checksums = checksumMode === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED'
    this.#client = new S3Client({
      region,
      ...(endpoint === undefined ? {} : { endpoint }),
      forcePathStyle,
      ...(credentials === undefined ? {} : { credentials }),
      requestChecksumCalculation: checksums,
      responseChecksumValidation: checksums,
      // A store that is down answers within seconds, not after the SDK's patient defaults.
      maxAttempts: 2,
      requestHandler: {
        // Room past the requests in flight for bodies still being read.
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 4 * maxRequestsInFlight }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 4 * maxRequestsInFlight }),
        connectionTimeout: connectTimeoutMs,
        requestTimeout: requestTimeoutMs,
        // Without it a request past its timeout is only logged, and waits on for ever.
        throwOnRequestTimeout: true,
      },
    })
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
    const key = this.#objectKey(ids, filePath)
    // Checked while the body streams in; awaited before anything becomes visible.
    const treeChecked = this.#checkTree(ids, filePath)
    treeChecked.catch(() => undefined)
    const upload = new BodyReader(body, config, this.#partSizeBytes)
    const first = await upload.nextPart()
    await treeChecked
    if (upload.done) {
      const file = upload.storedFile(filePath)
      await this.#send(() =>
        this.#client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: key,
            Body: first,
            ContentLength: first.byteLength,
            ContentType: file.mediaType,
            Metadata: fileMetadata(file),
          }),
        ),
      )
      return file
    }
    return await this.#putMultipart(key, filePath, first, upload)
  }

  async get(
    namespace: Namespace,
    path: string,
  ): Promise<{ file: StoredFile; body: Readable } | undefined> {
    const filePath = storagePath(path)
    const key = this.#objectKey(namespaceIds(namespace), filePath)
    const response = await this.#send(() =>
      this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })),
    ).catch(absentAsUndefined)
    if (response === undefined) return undefined
    const body = response.Body instanceof Readable ? response.Body : undefined
    const file = storedFileOf(filePath, response)
    if (file === undefined || body === undefined) {
      ;(body ?? (response.Body as { destroy?: () => void } | undefined))?.destroy?.()
      return undefined
    }
    return { file, body }
  }

  async stat(namespace: Namespace, path: string): Promise<StoredFile | undefined> {
    const filePath = storagePath(path)
    return await this.#head(this.#objectKey(namespaceIds(namespace), filePath), filePath)
  }

  async list(namespace: Namespace, options: ListOptions = {}): Promise<ListResult> {
    const ids = namespaceIds(namespace)
    const { prefix, limit } = listConfig(options)
    const namespacePrefix = this.#namespacePrefix(ids)
    const files: StoredFile[] = []
    let continuationToken: string | undefined
    // One file past the limit is looked for, so `truncated` never counts a damaged file.
    while (files.length <= limit) {
      const page = await this.#send(() =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: namespacePrefix + prefix,
            MaxKeys: Math.min(listPageKeys, limit + 1 - files.length),
            ...(continuationToken === undefined ? {} : { ContinuationToken: continuationToken }),
          }),
        ),
      )
      const paths = (page.Contents ?? [])
        .map((object) => relativePath(object.Key, namespacePrefix))
        .filter((found): found is string => found !== undefined)
      const found = await mapConcurrently(paths, listConcurrency, (filePath) =>
        this.#head(namespacePrefix + filePath, filePath),
      )
      for (const file of found) if (file !== undefined && files.length <= limit) files.push(file)
      continuationToken = page.IsTruncated === true ? page.NextContinuationToken : undefined
      if (continuationToken === undefined) break
    }
    return { files: files.slice(0, limit), truncated: files.length > limit }
  }

  async delete(namespace: Namespace, path: string): Promise<boolean> {
    const filePath = storagePath(path)
    const key = this.#objectKey(namespaceIds(namespace), filePath)
    // S3 answers a delete the same whether or not the key was there.
    if ((await this.#head(key, filePath)) === undefined) return false
    await this.#send(() =>
      this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })),
    )
    return true
  }

  async usage(namespace: Namespace): Promise<StorageUsage> {
    const namespacePrefix = this.#namespacePrefix(namespaceIds(namespace))
    const usage = { files: 0, bytes: 0 }
    let continuationToken: string | undefined
    do {
      const page = await this.#send(() =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: namespacePrefix,
            ...(continuationToken === undefined ? {} : { ContinuationToken: continuationToken }),
          }),
        ),
      )
      for (const object of page.Contents ?? []) {
        usage.files += 1
        usage.bytes += object.Size ?? 0
      }
      continuationToken = page.IsTruncated === true ? page.NextContinuationToken : undefined
    } while (continuationToken !== undefined)
    return usage
  }

  /** Ready when the bucket answers a HEAD. */
  async check(): Promise<StorageCheckResult> {
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket }))
      return { ok: true }
    } catch (error) {
      // /ready is public: the reason names the failure, not the endpoint.
      return { ok: false, reason: `S3 bucket ${this.bucket}: ${unavailabilityOf(error)}` }
    }
  }

  /**
   * A presigned URL that downloads the file, as an attachment, without hutch in the way, until
   * it expires; undefined when there is no such file.
   */
  async downloadUrl(namespace: Namespace, path: string): Promise<DownloadUrl | undefined> {
    const filePath = storagePath(path)
    const key = this.#objectKey(namespaceIds(namespace), filePath)
    const file = await this.#head(key, filePath)
    if (file === undefined) return undefined
    const expiresIn = this.#presignExpiresSeconds
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ResponseContentDisposition: attachmentDisposition(filePath),
      ResponseContentType: file.mediaType,
    })
    const url = await getSignedUrl(this.#client, command, { expiresIn })
    return { file, url, expiresAt: new Date(Date.now() + expiresIn * 1000).toISOString() }
  }

  /** Closes the client's connections. */
  close(): void {
    this.#client.destroy()
  }

  async #putMultipart(
    key: string,
    filePath: string,
    first: Buffer,
    upload: BodyReader,
  ): Promise<StoredFile> {
    const stagingKey = `${this.keyPrefix}${stagingDirectory}${randomUUID()}`
    const created = await this.#send(() =>
      this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: stagingKey })),
    )
    const uploadId = created.UploadId
    if (uploadId === undefined) {
      throw new AppError('backend_unavailable', 'S3 started no multipart upload')
    }
    let staged = false
    try {
      const parts: CompletedPart[] = []
      for (let part = first; ; part = await upload.nextPart()) {
        // A body that ends exactly at a part's end leaves an empty last part: nothing to send.
        if (part.byteLength === 0 && parts.length > 0) break
        const partNumber = parts.length + 1
        const body = part
        const sent = await this.#send(() =>
          this.#client.send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key: stagingKey,
              UploadId: uploadId,
              PartNumber: partNumber,
              Body: body,
              ContentLength: body.byteLength,
            }),
          ),
        )
        parts.push({ PartNumber: partNumber, ETag: sent.ETag })
        if (upload.done) break
      }
      await this.#send(() =>
        this.#client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: stagingKey,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
          }),
        ),
      )
      staged = true
      const file = upload.storedFile(filePath)
      await this.#send(() =>
        this.#client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key: key,
            CopySource: `${this.bucket}/${stagingKey.split('/').map(encodeURIComponent).join('/')}`,
            MetadataDirective: 'REPLACE',
            ContentType: file.mediaType,
            Metadata: fileMetadata(file),
          }),
        ),
      )
      return file
    } finally {
      if (!staged) {
        await this.#client
          .send(
            new AbortMultipartUploadCommand({
              Bucket: this.bucket,
              Key: stagingKey,
              UploadId: uploadId,
            }),
          )
          .catch(() => undefined)
      } else {
        await this.#client
          .send(new DeleteObjectCommand({ Bucket: this.bucket, Key: stagingKey }))
          .catch(() => undefined)
      }
    }
  }

  /** A file and a directory never share a name: no parent of the path is a file, nor it a directory. */
  async #checkTree(ids: readonly string[], filePath: string): Promise<void> {
    const components = filePath.split('/')
    const parents = components
      .slice(0, -1)
      .map((_, index) => components.slice(0, index + 1).join('/'))
    const [underneath, ...parentFiles] = await Promise.all([
      this.#send(() =>
        this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: `${this.#objectKey(ids, filePath)}/`,
            MaxKeys: 1,
          }),
        ),
      ),
      ...parents.map((parent) =>
        this.#send(() =>
          this.#client.send(
            new HeadObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(ids, parent) }),
          ),
        ).then(
          () => parent,
          (error: unknown) => absentAsUndefined(error),
        ),
      ),
    ])
    const parentFile = parentFiles.find((parent) => parent !== undefined)
    if (parentFile !== undefined) {
      throw new AppError('invalid_path', 'a parent of the path is a file', {
        path: parentFile,
        reason: 'parent_not_directory',
      })
    }
    if ((underneath.KeyCount ?? underneath.Contents?.length ?? 0) > 0) {
      throw new AppError('invalid_path', 'a directory already has this name', {
        path: filePath,
        reason: 'is_directory',
      })
    }
  }

  async #head(key: string, filePath: string): Promise<StoredFile | undefined> {
    const response = await this.#send(() =>
      this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })),
    ).catch(absentAsUndefined)
    return response === undefined ? undefined : storedFileOf(filePath, response)
  }

  #namespacePrefix(ids: readonly string[]): string {
    return `${this.keyPrefix}${ids.join('/')}/`
  }

  /**
   * The key of a validated path in a namespace of validated ids, checked once more as a whole: a
   * key that would leave its namespace is refused however it came to be built.
   */
  #objectKey(ids: readonly string[], filePath: string): string {
    const namespacePrefix = this.#namespacePrefix(ids)
    const key = namespacePrefix + filePath
    if (relativePath(key, namespacePrefix) !== filePath) {
      throw new AppError('invalid_path', 'the path leaves its namespace', {
        reason: 'outside_namespace',
      })
    }
    if (Buffer.byteLength(key) > maxKeyBytes) {
      throw new AppError('invalid_path', `the path is too long for S3 storage`, {
        reason: 'too_long',
      })
    }
    return key
  }

  /** Sends a command; an answer of the store rather than of the request is `backend_unavailable`. */
  async #send<Output>(request: () => Promise<Output>): Promise<Output> {
    // The SDK's connect timeout runs while a request waits for a socket: a burst past the
    // agent's sockets would fail as "unavailable" with the store healthy. Waiting here does not.
    await this.#requestSlots.acquire()
    try {
      return await request()
    } catch (error) {
      if (isAbsent(error)) throw error
      // The message reaches tenants: what failed, never where (the cause goes to the log).
      throw new AppError(
        'backend_unavailable',
        `file storage is unavailable: ${unavailabilityOf(error)}`,
        {},
        { cause: error },
      )
    } finally {
      this.#requestSlots.release()
    }
  }
}

/** A counting semaphore: at most `size` holders at once, the others wait in order. */
class Slots {
  readonly #size: number
  readonly #waiting: (() => void)[] = []
  #held = 0

  constructor(size: number) {
    this.#size = size
  }

  async acquire(): Promise<void> {
    if (this.#held < this.#size) {
      this.#held += 1
      return
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve))
  }

  release(): void {
    const next = this.#waiting.shift()
    if (next === undefined) this.#held -= 1
    else next()
  }
}

/**
 * Reads a body a part at a time, hashing and counting it and keeping its first bytes for the
 * media type. Past `maxBytes` it throws `payload_too_large`.
 */
class BodyReader {
  readonly #chunks: AsyncIterator<Uint8Array>
  readonly #config: PutConfig
  readonly #partSizeBytes: number
  readonly #hash = createHash('sha256')
  readonly #head: Buffer[] = []
  #headBytes = 0
  #sizeBytes = 0
  #part: Buffer | undefined
  /** What the last part left over past its size, for the next. */
  #carry: Uint8Array | undefined
  done = false

  constructor(body: StorageBody, config: PutConfig, partSizeBytes: number) {
    this.#chunks = bodyChunks(body)[Symbol.asyncIterator]()
    this.#config = config
    this.#partSizeBytes = partSizeBytes
  }

  /**
   * The next part: a full part, or the rest of the body when it ends first (then `done`). The
   * returned buffer is reused for the part after it: send it before asking for another.
   */
  async nextPart(): Promise<Buffer> {
    const small: Uint8Array[] = []
    let length = 0
    const take = (chunk: Uint8Array): void => {
      if (this.#part === undefined && length + chunk.byteLength <= collectChunksBytes) {
        small.push(chunk)
      } else {
        const needed = length + chunk.byteLength
        if (this.#part === undefined || this.#part.byteLength < needed) {
          // Grown by doubling: a file of a few hundred KiB does not take a whole part's memory.
          const doubled = 2 * (this.#part?.byteLength ?? collectChunksBytes)
          const grown = Buffer.allocUnsafe(Math.min(this.#partSizeBytes, Math.max(needed, doubled)))
          if (this.#part === undefined) {
            let offset = 0
            for (const earlier of small.splice(0)) {
              grown.set(earlier, offset)
              offset += earlier.byteLength
            }
          } else {
            this.#part.copy(grown, 0, 0, length)
          }
          this.#part = grown
        }
        this.#part.set(chunk, length)
      }
      length += chunk.byteLength
    }
    if (this.#carry !== undefined) {
      take(this.#carry)
      this.#carry = undefined
    }
    while (length < this.#partSizeBytes) {
      const next = await this.#chunks.next()
      if (next.done === true) {
        this.done = true
        break
      }
      const chunk = this.#account(next.value)
      const room = this.#partSizeBytes - length
      if (chunk.byteLength > room) {
        // Copied: a caller may reuse the chunk's memory once it is handed over.
        this.#carry = Buffer.from(chunk.subarray(room))
        take(chunk.subarray(0, room))
      } else {
        take(chunk)
      }
    }
    if (this.#part === undefined) return Buffer.concat(small, length)
    return this.#part.subarray(0, length)
  }

  storedFile(filePath: string): StoredFile {
    return {
      path: filePath,
      size: this.#sizeBytes,
      mediaType: this.#config.mediaType ?? detectMediaType(filePath, Buffer.concat(this.#head)),
      sha256: this.#hash.digest('hex'),
      modifiedAt: new Date().toISOString(),
    }
  }

  #account(chunk: Uint8Array): Uint8Array {
    if (this.#sizeBytes + chunk.byteLength > this.#config.maxBytes) {
      throw new AppError(
        'payload_too_large',
        `file is larger than ${this.#config.maxBytes} bytes`,
        {
          maxBytes: this.#config.maxBytes,
        },
      )
    }
    this.#sizeBytes += chunk.byteLength
    this.#hash.update(chunk)
    if (this.#headBytes < mediaTypeSniffBytes) {
      const part = Buffer.from(chunk.subarray(0, mediaTypeSniffBytes - this.#headBytes))
      this.#head.push(part)
      this.#headBytes += part.byteLength
    }
    return chunk
  }
}

function fileMetadata(file: StoredFile): Record<string, string> {
  return { [sha256Metadata]: file.sha256, [modifiedAtMetadata]: file.modifiedAt }
}

/** The file an object's HEAD or GET describes, or undefined when hutch did not store it. */
function storedFileOf(
  filePath: string,
  response: {
    ContentLength?: number | undefined
    ContentType?: string | undefined
    Metadata?: Record<string, string> | undefined
  },
): StoredFile | undefined {
  const sha256 = response.Metadata?.[sha256Metadata]
  const modifiedAt = response.Metadata?.[modifiedAtMetadata]
  const { ContentLength: size, ContentType: mediaType } = response
  if (sha256 === undefined || !/^[0-9a-f]{64}$/.test(sha256)) return undefined
  if (modifiedAt === undefined || Number.isNaN(Date.parse(modifiedAt))) return undefined
  if (size === undefined || mediaType === undefined) return undefined
  return { path: filePath, size, mediaType, sha256, modifiedAt }
}

/** The path of a key under a namespace prefix, or undefined when it is not a stored path. */
function relativePath(key: string | undefined, namespacePrefix: string): string | undefined {
  if (key === undefined || !key.startsWith(namespacePrefix)) return undefined
  const path = key.slice(namespacePrefix.length)
  try {
    return validateRelativePath(path) === path ? path : undefined
  } catch {
    return undefined
  }
}

function attachmentDisposition(filePath: string): string {
  const name = filePath.split('/').pop() ?? 'file'
  const asciiName = name.replace(/[^\x20-\x7e]|["\\]/g, '_')
  return `attachment; filename="${asciiName}"; filename*=UTF-8''${encodeURIComponent(name)}`
}

function isAbsent(error: unknown): boolean {
  return (
    error instanceof S3ServiceException &&
    (error.name === 'NotFound' ||
      error.name === 'NoSuchKey' ||
      error.$metadata.httpStatusCode === 404) &&
    error.name !== 'NoSuchBucket'
  )
}

function absentAsUndefined(error: unknown): undefined {
  if (isAbsent(error)) return undefined
  throw error
}

// Node's socket and DNS errors, by what they mean.
const networkFailures: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
}

/** What went wrong, without addresses: the S3 error's name and status, or the network failure. */
function unavailabilityOf(error: unknown): string {
  if (error instanceof S3ServiceException) {
    return `${error.name} (HTTP ${error.$metadata.httpStatusCode ?? '?'})`
  }
  if (error instanceof Error) {
    if (error.name === 'TimeoutError') return 'timed out'
    const code = (error as NodeJS.ErrnoException).code
    return (code === undefined ? undefined : networkFailures[code]) ?? 'unreachable'
  }
  return 'unreachable'
}

/** `map` with at most `concurrency` calls in flight, results in input order. */
async function mapConcurrently<T, R>(
  items: readonly T[],
  concurrency: number,
  map: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next
      next += 1
      results[index] = await map(items[index] as T)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
  return results
}
