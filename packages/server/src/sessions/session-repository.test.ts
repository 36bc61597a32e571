import { randomUUID } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AppError } from '../app-error.ts'
import { createDatabase } from '../db/database.ts'
import type { Database } from '../db/database.ts'
import { testDatabases } from '../../test/test-databases.ts'
import type { FreshDatabase } from '../../test/test-databases.ts'
import { namespaceOf } from '../namespace.ts'
import { SessionRepository, transitionsShown } from './session-repository.ts'

const alice = namespaceOf('alice', 'chat-1')
const aliceOtherChat = namespaceOf('alice', 'chat-2')
const bob = namespaceOf('bob', 'chat-1')

/** A clock that moves one millisecond at each reading, from a fixed start. */
function steppingClock(startIso = '2025-03-04T05:06:07.000Z'): () => Date {
  let nowMs = Date.parse(startIso)
  return () => new Date(nowMs++)
}

function newSession(namespace = alice) {
  return {
    id: randomUUID(),
    namespace,
    language: 'python',
    limits: { memoryBytes: 512 * 1024 * 1024, wallTimeMs: 30_000 },
    warmAfterMs: 60_000,
    coldAfterMs: 600_000,
    reason: 'created by the client',
  }
}

describe.each(testDatabases)('session repository contract: $name', (target) => {
  let fresh: FreshDatabase
  let opened: Database[]
  let repository: SessionRepository

  beforeEach(async () => {
    fresh = await target.fresh()
    opened = []
    repository = new SessionRepository(await open(), steppingClock())
  })

  afterEach(async () => {
    for (const database of opened) await database.close()
    await fresh.remove()
  })

  async function open(): Promise<Database> {
    const database = await createDatabase({ url: fresh.url })
    opened.push(database)
    return database
  }

  it('creates a HOT session with its creation as the first transition', async () => {
    const input = newSession()
    const created = await repository.create(input)
    expect(created).toStrictEqual({
      id: input.id,
      userId: 'alice',
      chatId: 'chat-1',
      language: 'python',
      state: 'hot',
      limits: { memoryBytes: 512 * 1024 * 1024, wallTimeMs: 30_000 },
      warmAfterMs: 60_000,
      coldAfterMs: 600_000,
      executionCount: 0,
      savedState: null,
      lostNames: [],
      createdAt: '2025-03-04T05:06:07.000Z',
      lastActiveAt: '2025-03-04T05:06:07.000Z',
      transitions: [
        { from: null, to: 'hot', reason: 'created by the client', at: '2025-03-04T05:06:07.000Z' },
      ],
    })
    expect(await repository.get(alice, input.id)).toStrictEqual(created)
  })

  it('keeps each session within its namespace', async () => {
    const created = await repository.create(newSession())
    expect(await repository.get(bob, created.id)).toBeUndefined()
    expect(await repository.get(aliceOtherChat, created.id)).toBeUndefined()
    expect((await repository.list(bob, { limit: 10 })).items).toEqual([])
    expect(await repository.count(alice)).toBe(1)
    expect(await repository.count(bob)).toBe(0)
  })

  it('records transitions in order, with the saved state and lost names', async () => {
    const created = await repository.create(newSession())
    await repository.transition(created.id, 'warm', 'idle for 60000 ms')
    const savedState = {
      prefix: `${created.id}/g1/`,
      stateKey: `${created.id}/g1/state`,
      files: ['data/sales.csv', 'ünïcode.txt'],
      savedAt: '2025-03-04T05:07:00.000Z',
    }
    const cold = await repository.transition(created.id, 'cold', 'idle for 600000 ms', {
      savedState,
      lostNames: [{ name: 'gen', reason: 'cannot pickle generator objects' }],
    })
    expect(cold).toMatchObject({
      state: 'cold',
      savedState,
      lostNames: [{ name: 'gen', reason: 'cannot pickle generator objects' }],
    })
    expect(cold.transitions.map(({ from, to, reason }) => ({ from, to, reason }))).toEqual([
      { from: null, to: 'hot', reason: 'created by the client' },
      { from: 'hot', to: 'warm', reason: 'idle for 60000 ms' },
      { from: 'warm', to: 'cold', reason: 'idle for 600000 ms' },
    ])
    const times = cold.transitions.map((transition) => transition.at)
    expect([...times].sort()).toEqual(times)
  })

  it('shows the latest transitions only', async () => {
    const created = await repository.create(newSession())
    for (let index = 0; index < transitionsShown; index += 1) {
      await repository.transition(created.id, index % 2 === 0 ? 'warm' : 'hot', `move ${index}`)
    }
    const record = await repository.get(alice, created.id)
    expect(record?.transitions).toHaveLength(transitionsShown)
    expect(record?.transitions.at(-1)?.reason).toBe(`move ${transitionsShown - 1}`)
    expect(record?.transitions[0]?.reason).toBe('move 0')
  })

  it('records cells with touch', async () => {
    const created = await repository.create(newSession())
    const at = await repository.touch(created.id, 3)
    expect(await repository.get(alice, created.id)).toMatchObject({
      executionCount: 3,
      lastActiveAt: at,
    })
    expect(at > created.lastActiveAt).toBe(true)
  })

  it('hides deleted sessions and refuses to move them', async () => {
    const created = await repository.create(newSession())
    await repository.transition(created.id, 'deleted', 'deleted by the client')
    expect(await repository.get(alice, created.id)).toBeUndefined()
    expect((await repository.list(alice, { limit: 10 })).items).toEqual([])
    expect(await repository.count(alice)).toBe(0)
    const error = await repository.transition(created.id, 'hot', 'x').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AppError)
    expect(error).toMatchObject({ code: 'internal' })
  })

  it('lists newest first, a page at a time', async () => {
    const ids: string[] = []
    for (let index = 0; index < 5; index += 1) ids.push((await repository.create(newSession())).id)
    await repository.create(newSession(bob))
    const first = await repository.list(alice, { limit: 2 })
    expect(first.items.map((item) => item.id)).toEqual([ids[4], ids[3]])
    expect(first.nextCursor).not.toBeNull()
    const second = await repository.list(alice, { limit: 2, cursor: first.nextCursor ?? '' })
    expect(second.items.map((item) => item.id)).toEqual([ids[2], ids[1]])
    const third = await repository.list(alice, { limit: 2, cursor: second.nextCursor ?? '' })
    expect(third.items.map((item) => item.id)).toEqual([ids[0]])
    expect(third.nextCursor).toBeNull()
    const error = await repository
      .list(alice, { limit: 2, cursor: 'not-a-cursor' })
      .catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'invalid_request' })
  })

  it('turns every HOT or WARM session COLD at start, with the reason', async () => {
    const hot = await repository.create(newSession())
    const warm = await repository.create(newSession(bob))
    await repository.transition(warm.id, 'warm', 'idle')
    const cold = await repository.create(newSession())
    await repository.transition(cold.id, 'cold', 'idle')
    const gone = await repository.create(newSession())
    await repository.transition(gone.id, 'deleted', 'deleted by the client')

    expect(await repository.coldAllLive('server restarted')).toBe(2)
    expect(await repository.coldAllLive('server restarted')).toBe(0)
    expect((await repository.get(alice, hot.id))?.transitions.at(-1)).toMatchObject({
      from: 'hot',
      to: 'cold',
      reason: 'server restarted',
    })
    expect((await repository.get(bob, warm.id))?.transitions.at(-1)).toMatchObject({
      from: 'warm',
      to: 'cold',
      reason: 'server restarted',
    })
    expect((await repository.get(alice, cold.id))?.transitions).toHaveLength(2)
  })

  it.runIf(target.shared)('is read back by another connection', async () => {
    const created = await repository.create(newSession())
    await repository.transition(created.id, 'warm', 'idle')
    const other = new SessionRepository(await open())
    expect(await other.get(alice, created.id)).toMatchObject({ id: created.id, state: 'warm' })
  })

  it('applies concurrent transitions of one session one after the other', async () => {
    const created = await repository.create(newSession())
    await Promise.all(
      Array.from({ length: 8 }, (_, index) =>
        repository.transition(created.id, index % 2 === 0 ? 'warm' : 'hot', `move ${index}`),
      ),
    )
    const record = await repository.get(alice, created.id)
    expect(record?.transitions).toHaveLength(9)
    // Each transition starts where the one before it ended.
    for (let index = 1; index < (record?.transitions.length ?? 0); index += 1) {
      expect(record?.transitions[index]?.from).toBe(record?.transitions[index - 1]?.to)
    }
  })
})
