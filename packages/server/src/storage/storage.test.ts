import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AppError } from '../app-error.ts'
import { namespaceOf, type Namespace } from '../namespace.ts'
import { freshS3Bucket } from '../../../../test/support/ceph.ts'
import { LocalStorage } from './local-storage.ts'
import { S3Storage } from './s3-storage.ts'
import type { Storage, StoredFile } from './storage.ts'

const mebibyte = 1024 * 1024

/** A storage under test and how to dispose of it. */
interface StorageFixture {
  readonly storage: Storage
  dispose(): Promise<void>
}

// The contract every Storage keeps. Nothing here may depend on one implementation: S3 runs it
// against a real S3 server, a Ceph RADOS Gateway the tests start.
const storages: { name: string; create: () => Promise<StorageFixture> }[] = [
  {
    name: 'LocalStorage',
    create: async () => {
      const rootDir = await mkdtemp(join(tmpdir(), 'hutch-storage-'))
      return {
        storage: new LocalStorage(rootDir),
        dispose: () => rm(rootDir, { recursive: true, force: true }),
      }
    },
  },
  {
    name: 'S3Storage (Ceph RADOS Gateway)',
    create: async () => {
      const fresh = await freshS3Bucket()
      const { bucket, server } = fresh
      const storage = new S3Storage({
        bucket,
        region: server.region,
        endpoint: server.endpoint,
        credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
        checksumMode: 'when_required',
        keyPrefix: 'hutch/',
        // The smallest S3 allows, so that the 20 MB test streams four parts.
        partSizeBytes: 5 * mebibyte,
      })
      return {
        storage,
        async dispose() {
          storage.close()
          await fresh.remove()
        },
      }
    },
  },
]

const alice = namespaceOf('alice', 'chat-1')
const aliceOtherChat = namespaceOf('alice', 'chat-2')
const bob = namespaceOf('bob', 'chat-1')

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(Buffer.from(chunk))
  return Buffer.concat(chunks)
}

function sha256Of(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

async function appErrorOf(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (rejection: unknown) => rejection,
  )
  if (!(error instanceof AppError)) throw new Error(`expected an AppError, got ${String(error)}`)
  return error
}

/** `count` chunks of `chunkBytes` bytes each, chunk i filled with the byte i % 251. */
async function* patternChunks(count: number, chunkBytes: number): AsyncGenerator<Uint8Array> {
  for (let index = 0; index < count; index += 1) {
    yield Buffer.alloc(chunkBytes, index % 251)
    await Promise.resolve()
  }
}

/** A body that yields `good` and then fails as an aborted upload does. */
async function* failingBody(good: Uint8Array): AsyncGenerator<Uint8Array> {
  yield good
  await Promise.resolve()
  throw new Error('client went away')
}

function paths(files: readonly StoredFile[]): string[] {
  return files.map((file) => file.path)
}

describe.each(storages)('Storage contract: $name', ({ create }) => {
  let fixture: StorageFixture
  let storage: Storage

  beforeEach(async () => {
    fixture = await create()
    storage = fixture.storage
  })

  afterEach(async () => {
    await fixture.dispose()
  })

  describe('put, get, stat', () => {
    it('round-trips binary bytes exactly, with their size, hash, media type and time', async () => {
      const bytes = Buffer.concat([
        Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
        randomBytes(70_000),
      ])
      const before = Date.now()
      const stored = await storage.put(alice, 'bin/data.bin', bytes)
      expect(stored).toMatchObject({
        path: 'bin/data.bin',
        size: bytes.byteLength,
        sha256: sha256Of(bytes),
        mediaType: 'application/octet-stream',
      })
      const modifiedAtMs = Date.parse(stored.modifiedAt)
      expect(new Date(modifiedAtMs).toISOString()).toBe(stored.modifiedAt)
      expect(modifiedAtMs).toBeGreaterThanOrEqual(before - 1000)
      expect(modifiedAtMs).toBeLessThanOrEqual(Date.now() + 1000)

      expect(await storage.stat(alice, 'bin/data.bin')).toEqual(stored)
      const found = await storage.get(alice, 'bin/data.bin')
      expect(found?.file).toEqual(stored)
      expect((await readAll(found!.body)).equals(bytes)).toBe(true)
    })

    it('accepts a string, bytes, a Node Readable, an async generator and string chunks', async () => {
      const bodies = {
        'string.txt': 'héllo',
        'bytes.txt': Buffer.from('héllo'),
        'readable.txt': Readable.from([Buffer.from('hé'), Buffer.from('llo')]),
        'generator.txt': (async function* () {
          yield new TextEncoder().encode('hé')
          await Promise.resolve()
          yield new TextEncoder().encode('llo')
        })(),
        'encoded.txt': Readable.from([Buffer.from('héllo')]).setEncoding('utf8'),
      }
      for (const [path, body] of Object.entries(bodies)) {
        const stored = await storage.put(alice, path, body)
        expect(stored.size, path).toBe(6)
        const found = await storage.get(alice, path)
        expect((await readAll(found!.body)).toString(), path).toBe('héllo')
      }
    })

    it('stores an empty file', async () => {
      const stored = await storage.put(alice, 'empty', '')
      expect(stored).toMatchObject({ size: 0, sha256: sha256Of(Buffer.alloc(0)) })
      const found = await storage.get(alice, 'empty')
      expect((await readAll(found!.body)).byteLength).toBe(0)
    })

    it('detects the media type from content and extension unless one is given', async () => {
      const png = Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), randomBytes(100)])
      expect((await storage.put(alice, 'plot', png)).mediaType).toBe('image/png')
      expect((await storage.put(alice, 'table.csv', 'a,b\n1,2\n')).mediaType).toBe('text/csv')
      expect((await storage.put(alice, 'notes', 'plain words')).mediaType).toBe('text/plain')
      const given = await storage.put(alice, 'x.csv', 'a,b', {
        mediaType: 'text/csv; charset=utf-8',
      })
      expect(given.mediaType).toBe('text/csv; charset=utf-8')
      expect((await storage.stat(alice, 'x.csv'))?.mediaType).toBe('text/csv; charset=utf-8')
      const bad = await appErrorOf(storage.put(alice, 'y', 'a', { mediaType: 'text/\nplain' }))
      expect(bad.code).toBe('invalid_request')
    })

    it('answers undefined for a file that is not there', async () => {
      expect(await storage.get(alice, 'missing.txt')).toBeUndefined()
      expect(await storage.stat(alice, 'missing/deeper.txt')).toBeUndefined()
    })

    it('normalises paths and returns the normalised one', async () => {
      const stored = await storage.put(alice, './a//b/./c.txt', 'x')
      expect(stored.path).toBe('a/b/c.txt')
      expect((await storage.stat(alice, 'a/b/c.txt'))?.path).toBe('a/b/c.txt')
      expect(paths((await storage.list(alice)).files)).toEqual(['a/b/c.txt'])
    })

    it('treats names like internal directories as ordinary paths', async () => {
      for (const path of ['.meta/x', '.tmp/x', 'tmp/x', 'data/x', 'meta.json', '.hidden']) {
        await storage.put(alice, path, path)
      }
      const listed = await storage.list(alice)
      expect(paths(listed.files)).toEqual([
        '.hidden',
        '.meta/x',
        '.tmp/x',
        'data/x',
        'meta.json',
        'tmp/x',
      ])
      const found = await storage.get(alice, '.meta/x')
      expect((await readAll(found!.body)).toString()).toBe('.meta/x')
    })

    it('streams a 20 MB file in and out without holding it in memory', async () => {
      const chunkBytes = 64 * 1024
      const chunkCount = (20 * mebibyte) / chunkBytes
      const expectedHash = createHash('sha256')
      for (let index = 0; index < chunkCount; index += 1) {
        expectedHash.update(Buffer.alloc(chunkBytes, index % 251))
      }
      const expectedSha256 = expectedHash.digest('hex')

      // Collected every few chunks, so that garbage does not count as memory held.
      const collectGarbage = garbageCollector()
      collectGarbage()
      const baselineRss = process.memoryUsage.rss()
      let peakRss = baselineRss
      const sample = setInterval(() => {
        collectGarbage()
        peakRss = Math.max(peakRss, process.memoryUsage.rss())
      }, 10)
      try {
        const stored = await storage.put(
          alice,
          'big.bin',
          Readable.from(patternChunks(chunkCount, chunkBytes)),
        )
        expect(stored).toMatchObject({ size: 20 * mebibyte, sha256: expectedSha256 })

        const found = await storage.get(alice, 'big.bin')
        const readHash = createHash('sha256')
        let readBytes = 0
        for await (const chunk of found!.body as AsyncIterable<Buffer>) {
          readHash.update(chunk)
          readBytes += chunk.byteLength
        }
        expect(readBytes).toBe(20 * mebibyte)
        expect(readHash.digest('hex')).toBe(expectedSha256)
      } finally {
        clearInterval(sample)
      }
      // Generous: a buffered implementation grows by the whole 20 MB at least.
      expect(peakRss - baselineRss).toBeLessThan(12 * mebibyte)
    })
  })

  describe('overwrite', () => {
    it('replaces a file, and a reader that got the old one reads it whole', async () => {
      const oldBytes = randomBytes(3 * mebibyte)
      const newBytes = randomBytes(mebibyte)
      await storage.put(alice, 'f.bin', oldBytes)
      const reader = await storage.get(alice, 'f.bin')
      const replaced = await storage.put(alice, 'f.bin', newBytes)
      expect(replaced).toMatchObject({ size: newBytes.byteLength, sha256: sha256Of(newBytes) })

      expect(reader?.file.sha256).toBe(sha256Of(oldBytes))
      expect((await readAll(reader!.body)).equals(oldBytes)).toBe(true)
      const current = await storage.get(alice, 'f.bin')
      expect(current?.file).toEqual(replaced)
      expect((await readAll(current!.body)).equals(newBytes)).toBe(true)
    })

    it('readers during many overwrites see one complete version each', async () => {
      const versions = Array.from({ length: 6 }, () => randomBytes(256 * 1024))
      const hashes = new Set(versions.map(sha256Of))
      await storage.put(alice, 'hot.bin', versions[0]!)
      const reads: Promise<void>[] = []
      for (const version of versions) {
        reads.push(
          (async () => {
            const found = await storage.get(alice, 'hot.bin')
            const bytes = await readAll(found!.body)
            expect(hashes.has(sha256Of(bytes))).toBe(true)
            expect(sha256Of(bytes)).toBe(found!.file.sha256)
          })(),
        )
        await storage.put(alice, 'hot.bin', version)
      }
      await Promise.all(reads)
    })

    it('concurrent puts of one path end with one complete version', async () => {
      const versions = Array.from({ length: 8 }, () => randomBytes(512 * 1024))
      const results = await Promise.all(
        versions.map((version) =>
          storage.put(alice, 'race/same.bin', Readable.from(chunked(version))),
        ),
      )
      expect(results.map((result) => result.sha256)).toEqual(versions.map(sha256Of))
      const found = await storage.get(alice, 'race/same.bin')
      const bytes = await readAll(found!.body)
      expect(versions.some((version) => version.equals(bytes))).toBe(true)
      expect(found?.file.sha256).toBe(sha256Of(bytes))
      expect(await storage.usage(alice)).toEqual({ files: 1, bytes: 512 * 1024 })
    })
  })

  describe('refused writes leave nothing behind', () => {
    it('refuses a body past maxBytes with payload_too_large', async () => {
      const error = await appErrorOf(
        storage.put(alice, 'big.txt', Readable.from(patternChunks(10, 1000)), { maxBytes: 9999 }),
      )
      expect(error.code).toBe('payload_too_large')
      expect(await storage.stat(alice, 'big.txt')).toBeUndefined()
      expect(await storage.list(alice)).toEqual({ files: [], truncated: false })
      expect(await storage.usage(alice)).toEqual({ files: 0, bytes: 0 })
    })

    it('accepts a body of exactly maxBytes, and maxBytes 0 for an empty one', async () => {
      expect((await storage.put(alice, 'exact', 'abc', { maxBytes: 3 })).size).toBe(3)
      expect((await storage.put(alice, 'none', '', { maxBytes: 0 })).size).toBe(0)
      const error = await appErrorOf(storage.put(alice, 'one', 'a', { maxBytes: 0 }))
      expect(error.code).toBe('payload_too_large')
    })

    it('keeps the old file when a replacement is too large', async () => {
      await storage.put(alice, 'keep.txt', 'old content')
      const error = await appErrorOf(
        storage.put(alice, 'keep.txt', 'new and longer content', { maxBytes: 12 }),
      )
      expect(error.code).toBe('payload_too_large')
      const found = await storage.get(alice, 'keep.txt')
      expect((await readAll(found!.body)).toString()).toBe('old content')
    })

    it('keeps the old file when the body fails half-way, and rethrows its error', async () => {
      await storage.put(alice, 'keep.bin', 'old content')
      await expect(
        storage.put(alice, 'keep.bin', failingBody(randomBytes(100_000))),
      ).rejects.toThrow('client went away')
      await expect(storage.put(alice, 'new.bin', failingBody(randomBytes(100)))).rejects.toThrow(
        'client went away',
      )
      const found = await storage.get(alice, 'keep.bin')
      expect((await readAll(found!.body)).toString()).toBe('old content')
      expect(await storage.stat(alice, 'new.bin')).toBeUndefined()
      expect(paths((await storage.list(alice)).files)).toEqual(['keep.bin'])
    })

    it('refuses a bad maxBytes with invalid_limit', async () => {
      for (const maxBytes of [-1, 1.5, Number.NaN]) {
        expect((await appErrorOf(storage.put(alice, 'x', 'a', { maxBytes }))).code).toBe(
          'invalid_limit',
        )
      }
    })
  })

  describe('namespaces', () => {
    it('never show one namespace the files of another', async () => {
      await storage.put(alice, 'same.txt', 'alice 1')
      await storage.put(aliceOtherChat, 'same.txt', 'alice 2')
      await storage.put(bob, 'same.txt', 'bob 1')
      await storage.put(bob, 'only-bob.txt', 'bob only')

      for (const [namespace, content] of [
        [alice, 'alice 1'],
        [aliceOtherChat, 'alice 2'],
        [bob, 'bob 1'],
      ] as const) {
        const found = await storage.get(namespace, 'same.txt')
        expect((await readAll(found!.body)).toString()).toBe(content)
      }
      expect(await storage.stat(alice, 'only-bob.txt')).toBeUndefined()
      expect(paths((await storage.list(alice)).files)).toEqual(['same.txt'])
      expect(paths((await storage.list(bob)).files)).toEqual(['only-bob.txt', 'same.txt'])
      expect(await storage.usage(aliceOtherChat)).toEqual({ files: 1, bytes: 7 })

      expect(await storage.delete(alice, 'same.txt')).toBe(true)
      expect(await storage.stat(aliceOtherChat, 'same.txt')).toBeDefined()
      expect(await storage.stat(bob, 'same.txt')).toBeDefined()
      expect(await storage.delete(alice, 'only-bob.txt')).toBe(false)
      expect(await storage.stat(bob, 'only-bob.txt')).toBeDefined()
    })

    it('refuses a namespace whose ids were never validated', async () => {
      for (const namespace of [
        { userId: '..', chatId: 'c' },
        { userId: 'u', chatId: '../bob' },
        { userId: 'u/x', chatId: 'c' },
        { userId: '', chatId: 'c' },
      ] satisfies Namespace[]) {
        expect((await appErrorOf(storage.put(namespace, 'x', 'a'))).code).toBe('invalid_request')
        expect((await appErrorOf(storage.list(namespace))).code).toBe('invalid_request')
        expect((await appErrorOf(storage.get(namespace, 'x'))).code).toBe('invalid_request')
      }
    })
  })

  describe('paths', () => {
    const attacks = [
      '../x',
      '/abs',
      '/etc/passwd',
      'a/../../b',
      'a/..',
      '..',
      'a\0b',
      '',
      '.',
      './',
      'a\nb',
    ]

    it.each(attacks)('refuses %j with invalid_path everywhere', async (path) => {
      await storage.put(alice, 'a/b', 'existing')
      for (const attempt of [
        storage.put(alice, path, 'x'),
        storage.get(alice, path),
        storage.stat(alice, path),
        storage.delete(alice, path),
      ]) {
        expect((await appErrorOf(attempt)).code).toBe('invalid_path')
      }
      expect(paths((await storage.list(alice)).files)).toEqual(['a/b'])
      expect(await storage.list(bob)).toEqual({ files: [], truncated: false })
    })

    it('stores nested paths', async () => {
      await storage.put(alice, 'a/b/c/d/e.txt', 'deep')
      await storage.put(alice, 'a/b/x.txt', 'shallow')
      expect(paths((await storage.list(alice)).files)).toEqual(['a/b/c/d/e.txt', 'a/b/x.txt'])
      const found = await storage.get(alice, 'a/b/c/d/e.txt')
      expect((await readAll(found!.body)).toString()).toBe('deep')
    })

    it('never lets a file and a directory share a name', async () => {
      await storage.put(alice, 'a/b.txt', 'x')
      expect((await appErrorOf(storage.put(alice, 'a', 'file over a directory'))).code).toBe(
        'invalid_path',
      )
      expect((await appErrorOf(storage.put(alice, 'a/b.txt/c', 'under a file'))).code).toBe(
        'invalid_path',
      )
      expect(await storage.get(alice, 'a/b.txt/c')).toBeUndefined()
      expect(await storage.stat(alice, 'a')).toBeUndefined()
      expect(await storage.delete(alice, 'a')).toBe(false)
      expect(paths((await storage.list(alice)).files)).toEqual(['a/b.txt'])

      // Once the directory's last file is gone, the name is free for a file.
      expect(await storage.delete(alice, 'a/b.txt')).toBe(true)
      expect((await storage.put(alice, 'a', 'now a file')).path).toBe('a')
    })

    it('handles long and non-ASCII names', async () => {
      const long = 'n'.repeat(255)
      const unicode = 'données/été 😀.txt'
      await storage.put(alice, long, 'long')
      await storage.put(alice, unicode, 'unicode')
      expect((await storage.stat(alice, long))?.size).toBe(4)
      expect((await storage.stat(alice, unicode))?.path).toBe(unicode)
      expect((await appErrorOf(storage.put(alice, 'n'.repeat(256), 'x'))).code).toBe('invalid_path')
    })
  })

  describe('list', () => {
    const all = ['A', 'a-b', 'a/b/d', 'a/c', 'ab', 'b', 'z/y', 'é.txt', '😀', '\uffff']

    beforeEach(async () => {
      for (const path of [...all].reverse()) await storage.put(alice, path, path)
    })

    it('lists every file at any depth in byte order of the UTF-8 paths', async () => {
      const listed = await storage.list(alice)
      const byteOrder = [...all].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      expect(listed).toMatchObject({ truncated: false })
      expect(paths(listed.files)).toEqual(byteOrder)
      expect(listed.files[0]).toEqual(await storage.stat(alice, 'A'))
    })

    it('filters by a plain string prefix', async () => {
      expect(paths((await storage.list(alice, { prefix: 'a' })).files)).toEqual([
        'a-b',
        'a/b/d',
        'a/c',
        'ab',
      ])
      expect(paths((await storage.list(alice, { prefix: 'a/' })).files)).toEqual(['a/b/d', 'a/c'])
      expect(paths((await storage.list(alice, { prefix: 'a/b' })).files)).toEqual(['a/b/d'])
      expect(paths((await storage.list(alice, { prefix: 'a/b/d' })).files)).toEqual(['a/b/d'])
      expect(paths((await storage.list(alice, { prefix: 'a/b/d/' })).files)).toEqual([])
      expect(paths((await storage.list(alice, { prefix: 'zz' })).files)).toEqual([])
      expect(paths((await storage.list(alice, { prefix: '../' })).files)).toEqual([])
      expect(paths((await storage.list(alice, { prefix: '' })).files)).toHaveLength(all.length)
    })

    it('caps the page at limit and says so', async () => {
      expect(await storage.list(alice, { limit: 2 })).toMatchObject({ truncated: true })
      expect(paths((await storage.list(alice, { limit: 2 })).files)).toEqual(['A', 'a-b'])
      expect(await storage.list(alice, { limit: all.length })).toMatchObject({ truncated: false })
      expect(await storage.list(alice, { limit: all.length - 1 })).toMatchObject({
        truncated: true,
      })
      expect(await storage.list(alice, { limit: 0 })).toEqual({ files: [], truncated: true })
      expect(await storage.list(alice, { prefix: 'a/', limit: 1 })).toMatchObject({
        truncated: true,
      })
      expect(await storage.list(alice, { prefix: 'a/', limit: 2 })).toMatchObject({
        truncated: false,
      })
      expect(await storage.list(bob, { limit: 0 })).toEqual({ files: [], truncated: false })
      for (const limit of [-1, 1.5, Number.NaN]) {
        expect((await appErrorOf(storage.list(alice, { limit }))).code).toBe('invalid_request')
      }
    })

    it('caps at 1000 files by default', async () => {
      await Promise.all(
        Array.from({ length: 1001 - all.length }, (_, index) =>
          storage.put(alice, `many/${index}`, ''),
        ),
      )
      expect((await storage.list(alice)).files).toHaveLength(1000)
      expect((await storage.list(alice)).truncated).toBe(true)
      expect((await storage.list(alice, { limit: 1001 })).truncated).toBe(false)
    })
  })

  describe('delete and usage', () => {
    it('deletes a file once', async () => {
      await storage.put(alice, 'dir/f.txt', 'x')
      expect(await storage.delete(alice, 'dir/f.txt')).toBe(true)
      expect(await storage.delete(alice, 'dir/f.txt')).toBe(false)
      expect(await storage.get(alice, 'dir/f.txt')).toBeUndefined()
      expect(await storage.list(alice)).toEqual({ files: [], truncated: false })
      expect(await storage.delete(bob, 'never.txt')).toBe(false)
    })

    it('a reader that got the file keeps reading it after a delete', async () => {
      const bytes = randomBytes(2 * mebibyte)
      await storage.put(alice, 'gone.bin', bytes)
      const reader = await storage.get(alice, 'gone.bin')
      expect(await storage.delete(alice, 'gone.bin')).toBe(true)
      expect((await readAll(reader!.body)).equals(bytes)).toBe(true)
    })

    it('counts the files and content bytes of a namespace', async () => {
      expect(await storage.usage(alice)).toEqual({ files: 0, bytes: 0 })
      await storage.put(alice, 'a.txt', 'abc')
      await storage.put(alice, 'd/e/f.bin', randomBytes(1000))
      await storage.put(alice, 'empty', '')
      await storage.put(bob, 'b.txt', 'not counted for alice')
      expect(await storage.usage(alice)).toEqual({ files: 3, bytes: 1003 })
      await storage.put(alice, 'a.txt', 'abcdef')
      expect(await storage.usage(alice)).toEqual({ files: 3, bytes: 1006 })
      await storage.delete(alice, 'd/e/f.bin')
      expect(await storage.usage(alice)).toEqual({ files: 2, bytes: 6 })
    })
  })

  it('answers a readiness check', async () => {
    expect(await storage.check()).toEqual({ ok: true })
  })
})

/** The V8 garbage collector, exposed at run time since vitest workers start without it. */
function garbageCollector(): () => void {
  setFlagsFromString('--expose-gc')
  const gc: unknown = runInNewContext('gc')
  if (typeof gc !== 'function') throw new Error('gc is not exposed')
  return gc as () => void
}

function* chunked(bytes: Buffer, chunkBytes = 16 * 1024): Generator<Buffer> {
  for (let offset = 0; offset < bytes.byteLength; offset += chunkBytes) {
    yield bytes.subarray(offset, offset + chunkBytes)
  }
}
