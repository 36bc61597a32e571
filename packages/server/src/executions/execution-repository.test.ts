import { randomUUID } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AppError } from '../app-error.ts'
import { createDatabase } from '../db/database.ts'
import type { Database } from '../db/database.ts'
import { testDatabases } from '../../test/test-databases.ts'
import type { FreshDatabase } from '../../test/test-databases.ts'
import { namespaceOf } from '../namespace.ts'
import { ExecutionRepository } from './execution-repository.ts'
import type { ExecutionOutcome, ExecutionRecord } from './execution-repository.ts'

const alice = namespaceOf('alice', 'chat-1')
const aliceOtherChat = namespaceOf('alice', 'chat-2')
const bob = namespaceOf('bob', 'chat-1')

/** A clock that moves one millisecond at each reading, from a fixed start. */
function steppingClock(startIso = '2025-03-04T05:06:07.000Z'): () => Date {
  let nowMs = Date.parse(startIso)
  return () => new Date(nowMs++)
}

function newExecution(namespace = alice) {
  return {
    id: randomUUID(),
    namespace,
    language: 'python',
    path: 'main.py',
    code: 'print("hi")',
    inputFiles: [],
  }
}

const fullOutcome: ExecutionOutcome = {
  status: 'error',
  exitCode: 1,
  signal: null,
  stdout: 'héllo wörld — 你好 🌍\u{1F469}\u200D\u{1F4BB}\n',
  stderr: 'Traceback (most recent call last):\n  ZeroDivisionError: division by zero\n',
  stdoutTruncated: false,
  stderrTruncated: true,
  error: {
    name: 'ZeroDivisionError',
    value: 'division by zero',
    traceback: 'Traceback (most recent call last):\n  File "main.py", line 3\n',
    line: 3,
    hint: 'check the divisor before dividing',
  },
  reason: 'exited with code 1',
  outputFiles: [
    { path: 'plots/fig 1.png', mediaType: 'image/png', size: 12_345 },
    { path: 'out/data.csv', mediaType: 'text/csv', size: 0, url: '/v1/files/out/data.csv' },
  ],
  skippedFiles: [{ path: 'leak', reason: 'symlink' }],
  usage: { wallMs: 1234.5, cpuMs: 1000, peakMemoryBytes: 50 * 1024 * 1024 },
  timings: { queueMs: 0.25, syncInMs: 3, runMs: 1200, syncOutMs: 31 },
}

const nullOutcome: ExecutionOutcome = {
  status: 'killed',
  exitCode: null,
  signal: 'SIGKILL',
  stdout: '',
  stderr: '',
  stdoutTruncated: false,
  stderrTruncated: false,
  error: null,
  reason: null,
  outputFiles: [],
  usage: null,
  timings: null,
}

describe.each(testDatabases)('execution repository contract: $name', (target) => {
  let fresh: FreshDatabase
  let opened: Database[]
  let database: Database
  let repository: ExecutionRepository

  beforeEach(async () => {
    fresh = await target.fresh()
    opened = []
    database = await open()
    repository = new ExecutionRepository(database, steppingClock())
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

  async function expectAppError(promise: Promise<unknown>, code: string): Promise<void> {
    const error: unknown = await promise.then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(error).toBeInstanceOf(AppError)
    expect(error).toMatchObject({ code })
  }

  describe('create, transition and finish', () => {
    it('creates a pending record', async () => {
      const input = { ...newExecution(), inputFiles: ['data/sales.csv', 'ünïcode name.txt'] }
      const created = await repository.create(input)
      expect(created).toStrictEqual({
        id: input.id,
        userId: 'alice',
        chatId: 'chat-1',
        language: 'python',
        path: 'main.py',
        code: 'print("hi")',
        status: 'pending',
        statusHistory: [{ status: 'pending', at: '2025-03-04T05:06:07.000Z' }],
        exitCode: null,
        signal: null,
        stdout: '',
        stderr: '',
        stdoutTruncated: false,
        stderrTruncated: false,
        error: null,
        reason: null,
        inputFiles: ['data/sales.csv', 'ünïcode name.txt'],
        outputFiles: [],
        skippedFiles: [],
        usage: null,
        timings: null,
        createdAt: '2025-03-04T05:06:07.000Z',
        finishedAt: null,
      } satisfies ExecutionRecord)
      expect(await repository.get(alice, input.id)).toStrictEqual(created)
    })

    it('round-trips every field of a finished record exactly', async () => {
      const code = 'import sys\nprint("héllo 🌍")\nsys.exit(1)\n'
      const created = await repository.create({ ...newExecution(), code, path: 'src/máin.py' })
      const finished = await repository.finish(created.id, fullOutcome)
      expect(finished).toStrictEqual({
        ...created,
        ...fullOutcome,
        statusHistory: [...created.statusHistory, { status: 'error', at: finished.finishedAt }],
        finishedAt: '2025-03-04T05:06:07.001Z',
      })
      expect(await repository.get(alice, created.id)).toStrictEqual(finished)
    })

    it('round-trips nulls, a signal and empty output', async () => {
      const created = await repository.create(newExecution())
      const finished = await repository.finish(created.id, nullOutcome)
      expect(finished).toMatchObject(nullOutcome)
      expect(await repository.get(alice, created.id)).toStrictEqual(finished)
    })

    it('round-trips a megabyte of output in each stream', async () => {
      const line = 'ligne numéro 0123456789 — ✓ 🌍\n'
      const stdout = line.repeat(Math.ceil((1024 * 1024) / Buffer.byteLength(line)))
      const stderr = 'x'.repeat(1024 * 1024)
      const created = await repository.create(newExecution())
      await repository.finish(created.id, {
        ...fullOutcome,
        stdout,
        stderr,
        stdoutTruncated: true,
      })
      const read = await repository.get(alice, created.id)
      expect(Buffer.byteLength(read?.stdout ?? '')).toBeGreaterThanOrEqual(1024 * 1024)
      expect(read?.stdout === stdout).toBe(true)
      expect(read?.stderr === stderr).toBe(true)
      expect(read?.stdoutTruncated).toBe(true)
    })

    // PostgreSQL text cannot hold U+0000, which a program may print and a request may carry.
    it('round-trips NUL in output, code and reason, and the escape character beside it', async () => {
      const code = 'print("a\\0b")\u0000# \u0010'
      const created = await repository.create({ ...newExecution(), code })
      const outcome = {
        ...fullOutcome,
        stdout: 'a\u0000b\n\u0000\u0010\u00100\u0000',
        stderr: '\u0000'.repeat(1000),
        reason: 'printed \u0000',
      }
      const finished = await repository.finish(created.id, outcome)
      expect(finished).toMatchObject({ code, stdout: outcome.stdout, stderr: outcome.stderr })
      expect(await repository.get(alice, created.id)).toStrictEqual(finished)
      expect((await repository.list(alice, { limit: 1 })).items).toStrictEqual([finished])
    })

    it('keeps the history in order, each status with its time', async () => {
      const { id } = await repository.create(newExecution())
      await repository.transition(id, 'syncing_in')
      await repository.transition(id, 'running')
      await repository.transition(id, 'syncing_out')
      const running = await repository.get(alice, id)
      expect(running?.status).toBe('syncing_out')
      expect(running?.finishedAt).toBeNull()
      await repository.finish(id, { ...nullOutcome, status: 'ok', exitCode: 0, signal: null })
      const finished = await repository.get(alice, id)
      expect(finished?.status).toBe('ok')
      expect(finished?.statusHistory).toEqual([
        { status: 'pending', at: '2025-03-04T05:06:07.000Z' },
        { status: 'syncing_in', at: '2025-03-04T05:06:07.001Z' },
        { status: 'running', at: '2025-03-04T05:06:07.002Z' },
        { status: 'syncing_out', at: '2025-03-04T05:06:07.003Z' },
        { status: 'ok', at: '2025-03-04T05:06:07.004Z' },
      ])
      expect(finished?.finishedAt).toBe('2025-03-04T05:06:07.004Z')
    })

    it('adds the phases that could not be recorded to the history at the end, once each', async () => {
      const { id } = await repository.create(newExecution())
      await repository.transition(id, 'syncing_in')
      const finished = await repository.finish(id, {
        ...nullOutcome,
        unrecordedPhases: [
          { status: 'syncing_in', at: '2025-03-04T05:06:06.000Z' },
          { status: 'running', at: '2025-03-04T05:06:08.000Z' },
          { status: 'syncing_out', at: '2025-03-04T05:06:09.000Z' },
        ],
      })
      expect(finished.statusHistory).toEqual([
        { status: 'pending', at: '2025-03-04T05:06:07.000Z' },
        { status: 'syncing_in', at: '2025-03-04T05:06:07.001Z' },
        { status: 'running', at: '2025-03-04T05:06:08.000Z' },
        { status: 'syncing_out', at: '2025-03-04T05:06:09.000Z' },
        { status: 'killed', at: '2025-03-04T05:06:07.002Z' },
      ])
      expect(await repository.get(alice, id)).toStrictEqual(finished)
    })

    it('loses no transition when they race', async () => {
      const { id } = await repository.create(newExecution())
      const other = target.shared ? new ExecutionRepository(await open()) : repository
      const moves = ['syncing_in', 'running', 'syncing_out'] as const
      await Promise.all(
        [...moves, ...moves].map((status, index) =>
          (index % 2 === 0 ? repository : other).transition(id, status),
        ),
      )
      const record = await repository.get(alice, id)
      expect(record?.statusHistory.map((entry) => entry.status).toSorted()).toEqual(
        ['pending', ...moves, ...moves].toSorted(),
      )
    })

    it('finishes a record once: finishing again fails and changes nothing', async () => {
      const { id } = await repository.create(newExecution())
      const finished = await repository.finish(id, fullOutcome)
      await expectAppError(repository.finish(id, nullOutcome), 'internal')
      await expectAppError(repository.finish(id, fullOutcome), 'internal')
      expect(await repository.get(alice, id)).toStrictEqual(finished)
    })

    it('lets exactly one of two racing finishes win', async () => {
      const { id } = await repository.create(newExecution())
      const other = target.shared ? new ExecutionRepository(await open()) : repository
      const settled = await Promise.allSettled([
        repository.finish(id, fullOutcome),
        other.finish(id, nullOutcome),
      ])
      expect(settled.filter((result) => result.status === 'fulfilled')).toHaveLength(1)
      const [rejected] = settled.filter((result) => result.status === 'rejected')
      expect(rejected?.reason).toMatchObject({ code: 'internal' })
      expect((await repository.get(alice, id))?.statusHistory).toHaveLength(2)
    })

    it('refuses to move a finished record', async () => {
      const { id } = await repository.create(newExecution())
      const finished = await repository.finish(id, fullOutcome)
      await expectAppError(repository.transition(id, 'running'), 'internal')
      expect(await repository.get(alice, id)).toStrictEqual(finished)
    })

    it('refuses to move or finish an unknown record', async () => {
      await expectAppError(repository.transition('no-such-id', 'running'), 'internal')
      await expectAppError(repository.finish('no-such-id', fullOutcome), 'internal')
    })
  })

  describe('namespaces', () => {
    it('hides a record from every other namespace', async () => {
      const { id } = await repository.create(newExecution(alice))
      expect(await repository.get(alice, id)).toBeDefined()
      expect(await repository.get(aliceOtherChat, id)).toBeUndefined()
      expect(await repository.get(bob, id)).toBeUndefined()
      expect((await repository.list(bob, { limit: 100 })).items).toEqual([])
      expect((await repository.list(aliceOtherChat, { limit: 100 })).items).toEqual([])
    })

    it('finds nothing for an unknown id', async () => {
      expect(await repository.get(alice, 'no-such-id')).toBeUndefined()
    })
  })

  describe('list', () => {
    // Older than `repository`'s clock. Three records share each millisecond, so the order within
    // a tie rests on the id.
    async function createMany(count: number): Promise<ExecutionRecord[]> {
      let tick = 0
      const startMs = Date.parse('2025-01-01T00:00:00.000Z')
      const tied = new ExecutionRepository(
        database,
        () => new Date(startMs + Math.floor(tick++ / 3)),
      )
      const records: ExecutionRecord[] = []
      for (let index = 0; index < count; index++) {
        records.push(await tied.create(newExecution(alice)))
        if (index % 10 === 0) await tied.create(newExecution(bob))
      }
      // Newest first; ids (lowercase UUIDs) sort alike by code unit and by any collation.
      const key = (record: ExecutionRecord) => `${record.createdAt} ${record.id}`
      return records.toSorted((a, b) => (key(a) < key(b) ? 1 : -1))
    }

    it('walks 250 records newest first, each exactly once', async () => {
      const expected = await createMany(250)
      const seen: string[] = []
      const pageSizes: number[] = []
      let cursor: string | undefined
      do {
        const page = await repository.list(alice, {
          limit: 100,
          ...(cursor === undefined ? {} : { cursor }),
        })
        pageSizes.push(page.items.length)
        seen.push(...page.items.map((item) => item.id))
        cursor = page.nextCursor ?? undefined
        if (cursor !== undefined) expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/)
      } while (cursor !== undefined)
      expect(pageSizes).toEqual([100, 100, 50])
      expect(seen).toEqual(expected.map((record) => record.id))
    })

    it('returns full records, as get does', async () => {
      const { id } = await repository.create(newExecution())
      const finished = await repository.finish(id, fullOutcome)
      expect((await repository.list(alice, { limit: 10 })).items).toStrictEqual([finished])
    })

    it('keeps a cursor stable when newer records arrive', async () => {
      await createMany(30)
      const first = await repository.list(alice, { limit: 10 })
      const cursor = first.nextCursor ?? ''
      const second = await repository.list(alice, { limit: 10, cursor })
      await repository.create(newExecution(alice))
      await repository.create(newExecution(alice))
      expect(await repository.list(alice, { limit: 10, cursor })).toStrictEqual(second)
      expect((await repository.list(alice, { limit: 10 })).items[2]).toStrictEqual(first.items[0])
    })

    it('answers an empty namespace with an empty last page', async () => {
      expect(await repository.list(alice, { limit: 10 })).toEqual({ items: [], nextCursor: null })
    })

    it('has no next page when the last page is exactly full', async () => {
      await createMany(20)
      const first = await repository.list(alice, { limit: 10 })
      const second = await repository.list(alice, { limit: 10, cursor: first.nextCursor ?? '' })
      expect(second.items).toHaveLength(10)
      expect(second.nextCursor).toBeNull()
    })

    it('clamps the limit to 1..100', async () => {
      await createMany(105)
      expect((await repository.list(alice, { limit: 0 })).items).toHaveLength(1)
      expect((await repository.list(alice, { limit: -5 })).items).toHaveLength(1)
      expect((await repository.list(alice, { limit: 2.7 })).items).toHaveLength(2)
      expect((await repository.list(alice, { limit: 1000 })).items).toHaveLength(100)
    })

    it.each([
      ['an empty string', ''],
      ['not base64url', 'not a cursor!'],
      ['not JSON', Buffer.from('garbage').toString('base64url')],
      ['JSON of the wrong shape', Buffer.from('[1,2]').toString('base64url')],
      ['a bad time', Buffer.from('["yesterday","x"]').toString('base64url')],
      ['an empty id', Buffer.from('["2025-01-01T00:00:00.000Z",""]').toString('base64url')],
    ])('refuses a malformed cursor: %s', async (_name, cursor) => {
      await expectAppError(repository.list(alice, { limit: 10, cursor }), 'invalid_request')
    })
  })

  describe('failUnfinished', () => {
    it('fails every unfinished record with the reason and leaves finished ones alone', async () => {
      const pending = await repository.create(newExecution(alice))
      const running = await repository.create(newExecution(bob))
      await repository.transition(running.id, 'syncing_in')
      await repository.transition(running.id, 'running')
      const done = await repository.create(newExecution(alice))
      const finished = await repository.finish(done.id, fullOutcome)

      expect(await repository.failUnfinished('hutch restarted while it ran')).toBe(2)

      for (const [namespace, id, before] of [
        [alice, pending.id, ['pending']],
        [bob, running.id, ['pending', 'syncing_in', 'running']],
      ] as const) {
        const record = await repository.get(namespace, id)
        expect(record).toMatchObject({
          status: 'failed',
          reason: 'hutch restarted while it ran',
          exitCode: null,
        })
        expect(record?.finishedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
        expect(record?.statusHistory.map((entry) => entry.status)).toEqual([...before, 'failed'])
        expect(record?.statusHistory.at(-1)?.at).toBe(record?.finishedAt)
      }
      expect(await repository.get(alice, done.id)).toStrictEqual(finished)
      expect(await repository.failUnfinished('again')).toBe(0)
    })
  })

  it.runIf(target.shared)('keeps records across a close and a reopen', async () => {
    const { id } = await repository.create(newExecution())
    await repository.transition(id, 'running')
    const finished = await repository.finish(id, fullOutcome)
    const unfinished = await repository.create(newExecution())
    for (const database of opened.splice(0)) await database.close()

    const reopened = new ExecutionRepository(await open())
    expect(await reopened.get(alice, id)).toStrictEqual(finished)
    expect(await reopened.get(alice, unfinished.id)).toStrictEqual(unfinished)
  })
})
