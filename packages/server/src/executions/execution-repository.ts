import type { OutputFile, RunError, RunStatus, RunUsage } from '@hutch/protocol'
import { runStatuses } from '@hutch/protocol'
import type { Selectable, Transaction } from 'kysely'
import { z } from 'zod'
import { AppError } from '../app-error.ts'
import type { Database } from '../db/database.ts'
import type { DatabaseSchema, ExecutionsTable } from '../db/schema.ts'
import type { Namespace } from '../namespace.ts'

/**
 * Where an execution is. It moves `pending` -> `syncing_in` -> `running` -> `syncing_out` and
 * ends in a run status, or in `failed` when hutch failed it (a crash, a restart, an internal
 * error) rather than the program.
 */
export type ExecutionStatus =
  'pending' | 'syncing_in' | 'running' | 'syncing_out' | RunStatus | 'failed'

const finalExecutionStatuses: readonly ExecutionStatus[] = [...runStatuses, 'failed']

const executionStatuses: readonly ExecutionStatus[] = [
  'pending',
  'syncing_in',
  'running',
  'syncing_out',
  ...finalExecutionStatuses,
]

/** How long each phase of an execution took. */
/** The phases of a run between its queueing and its end. */
export type RunPhaseStatus = 'syncing_in' | 'running' | 'syncing_out'

export interface ExecutionTimings {
  queueMs: number
  syncInMs: number
  runMs: number
  syncOutMs: number
}

/** An execution as recorded: its request, its progress and, once finished, its result. */
export interface ExecutionRecord {
  id: string
  userId: string
  chatId: string
  language: string
  path: string
  code: string
  status: ExecutionStatus
  /** Every status it had, oldest first, with when it was entered (ISO-8601 UTC). */
  statusHistory: { status: ExecutionStatus; at: string }[]
  exitCode: number | null
  signal: string | null
  stdout: string
  stderr: string
  stdoutTruncated: boolean
  stderrTruncated: boolean
  error: RunError | null
  /** Why it ended as it did, when hutch knows more than the status says. */
  reason: string | null
  /** Names of the namespace's files the run was given. */
  inputFiles: string[]
  outputFiles: OutputFile[]
  /** Files the run made that were not copied out, and why. */
  skippedFiles: SkippedFile[]
  usage: RunUsage | null
  timings: ExecutionTimings | null
  /** ISO-8601 UTC. */
  createdAt: string
  /** ISO-8601 UTC; null until it ends. */
  finishedAt: string | null
}

/** A new execution, before it runs. */
export interface CreateExecutionOptions {
  id: string
  namespace: Namespace
  language: string
  path: string
  code: string
  inputFiles: string[]
}

/** How an execution ended. */
export interface ExecutionOutcome {
  status: RunStatus | 'failed'
  exitCode: number | null
  signal: string | null
  stdout: string
  stderr: string
  stdoutTruncated: boolean
  stderrTruncated: boolean
  error: RunError | null
  reason: string | null
  outputFiles: OutputFile[]
  skippedFiles?: SkippedFile[]
  usage: RunUsage | null
  timings: ExecutionTimings | null
  /**
   * Phases the execution went through that could not be recorded as they happened (the database
   * was unavailable); they join the history, in order, before its end. A phase already in the
   * history is not repeated.
   */
  unrecordedPhases?: ExecutionRecord['statusHistory']
}

/** A file a run made that was not copied out. */
export interface SkippedFile {
  path: string
  reason: string
}

/** Which page of a listing to return. */
export interface ExecutionPageOptions {
  /** Records per page, clamped to 1..100. */
  limit: number
  /** The `nextCursor` of the previous page; absent for the first. */
  cursor?: string
}

/** One page of a listing, newest first. */
export interface ExecutionPageResult {
  items: ExecutionRecord[]
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null
}

const maxPageLimit = 100

const cursorSchema = z.tuple([z.iso.datetime(), z.string().min(1)])

type ExecutionRow = Selectable<ExecutionsTable>

/** The records of executions, each visible only within its namespace. */
export class ExecutionRepository {
  readonly #db: Database
  readonly #clock: () => Date

  constructor(db: Database, clock: () => Date = () => new Date()) {
    this.#db = db
    this.#clock = clock
  }

  /** Records a new execution, `pending`. */
  async create(options: CreateExecutionOptions): Promise<ExecutionRecord> {
    const createdAt = this.#now()
    const row: ExecutionRow = {
      id: options.id,
      user_id: options.namespace.userId,
      chat_id: options.namespace.chatId,
      language: options.language,
      path: options.path,
      code: options.code,
      status: 'pending',
      status_history: JSON.stringify([{ status: 'pending', at: createdAt }]),
      exit_code: null,
      signal: null,
      stdout: '',
      stderr: '',
      stdout_truncated: 0,
      stderr_truncated: 0,
      error: null,
      reason: null,
      input_files: JSON.stringify(options.inputFiles),
      output_files: '[]',
      skipped_files: '[]',
      usage: null,
      timings: null,
      created_at: createdAt,
      finished_at: null,
    }
    await this.#db.kysely.insertInto('executions').values(row).execute()
    return recordOf(row)
  }

  /**
   * Moves an unfinished execution to its next phase and appends it to the history. Refuses (an
   * `internal` AppError) an unknown or finished execution.
   */
  async transition(id: string, status: RunPhaseStatus): Promise<void> {
    await this.recordPhases(id, [{ status, at: this.#now() }])
  }

  /**
   * Appends phases, each with the time it began, to an unfinished execution's history in one
   * write; its status becomes the last. Refuses (an `internal` AppError) an unknown or finished
   * execution.
   */
  async recordPhases(
    id: string,
    phases: readonly { status: RunPhaseStatus; at: string }[],
  ): Promise<void> {
    const last = phases.at(-1)
    if (last === undefined) return
    await this.#db.kysely.transaction().execute(async (trx) => {
      const history = await this.#lockUnfinished(trx, id, last.status)
      await trx
        .updateTable('executions')
        .set({ status: last.status, status_history: JSON.stringify([...history, ...phases]) })
        .where('id', '=', id)
        .where('finished_at', 'is', null)
        .execute()
    })
  }

  /**
   * Records how an execution ended and when. An execution ends once: finishing it again, or an
   * unknown one, is an `internal` AppError.
   */
  async finish(id: string, outcome: ExecutionOutcome): Promise<ExecutionRecord> {
    return await this.#db.kysely.transaction().execute(async (trx) => {
      const history = await this.#lockUnfinished(trx, id, outcome.status)
      const finishedAt = this.#now()
      const missed = (outcome.unrecordedPhases ?? []).filter(
        (phase) => !history.some((entry) => entry.status === phase.status),
      )
      const row = await trx
        .updateTable('executions')
        .set({
          status: outcome.status,
          status_history: JSON.stringify([
            ...history,
            ...missed,
            { status: outcome.status, at: finishedAt },
          ]),
          exit_code: outcome.exitCode,
          signal: outcome.signal,
          stdout: outcome.stdout,
          stderr: outcome.stderr,
          stdout_truncated: outcome.stdoutTruncated ? 1 : 0,
          stderr_truncated: outcome.stderrTruncated ? 1 : 0,
          error: jsonOrNull(outcome.error),
          reason: outcome.reason,
          output_files: JSON.stringify(outcome.outputFiles),
          skipped_files: JSON.stringify(outcome.skippedFiles ?? []),
          usage: jsonOrNull(outcome.usage),
          timings: jsonOrNull(outcome.timings),
          finished_at: finishedAt,
        })
        .where('id', '=', id)
        .where('finished_at', 'is', null)
        .returningAll()
        .executeTakeFirstOrThrow()
      return recordOf(row)
    })
  }

  /** The execution, if it belongs to this namespace; another namespace's id is not found. */
  async get(namespace: Namespace, id: string): Promise<ExecutionRecord | undefined> {
    const row = await this.#db.kysely
      .selectFrom('executions')
      .selectAll()
      .where('id', '=', id)
      .where('user_id', '=', namespace.userId)
      .where('chat_id', '=', namespace.chatId)
      .executeTakeFirst()
    return row === undefined ? undefined : recordOf(row)
  }

  /**
   * A namespace's executions, newest first, a page at a time. The cursor marks a position, not an
   * offset: records created meanwhile neither shift nor repeat later pages. A cursor that is not
   * one this method returned is an `invalid_request` AppError.
   */
  async list(namespace: Namespace, page: ExecutionPageOptions): Promise<ExecutionPageResult> {
    const limit = Math.min(maxPageLimit, Math.max(1, Math.trunc(page.limit) || 1))
    const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor)
    let query = this.#db.kysely
      .selectFrom('executions')
      .selectAll()
      .where('user_id', '=', namespace.userId)
      .where('chat_id', '=', namespace.chatId)
    if (after !== undefined) {
      query = query.where((eb) =>
        eb.or([
          eb('created_at', '<', after.createdAt),
          eb.and([eb('created_at', '=', after.createdAt), eb('id', '<', after.id)]),
        ]),
      )
    }
    const rows = await query
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute()
    const items = rows.slice(0, limit).map(recordOf)
    const last = items.at(-1)
    return {
      items,
      nextCursor: rows.length > limit && last !== undefined ? encodeCursor(last) : null,
    }
  }

  /**
   * Fails every execution that has not ended, with this reason: at start, those are the ones a
   * crash or a restart interrupted. Returns how many.
   */
  async failUnfinished(reason: string): Promise<number> {
    return await this.#db.kysely.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom('executions')
        .select(['id', 'status_history'])
        .where('finished_at', 'is', null)
        .$if(this.#db.dialect !== 'sqlite', (query) => query.forUpdate())
        .execute()
      for (const row of rows) {
        const finishedAt = this.#now()
        const history = parseHistory(row.status_history)
        await trx
          .updateTable('executions')
          .set({
            status: 'failed',
            status_history: JSON.stringify([...history, { status: 'failed', at: finishedAt }]),
            reason,
            finished_at: finishedAt,
          })
          .where('id', '=', row.id)
          .where('finished_at', 'is', null)
          .execute()
      }
      return rows.length
    })
  }

  /**
   * Reads an unfinished execution's history, holding its row until the transaction ends so that
   * concurrent moves of one execution apply one after the other. SQLite needs no row lock: its
   * write transactions begin immediate and so hold the database's one write lock.
   */
  async #lockUnfinished(
    trx: Transaction<DatabaseSchema>,
    id: string,
    next: ExecutionStatus,
  ): Promise<ExecutionRecord['statusHistory']> {
    const row = await trx
      .selectFrom('executions')
      .select(['status', 'status_history', 'finished_at'])
      .where('id', '=', id)
      .$if(this.#db.dialect !== 'sqlite', (query) => query.forUpdate())
      .executeTakeFirst()
    if (row === undefined) {
      throw new AppError('internal', `no execution ${id} to move to ${next}`, { executionId: id })
    }
    if (row.finished_at !== null) {
      throw new AppError(
        'internal',
        `execution ${id} has already ended (${row.status}); it cannot move to ${next}`,
        { executionId: id, status: row.status },
      )
    }
    return parseHistory(row.status_history)
  }

  #now(): string {
    return this.#clock().toISOString()
  }
}

function recordOf(row: ExecutionRow): ExecutionRecord {
  return {
    id: row.id,
    userId: row.user_id,
    chatId: row.chat_id,
    language: row.language,
    path: row.path,
    code: row.code,
    status: statusOf(row.status),
    statusHistory: parseHistory(row.status_history),
    exitCode: row.exit_code,
    signal: row.signal,
    stdout: row.stdout,
    stderr: row.stderr,
    stdoutTruncated: row.stdout_truncated === 1,
    stderrTruncated: row.stderr_truncated === 1,
    error: parseJson<RunError | null>(row.error),
    reason: row.reason,
    inputFiles: parseJson<string[]>(row.input_files),
    outputFiles: parseJson<OutputFile[]>(row.output_files),
    skippedFiles: parseJson<SkippedFile[]>(row.skipped_files),
    usage: parseJson<RunUsage | null>(row.usage),
    timings: parseJson<ExecutionTimings | null>(row.timings),
    createdAt: row.created_at,
    finishedAt: row.finished_at,
  }
}

function statusOf(value: string): ExecutionStatus {
  const status = executionStatuses.find((known) => known === value)
  if (status === undefined) {
    throw new AppError('internal', `unknown execution status ${value} in the database`)
  }
  return status
}

function parseHistory(text: string): ExecutionRecord['statusHistory'] {
  return parseJson<ExecutionRecord['statusHistory']>(text)
}

// The columns hold JSON this module wrote.
function parseJson<T>(text: string | null): T {
  return (text === null ? null : JSON.parse(text)) as T
}

function jsonOrNull(value: unknown): string | null {
  return value === null ? null : JSON.stringify(value)
}

function encodeCursor(record: ExecutionRecord): string {
  return Buffer.from(JSON.stringify([record.createdAt, record.id])).toString('base64url')
}

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  const invalid = () => new AppError('invalid_request', 'the cursor is not one hutch returned')
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid()
  let decoded: unknown
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch (error) {
    throw new AppError(
      'invalid_request',
      'the cursor is not one hutch returned',
      {},
      { cause: error },
    )
  }
  const parsed = cursorSchema.safeParse(decoded)
  if (!parsed.success) throw invalid()
  const [createdAt, id] = parsed.data
  return { createdAt, id }
}
