import { stat } from 'node:fs/promises'
import path from 'node:path'
import { sql } from 'kysely'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { AppError } from '../app-error.ts'
import { createDatabase, databaseDialectOf } from './database.ts'
import type { Database, DatabaseOptions } from './database.ts'
import { migrations } from './migrations/migrations.ts'
import { testDatabases } from '../../test/test-databases.ts'
import type { FreshDatabase } from '../../test/test-databases.ts'

const migrationNames = migrations.map(([name]) => name)
const at = '2025-01-02T03:04:05.678Z'

describe('migrations', () => {
  it('are listed in the order of their names, which is the order kysely applies them in', () => {
    expect(migrationNames).toEqual(migrationNames.toSorted())
    expect(new Set(migrationNames).size).toBe(migrationNames.length)
  })
})

describe.each(testDatabases)('database contract: $name', (target) => {
  let fresh: FreshDatabase
  let opened: Database[]

  beforeEach(async () => {
    fresh = await target.fresh()
    opened = []
  })

  afterEach(async () => {
    for (const database of opened) await database.close()
    await fresh.remove()
  })

  async function open(options: Omit<DatabaseOptions, 'url'> = {}): Promise<Database> {
    const database = await createDatabase({ ...options, url: fresh.url })
    opened.push(database)
    return database
  }

  it('applies every migration to an empty database, and none a second time', async () => {
    const database = await open({ migrate: false })
    expect(await database.migrate()).toEqual(migrationNames)
    const tables = await database.kysely.introspection.getTables()
    expect(tables.map((table) => table.name)).toEqual(
      expect.arrayContaining(['executions', 'sessions', 'threads', 'messages', 'files']),
    )
    expect(await database.migrate()).toEqual([])
  })

  it('migrates at start unless told not to', async () => {
    const database = await open()
    expect(await database.migrate()).toEqual([])
  })

  it.runIf(target.shared)('applies nothing at a second start', async () => {
    const first = await open()
    await first.close()
    const second = await open({ migrate: false })
    expect(await second.migrate()).toEqual([])
  })

  it('survives concurrent migrations: each migration is applied exactly once', async () => {
    const first = await open({ migrate: false })
    const second = target.shared ? await open({ migrate: false }) : first
    const applied = await Promise.all([first.migrate(), second.migrate(), first.migrate()])
    expect(applied.flat().toSorted()).toEqual(migrationNames)
  })

  it.runIf(target.shared)('starts twice at once on one database', async () => {
    const databases = await Promise.all([open(), open(), open()])
    for (const database of databases) expect(await database.migrate()).toEqual([])
  })

  it('keeps sessions, threads, messages and files, with their references enforced', async () => {
    const { kysely } = await open()
    const namespace = { user_id: 'u1', chat_id: 'c1' }
    await kysely
      .insertInto('sessions')
      .values({
        id: 's1',
        ...namespace,
        language: 'python',
        state: 'hot',
        created_at: at,
        last_active_at: at,
      })
      .execute()
    await kysely
      .insertInto('threads')
      .values({ id: 't1', ...namespace, session_id: 's1', created_at: at, updated_at: at })
      .execute()
    const message = { thread_id: 't1', role: 'user', content: 'héllo', created_at: at }
    await kysely
      .insertInto('messages')
      .values([
        { id: 'm1', position: 0, ...message },
        { id: 'm2', position: 1, ...message },
      ])
      .execute()
    await expect(
      kysely
        .insertInto('messages')
        .values({ id: 'm3', position: 1, ...message })
        .execute(),
    ).rejects.toThrow()
    await expect(
      kysely
        .insertInto('messages')
        .values({ id: 'm4', position: 0, ...message, thread_id: 'no-such-thread' })
        .execute(),
    ).rejects.toThrow()

    await kysely.deleteFrom('sessions').where('id', '=', 's1').execute()
    const thread = await kysely.selectFrom('threads').selectAll().executeTakeFirstOrThrow()
    expect(thread.session_id).toBeNull()
    await kysely.deleteFrom('threads').where('id', '=', 't1').execute()
    expect(await kysely.selectFrom('messages').selectAll().execute()).toEqual([])

    const file = {
      ...namespace,
      path: 'data/sales.csv',
      size_bytes: 5 * 1024 ** 3,
      media_type: 'text/csv',
      sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      created_at: at,
      updated_at: at,
    }
    await kysely.insertInto('files').values(file).execute()
    await expect(kysely.insertInto('files').values(file).execute()).rejects.toThrow()
    await kysely
      .insertInto('files')
      .values({ ...file, chat_id: 'c2' })
      .execute()
    expect(
      await kysely.selectFrom('files').selectAll().where('chat_id', '=', 'c1').execute(),
    ).toEqual([file])
  })
})

describe('sqlite', () => {
  const target = testDatabases.find((database) => database.name === 'sqlite-file')
  let fresh: FreshDatabase
  let opened: Database[]

  beforeEach(async () => {
    if (target === undefined) throw new Error('no sqlite-file test database')
    fresh = await target.fresh()
    opened = []
  })

  afterEach(async () => {
    for (const database of opened) await database.close()
    await fresh.remove()
  })

  async function open(options: Omit<DatabaseOptions, 'url'> = {}): Promise<Database> {
    const database = await createDatabase({ ...options, url: fresh.url })
    opened.push(database)
    return database
  }

  it('creates the directory of the file, private to its owner', async () => {
    await open()
    const directory = await stat(path.dirname(fresh.url))
    expect(directory.mode & 0o777).toBe(0o700)
    expect((await stat(fresh.url)).isFile()).toBe(true)
  })

  it('runs in WAL mode with synchronous=NORMAL and foreign keys on', async () => {
    const { kysely } = await open()
    const pragma = async (name: string) =>
      (await sql<Record<string, unknown>>`pragma ${sql.raw(name)}`.execute(kysely)).rows[0]?.[name]
    expect(await pragma('journal_mode')).toBe('wal')
    expect(await pragma('synchronous')).toBe(1)
    expect(await pragma('foreign_keys')).toBe(1)
  })

  it('waits for another connection of this process to release its write lock', async () => {
    const holder = await open()
    const waiter = await open()
    let release = () => {}
    const released = new Promise<void>((resolve) => (release = resolve))
    const holding = holder.kysely.transaction().execute(async (trx) => {
      await trx.deleteFrom('files').execute()
      await released
    })
    const write = waiter.kysely
      .insertInto('threads')
      .values({
        id: 't1',
        user_id: 'u',
        chat_id: 'c',
        session_id: null,
        created_at: at,
        updated_at: at,
      })
      .execute()
    await new Promise((resolve) => setTimeout(resolve, 50))
    release()
    await holding
    await write
    expect(await holder.kysely.selectFrom('threads').select('id').execute()).toEqual([{ id: 't1' }])
  })

  it('gives up with SQLITE_BUSY after the busy timeout', async () => {
    const holder = await open()
    const waiter = await open({ busyTimeoutMs: 30 })
    let release = () => {}
    const released = new Promise<void>((resolve) => (release = resolve))
    const holding = holder.kysely.transaction().execute(async (trx) => {
      await trx.deleteFrom('files').execute()
      await released
    })
    try {
      await expect(waiter.kysely.deleteFrom('threads').execute()).rejects.toMatchObject({
        code: 'SQLITE_BUSY',
      })
    } finally {
      release()
      await holding
    }
  })
})

describe('database URLs', () => {
  it('names SQLite by a path and PostgreSQL by its URL schemes', () => {
    expect(databaseDialectOf('/var/lib/hutch/hutch.db')).toBe('sqlite')
    expect(databaseDialectOf('hutch.db')).toBe('sqlite')
    expect(databaseDialectOf(':memory:')).toBe('sqlite')
    expect(databaseDialectOf('postgres://hutch@db:5432/hutch')).toBe('postgres')
    expect(databaseDialectOf('postgresql://hutch@db/hutch')).toBe('postgres')
  })

  it('refuses other schemes and an empty URL', () => {
    expect(() => databaseDialectOf('mysql://db/hutch')).toThrow(AppError)
    expect(() => databaseDialectOf('')).toThrow(AppError)
  })
})

describe('postgres', () => {
  const target = testDatabases.find((database) => database.name === 'postgres')
  let fresh: FreshDatabase
  let opened: Database[]

  beforeEach(async () => {
    if (target === undefined) throw new Error('no postgres test database')
    fresh = await target.fresh()
    opened = []
  })

  afterEach(async () => {
    for (const database of opened) await database.close()
    await fresh.remove()
  })

  async function open(options: Omit<DatabaseOptions, 'url'> = {}): Promise<Database> {
    const database = await createDatabase({ ...options, url: fresh.url })
    opened.push(database)
    return database
  }

  async function rejection(promise: Promise<unknown>): Promise<unknown> {
    return await promise.then(
      () => undefined,
      (error: unknown) => error,
    )
  }

  it('fails fast with backend_unavailable when nothing listens, at start and at check', async () => {
    const url = 'postgres://hutch@127.0.0.1:1/hutch'
    const startedMs = performance.now()
    const error = await rejection(createDatabase({ url }))
    expect(error).toBeInstanceOf(AppError)
    expect(error).toMatchObject({
      code: 'backend_unavailable',
      message: 'the database is unavailable: it refused the connection',
    })
    const lazy = await createDatabase({ url, migrate: false })
    opened.push(lazy)
    await expect(lazy.check()).rejects.toMatchObject({ code: 'backend_unavailable' })
    expect(performance.now() - startedMs).toBeLessThan(5_000)
  })

  it('answers check when the server does', async () => {
    await expect((await open()).check()).resolves.toBeUndefined()
  })

  it('names a missing database as the reason it is unavailable', async () => {
    const url = new URL(fresh.url)
    url.pathname = '/hutch_test_no_such_database'
    await expect(createDatabase({ url: url.href })).rejects.toMatchObject({
      code: 'backend_unavailable',
      message: 'the database is unavailable: the database does not exist',
    })
  })

  it('cuts a statement off at the statement timeout, as backend_unavailable', async () => {
    const { kysely } = await open({ statementTimeoutMs: 100 })
    await expect(sql`select pg_sleep(5)`.execute(kysely)).rejects.toMatchObject({
      code: 'backend_unavailable',
      message: 'the database is unavailable: a statement ran longer than 100 ms',
    })
    await expect(sql`select 1 as one`.execute(kysely)).resolves.toMatchObject({
      rows: [{ one: 1 }],
    })
  })

  it('opens at most poolSize connections and waits connectTimeoutMs for a free one', async () => {
    const database = await open({ poolSize: 1, connectTimeoutMs: 200 })
    let release = () => {}
    const released = new Promise<void>((resolve) => (release = resolve))
    const holding = database.kysely.transaction().execute(async (trx) => {
      await sql`select 1`.execute(trx)
      await released
    })
    try {
      await expect(database.check()).rejects.toMatchObject({
        code: 'backend_unavailable',
        message: 'the database is unavailable: no connection within 200 ms',
      })
    } finally {
      release()
      await holding
    }
    await expect(database.check()).resolves.toBeUndefined()
  })

  it('reads bigint as a number, and text with NUL and the escape character exactly', async () => {
    const { kysely } = await open()
    const count = await sql<{
      count: unknown
    }>`select count(*) as count from generate_series(1, 3)`.execute(kysely)
    expect(count.rows).toEqual([{ count: 3 }])
    const content = 'a\u0000b\u0010c\u0010\u00000'
    await kysely
      .insertInto('threads')
      .values({
        id: 't1',
        user_id: 'u',
        chat_id: 'c',
        session_id: null,
        created_at: at,
        updated_at: at,
      })
      .execute()
    await kysely
      .insertInto('messages')
      .values({ id: 'm1', thread_id: 't1', position: 0, role: 'tool', content, created_at: at })
      .execute()
    const read = await kysely
      .selectFrom('messages')
      .select('content')
      .where('content', '=', content)
      .executeTakeFirstOrThrow()
    expect(read.content).toBe(content)
    const stored = await sql<{
      escaped: boolean
    }>`select position(chr(16) in content) > 0 as escaped from messages`.execute(kysely)
    expect(stored.rows).toEqual([{ escaped: true }])
  })
})
