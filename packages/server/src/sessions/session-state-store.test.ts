import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { closeTestCeph, freshS3Bucket } from '../../../../test/support/ceph.ts'
import { closeTestSandboxes, testSandbox } from '../../../../test/support/sandbox.ts'
import { namespaceOf } from '../namespace.ts'
import { LocalStorage } from '../storage/local-storage.ts'
import { S3Storage } from '../storage/s3-storage.ts'
import type { Storage } from '../storage/storage.ts'
import { SessionStateStore } from './session-state-store.ts'

const alice = namespaceOf('alice', 'chat-1')
const bob = namespaceOf('bob', 'chat-1')

// Real kernels; both storages the server can put saved state in.
const storages: {
  name: string
  create: () => Promise<{ storage: Storage; dispose(): Promise<void> }>
}[] = [
  {
    name: 'LocalStorage',
    create: async () => {
      const rootDir = await mkdtemp(path.join(os.tmpdir(), 'hutch-session-state-'))
      return {
        storage: new LocalStorage(rootDir),
        dispose: () => rm(rootDir, { recursive: true, force: true }),
      }
    },
  },
  {
    name: 'S3Storage (Ceph RADOS Gateway), under the .session-state/ prefix',
    create: async () => {
      const fresh = await freshS3Bucket()
      const { bucket, server } = fresh
      const storage = new S3Storage({
        bucket,
        region: server.region,
        endpoint: server.endpoint,
        credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
        checksumMode: 'when_required',
        keyPrefix: '.session-state/',
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

describe.each(storages)('SessionStateStore on $name', ({ create }) => {
  afterAll(async () => {
    await closeTestSandboxes()
    await closeTestCeph()
  })

  it('saves a kernel, restores it in a new one, and removes the save', async () => {
    const fixture = await create()
    const { storage } = fixture
    const sandbox = await testSandbox()
    const store = new SessionStateStore(storage, {
      maxStateBytes: 64 * 1024 ** 2,
      maxFileBytes: 64 * 1024 ** 2,
    })
    try {
      const kernel = await sandbox.openKernel({ language: 'python' })
      let saved
      try {
        await kernel.execute(
          'import os\nos.makedirs("sub", exist_ok=True)\nopen("sub/data.txt", "w").write("on disk")\n' +
            'numbers = [1, 2, 3]\nlines = (n for n in numbers)',
        )
        saved = await store.save(alice, 'session-1', kernel)
      } finally {
        await kernel.close()
      }
      expect(saved.savedState.prefix).toMatch(/^session-1\/[0-9a-f-]+\/$/)
      expect(saved.savedState.stateKey).toBe(`${saved.savedState.prefix}state`)
      expect(saved.savedState.files).toEqual(['sub/data.txt'])
      expect(saved.lost.map((lost) => lost.name)).toContain('lines')
      // Within the session's namespace only.
      expect((await storage.list(bob)).files).toEqual([])

      const state = await store.state(alice, saved.savedState)
      const restored = await sandbox.openKernel({
        language: 'python',
        files: store.files(alice, saved.savedState),
        ...(state === undefined ? {} : { restoreState: state }),
      })
      try {
        const result = await restored.execute('print(sum(numbers), open("sub/data.txt").read())')
        expect(result.stdout).toBe('6 on disk\n')
      } finally {
        await restored.close()
      }

      await store.remove(alice, 'session-1/')
      expect((await storage.list(alice)).files).toEqual([])
    } finally {
      await fixture.dispose()
    }
  })
})
