import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { Sandbox } from '@hutch/sandbox'
import { closeTestSandboxes, testSandbox } from '../../../../test/support/sandbox.ts'
import type { SessionServiceBed } from '../../../../test/support/session-service.ts'
import { sessionServiceBed } from '../../../../test/support/session-service.ts'
import type { LocalStorage } from '../storage/local-storage.ts'
import { namespaceOf } from '../namespace.ts'
import type { SessionService, SessionServiceOptions } from './session-service.ts'
import { SessionRepository } from './session-repository.ts'
import { maxLostNames } from './session-state-store.ts'

const alice = namespaceOf('alice', 'chat-1')
const bob = namespaceOf('bob', 'chat-1')

// Real kernels in real sandboxes, a real SQLite database and real local storage.
describe('SessionService', () => {
  let sandbox: Sandbox
  let bed: SessionServiceBed
  let files: LocalStorage
  let stateStorage: LocalStorage
  let service: SessionService

  beforeAll(async () => {
    sandbox = await testSandbox()
  })
  afterAll(async () => {
    await closeTestSandboxes()
  })

  const build = (options: Partial<SessionServiceOptions> = {}): SessionService => bed.build(options)

  beforeEach(async () => {
    bed = await sessionServiceBed(sandbox)
    ;({ files, stateStorage } = bed)
    service = build()
  })
  afterEach(async () => {
    await bed.close()
  })

  it('saves to COLD apart from the tenant files, one generation at a time, and restores', async () => {
    const session = await service.create(alice, { language: 'python' })
    await service.execute(alice, session.id, {
      code: 'value = {"a": [1, 2]}\nopen("data.txt", "w").write("on disk")',
    })
    // The cell's output file is the tenant's; the saved state is not.
    expect((await files.list(alice)).files.map((file) => file.path)).toEqual(['data.txt'])

    await service.close('server stopping', 0)
    const saved = await stateStorage.list(alice)
    expect(saved.files.map((file) => file.path)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^${session.id}/[^/]+/state$`)),
        expect.stringMatching(new RegExp(`^${session.id}/[^/]+/workdir/data.txt$`)),
      ]),
    )
    expect((await files.list(alice)).files.map((file) => file.path)).toEqual(['data.txt'])

    service = build()
    const back = await service.execute(alice, session.id, {
      code: 'print(value["a"][1], open("data.txt").read())',
    })
    expect(back).toMatchObject({ status: 'ok', stdout: '2 on disk\n' })
    expect(back.restored?.names).toContain('value')

    // A second save replaces the first: one generation remains.
    await service.close('server stopping', 0)
    const generations = new Set(
      (await stateStorage.list(alice)).files.map((file) => file.path.split('/')[1]),
    )
    expect(generations.size).toBe(1)
    service = build()
  })

  it('freezes the least recently used idle HOT session past the HOT cap', async () => {
    service = build({ maxHotSessions: 1 })
    const older = await service.create(alice, { language: 'python' })
    const newer = await service.create(alice, { language: 'python' })
    const deadline = Date.now() + 20_000
    while (service.stats().hot > 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(service.stats()).toMatchObject({ hot: 1, warm: 1 })
    expect((await service.get(alice, older.id)).state).toBe('warm')
    expect((await service.get(alice, newer.id)).state).toBe('hot')
    expect((await service.get(alice, older.id)).transitions.at(-1)?.reason).toBe(
      'more than 1 HOT sessions; least recently used',
    )
  })

  it('caps sessions per namespace under concurrent creations', async () => {
    const settled = await Promise.allSettled(
      Array.from({ length: 5 }, () => service.create(alice, { language: 'bash' })),
    )
    expect(settled.filter((one) => one.status === 'fulfilled')).toHaveLength(3)
    for (const one of settled.filter((one) => one.status === 'rejected')) {
      expect(one.reason).toMatchObject({ code: 'too_many_sessions' })
    }
  })

  it('caps sessions per namespace and removes saved state on delete', async () => {
    const sessions = []
    for (let index = 0; index < 3; index += 1) {
      sessions.push(await service.create(alice, { language: 'bash' }))
    }
    await expect(service.create(alice, { language: 'bash' })).rejects.toMatchObject({
      code: 'too_many_sessions',
    })
    // Another namespace has its own count.
    await service.create(bob, { language: 'bash' })

    const first = sessions[0]?.id ?? ''
    await service.execute(alice, first, { code: 'echo hi > kept.txt' })
    await expect(service.delete(bob, first)).rejects.toMatchObject({ code: 'not_found' })
    await service.delete(alice, first)
    await expect(service.get(alice, first)).rejects.toMatchObject({ code: 'not_found' })
    expect((await stateStorage.list(alice, { prefix: `${first}/` })).files).toEqual([])
    await service.create(alice, { language: 'bash' })
  })

  it('bounds the lost names a tenant interpreter reports', async () => {
    const session = await service.create(alice, { language: 'python' })
    await service.execute(alice, session.id, {
      code: 'for i in range(150):\n    globals()[f"g{i}"] = (j for j in range(1))',
    })
    await service.close('server stopping', 0)
    service = build()
    const { lost } = await service.get(alice, session.id)
    expect(lost).toHaveLength(maxLostNames + 1)
    expect(lost.at(-1)).toEqual({ name: '…', reason: 'and 50 more names' })
  })

  it('runs cells of one session in the order they came', async () => {
    const session = await service.create(alice, { language: 'python' })
    await service.execute(alice, session.id, { code: 'seen = []' })
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, index) =>
        service.execute(alice, session.id, { code: `seen.append(${index})\nprint(seen)` }),
      ),
    )
    expect(results.map((result) => result.executionCount)).toEqual([2, 3, 4, 5, 6])
    expect(results.at(-1)?.stdout).toBe('[0, 1, 2, 3, 4]\n')
    // Cells that ended together share one record write: the latest count is what is read back,
    // here and by a new service from the database.
    expect((await service.get(alice, session.id)).executionCount).toBe(6)
    expect((await new SessionRepository(bed.database).get(alice, session.id))?.executionCount).toBe(
      6,
    )
  })
})
