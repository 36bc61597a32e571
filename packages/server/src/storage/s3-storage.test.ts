import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import {
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { freshS3Bucket, s3Client, type FreshS3Bucket } from '../../../../test/support/ceph.ts'
import { AppError } from '../app-error.ts'
import { namespaceOf } from '../namespace.ts'
import { S3Storage, type S3StorageOptions } from './s3-storage.ts'

// What the contract suite (storage.test.ts) cannot see: the bucket itself.

const alice = namespaceOf('alice', 'chat-1')
const mebibyte = 1024 * 1024

async function* patternChunks(count: number, chunkBytes: number, fail = false) {
  for (let index = 0; index < count; index += 1) {
    yield Buffer.alloc(chunkBytes, index % 251)
    await Promise.resolve()
  }
  if (fail) throw new Error('client went away')
}

describe('S3Storage on a Ceph RADOS Gateway', () => {
  let fresh: FreshS3Bucket
  let client: S3Client
  let storage: S3Storage

  const storageFor = (options: Partial<S3StorageOptions> = {}) =>
    new S3Storage({
      bucket: fresh.bucket,
      region: fresh.server.region,
      endpoint: fresh.server.endpoint,
      credentials: {
        accessKeyId: fresh.server.accessKeyId,
        secretAccessKey: fresh.server.secretAccessKey,
      },
      checksumMode: 'when_required',
      keyPrefix: 'deploy/',
      partSizeBytes: 5 * mebibyte,
      ...options,
    })

  async function keys(prefix = ''): Promise<string[]> {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: fresh.bucket, Prefix: prefix }),
    )
    return (page.Contents ?? []).map((object) => object.Key ?? '')
  }

  async function unfinishedUploads(): Promise<number> {
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: fresh.bucket }))
    return uploads.Uploads?.length ?? 0
  }

  beforeEach(async () => {
    fresh = await freshS3Bucket()
    client = s3Client(fresh.server)
    storage = storageFor()
  })

  afterEach(async () => {
    storage.close()
    client.destroy()
    await fresh.remove()
  })

  it('keeps each file at {prefix}{userId}/{chatId}/{path}, its metadata on the object', async () => {
    await storage.put(alice, 'data/in.csv', 'a,b\n1,2\n')
    await storage.put(alice, 'big.bin', Readable.from(patternChunks(12, mebibyte)))
    expect((await keys()).toSorted()).toEqual([
      'deploy/alice/chat-1/big.bin',
      'deploy/alice/chat-1/data/in.csv',
    ])
    const big = await storage.stat(alice, 'big.bin')
    const expected = createHash('sha256')
    for await (const chunk of patternChunks(12, mebibyte)) expected.update(chunk)
    expect(big).toMatchObject({ size: 12 * mebibyte, sha256: expected.digest('hex') })
  })

  it('leaves no staging object or unfinished upload after a large put that fails or is refused', async () => {
    await expect(
      storage.put(alice, 'broken.bin', Readable.from(patternChunks(12, mebibyte, true))),
    ).rejects.toThrow('client went away')
    const refused = await storage
      .put(alice, 'huge.bin', Readable.from(patternChunks(12, mebibyte)), {
        maxBytes: 11 * mebibyte,
      })
      .catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(AppError)
    expect((refused as AppError).code).toBe('payload_too_large')
    await storage.put(alice, 'fine.bin', Readable.from(patternChunks(11, mebibyte)))
    expect(await keys()).toEqual(['deploy/alice/chat-1/fine.bin'])
    expect(await unfinishedUploads()).toBe(0)
  })

  it('stores every size around the chunk and part boundaries exactly', async () => {
    const kibibyte = 1024
    const sizes = [
      256 * kibibyte,
      256 * kibibyte + 1,
      3 * mebibyte + 7,
      5 * mebibyte - 1,
      5 * mebibyte,
      5 * mebibyte + 1,
      10 * mebibyte,
    ]
    for (const size of sizes) {
      const bytes = randomBytes(size)
      // Odd chunk sizes, so that chunks straddle every boundary.
      const chunks = function* () {
        for (let offset = 0; offset < size; offset += 100_003) {
          yield bytes.subarray(offset, offset + 100_003)
        }
      }
      const stored = await storage.put(alice, `sizes/${size}`, Readable.from(chunks()))
      const sha256 = createHash('sha256').update(bytes).digest('hex')
      expect(stored, String(size)).toMatchObject({ size, sha256 })
      const found = await storage.get(alice, `sizes/${size}`)
      const read: Buffer[] = []
      for await (const chunk of found!.body) read.push(chunk as Buffer)
      expect(Buffer.concat(read).equals(bytes), String(size)).toBe(true)
    }
    expect(await unfinishedUploads()).toBe(0)
    expect((await keys('deploy/.staging/')).length).toBe(0)
  })

  it('round-trips small and multipart files with the SDK default checksums too', async () => {
    const defaults = storageFor({ checksumMode: 'when_supported' })
    try {
      await defaults.put(alice, 'small.txt', 'small')
      const big = await defaults.put(alice, 'big.bin', Readable.from(patternChunks(11, mebibyte)))
      expect(big.size).toBe(11 * mebibyte)
      const found = await defaults.get(alice, 'small.txt')
      const chunks: Buffer[] = []
      for await (const chunk of found!.body) chunks.push(chunk as Buffer)
      expect(Buffer.concat(chunks).toString()).toBe('small')
    } finally {
      defaults.close()
    }
  })

  it('keeps names that URLs and signatures treat specially exactly as given', async () => {
    const names = ['a+b c', '100%25', 'q?x=1&y=2', 'h#frag', 'semi;colon', "it's", 'tab~tilde*']
    for (const name of names) await storage.put(alice, `odd/${name}`, name)
    const listed = (await storage.list(alice, { prefix: 'odd/' })).files.map((file) => file.path)
    expect(listed.toSorted()).toEqual(names.map((name) => `odd/${name}`).toSorted())
    for (const name of names) {
      const found = await storage.get(alice, `odd/${name}`)
      const chunks: Buffer[] = []
      for await (const chunk of found!.body) chunks.push(chunk as Buffer)
      expect(Buffer.concat(chunks).toString(), name).toBe(name)
      expect(await storage.delete(alice, `odd/${name}`)).toBe(true)
    }
    expect(await keys()).toEqual([])
  })

  it('passes over objects hutch did not store, and keys that are not paths', async () => {
    for (const key of [
      'deploy/alice/chat-1/foreign.txt',
      'deploy/alice/chat-1/a//b',
      'deploy/alice/chat-1/../escape',
    ]) {
      await client.send(new PutObjectCommand({ Bucket: fresh.bucket, Key: key, Body: 'x' }))
    }
    await storage.put(alice, 'mine.txt', 'mine')
    expect((await storage.list(alice)).files.map((file) => file.path)).toEqual(['mine.txt'])
    expect(await storage.get(alice, 'foreign.txt')).toBeUndefined()
  })

  it('presigns an expiring download URL that serves the file as an attachment', async () => {
    await storage.put(alice, 'plots/chart.png', Buffer.from('\x89PNG\r\n\x1a\nrest', 'latin1'))
    const presigned = await storage.downloadUrl(alice, 'plots/chart.png')
    expect(presigned?.file).toMatchObject({ path: 'plots/chart.png', mediaType: 'image/png' })
    const response = await fetch(presigned!.url)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-disposition')).toMatch(/^attachment; filename="chart.png"/)
    expect(
      Buffer.from(await response.arrayBuffer())
        .subarray(0, 4)
        .toString('latin1'),
    ).toBe('\x89PNG')
    expect(Date.parse(presigned!.expiresAt)).toBeGreaterThan(Date.now())
    // The signature covers the key: another file cannot be fetched with it.
    const forged = presigned!.url.replace('chart.png', 'other.png')
    expect((await fetch(forged)).status).toBe(403)
    expect(await storage.downloadUrl(alice, 'missing.png')).toBeUndefined()

    const shortLived = storageFor({ presignExpiresMs: 1000 })
    try {
      const expiring = await shortLived.downloadUrl(alice, 'plots/chart.png')
      await new Promise((resolve) => setTimeout(resolve, 2500))
      expect((await fetch(expiring!.url)).status).toBe(403)
    } finally {
      shortLived.close()
    }
  })

  it('is unavailable, fast and with a reason, while the gateway is down, and resumes after', async () => {
    await storage.put(alice, 'kept.txt', 'kept')
    await fresh.server.stopGateway()
    try {
      const startedAt = Date.now()
      const error = await storage.stat(alice, 'kept.txt').catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(AppError)
      expect((error as AppError).code).toBe('backend_unavailable')
      expect(Date.now() - startedAt).toBeLessThan(20_000)
      const check = await storage.check()
      expect(check.ok).toBe(false)
      expect(check.ok ? '' : check.reason).toMatch(/connection refused/)
      // Tenants and the public /ready learn what failed, never where.
      expect((error as AppError).message).toBe('file storage is unavailable: connection refused')
      expect(JSON.stringify({ error, check })).not.toContain('127.0.0.1')
    } finally {
      await fresh.server.startGateway()
    }
    expect(await storage.check()).toEqual({ ok: true })
    expect((await storage.stat(alice, 'kept.txt'))?.size).toBe(4)
  })
})
