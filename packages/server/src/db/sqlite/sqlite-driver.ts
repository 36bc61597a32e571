import { setTimeout as sleep } from 'node:timers/promises'
import type BetterSqlite3 from 'better-sqlite3'
import { CompiledQuery, SelectQueryNode } from 'kysely'
import type { DatabaseConnection, Driver, QueryResult, TransactionSettings } from 'kysely'

const firstBusyWaitMs = 1
const longestBusyWaitMs = 25
/**
 * Prepared statements kept per connection, by SQL text. The queries are built from a few code
 * paths, so this holds them all; preparing one again costs more than running it (~30 µs).
 */
const statementCacheSize = 200

/**
 * A kysely driver over one better-sqlite3 connection, built for several connections (others in
 * this process, other processes) sharing one file.
 *
 * - Write transactions begin `IMMEDIATE`: they take the write lock before their first read, so a
 *   read-modify-write inside one is serialised (SQLite's `SELECT ... FOR UPDATE`) and never fails
 *   late with `SQLITE_BUSY_SNAPSHOT`.
 * - Waiting for another connection's lock is asynchronous. SQLite's own `busy_timeout` sleeps in
 *   the calling thread, which stalls the event loop and, when the lock holder is another
 *   connection of this same process, waits for a lock that cannot be released until it gives up.
 */
export class SqliteDriver implements Driver {
  readonly #connection: SqliteConnection
  readonly #database: BetterSqlite3.Database

  constructor(database: BetterSqlite3.Database, busyTimeoutMs: number) {
    this.#database = database
    this.#connection = new SqliteConnection(database, busyTimeoutMs)
  }

  async init(): Promise<void> {}

  // kysely serialises use of the one connection (the adapter reports no multiple connections).
  acquireConnection(): Promise<DatabaseConnection> {
    return Promise.resolve(this.#connection)
  }

  async beginTransaction(
    connection: DatabaseConnection,
    settings: TransactionSettings,
  ): Promise<void> {
    const begin = settings.accessMode === 'read only' ? 'begin deferred' : 'begin immediate'
    await connection.executeQuery(CompiledQuery.raw(begin))
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'))
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'))
  }

  async releaseConnection(): Promise<void> {}

  destroy(): Promise<void> {
    if (this.#database.open) this.#database.close()
    return Promise.resolve()
  }
}

class SqliteConnection implements DatabaseConnection {
  readonly #database: BetterSqlite3.Database
  readonly #busyTimeoutMs: number
  readonly #statements = new Map<string, BetterSqlite3.Statement<unknown[], unknown>>()

  constructor(database: BetterSqlite3.Database, busyTimeoutMs: number) {
    this.#database = database
    this.#busyTimeoutMs = busyTimeoutMs
  }

  /** The prepared statement of `sql`, least recently used ones dropped past the cache size. */
  #prepare<R>(sql: string): BetterSqlite3.Statement<unknown[], R> {
    let statement = this.#statements.get(sql)
    if (statement === undefined) {
      statement = this.#database.prepare<unknown[], unknown>(sql)
      if (this.#statements.size >= statementCacheSize) {
        const oldest = this.#statements.keys().next().value
        if (oldest !== undefined) this.#statements.delete(oldest)
      }
    } else {
      this.#statements.delete(sql)
    }
    this.#statements.set(sql, statement)
    return statement as BetterSqlite3.Statement<unknown[], R>
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const { sql, parameters } = compiledQuery
    return await retryWhileBusy(this.#busyTimeoutMs, () => {
      const statement = this.#prepare<R>(sql)
      if (statement.reader) return { rows: statement.all(...parameters) }
      const { changes, lastInsertRowid } = statement.run(...parameters)
      return {
        numAffectedRows: BigInt(changes),
        insertId: BigInt(lastInsertRowid),
        rows: [],
      }
    })
  }

  async *streamQuery<R>(compiledQuery: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    if (!SelectQueryNode.is(compiledQuery.query)) {
      throw new Error('the SQLite driver streams select queries only')
    }
    const { sql, parameters } = compiledQuery
    // Its own statement: a cached one could be asked to run again while this one iterates.
    const statement = await retryWhileBusy(this.#busyTimeoutMs, () =>
      this.#database.prepare<unknown[], R>(sql),
    )
    for (const row of statement.iterate(...parameters)) yield { rows: [row] }
  }
}

/**
 * Runs `task` (one statement: it either did all its work or none), again after a growing pause
 * while another connection holds the lock it needs, for up to `busyTimeoutMs` in all.
 */
export async function retryWhileBusy<T>(busyTimeoutMs: number, task: () => T): Promise<T> {
  const deadline = performance.now() + busyTimeoutMs
  let waitMs = firstBusyWaitMs
  for (;;) {
    try {
      return task()
    } catch (error) {
      if (!isBusy(error) || performance.now() + waitMs > deadline) throw error
    }
    await sleep(waitMs)
    waitMs = Math.min(waitMs * 2, longestBusyWaitMs)
  }
}

// SQLITE_BUSY_SNAPSHOT is left out: retrying the statement cannot help, the transaction must
// restart (and immediate transactions never meet it).
function isBusy(error: unknown): boolean {
  if (!(error instanceof Error) || !('code' in error)) return false
  return error.code === 'SQLITE_BUSY' || error.code === 'SQLITE_BUSY_RECOVERY'
}
