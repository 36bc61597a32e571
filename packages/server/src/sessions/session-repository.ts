import type { Selectable, Transaction } from 'kysely'
import { z } from 'zod'
import { AppError } from '../app-error.ts'
import type { Database } from '../db/database.ts'
import type { DatabaseSchema, SessionsTable } from '../db/schema.ts'
import type { Namespace } from '../namespace.ts'

/** Where a session is: running, frozen, saved to storage, or gone for good. */
export type SessionState = 'hot' | 'warm' | 'cold' | 'deleted'

const sessionStates: readonly SessionState[] = ['hot', 'warm', 'cold', 'deleted']

/** One move between states; `from` is null for the creation. */
export interface SessionTransition {
  from: SessionState | null
  to: SessionState
  reason: string
  /** ISO-8601 UTC. */
  at: string
}

/** A name a COLD save could not keep, and why. */
export interface LostName {
  name: string
  reason: string
}

/** Where the last COLD save of a session is in the session-state storage. */
export interface SavedState {
  /** Key prefix of this save; every key below is under it. */
  prefix: string
  /** Key of the interpreter's state, or null when there was none to save. */
  stateKey: string | null
  /** Workdir-relative paths of the saved files, each stored at `{prefix}workdir/{path}`. */
  files: string[]
  /** ISO-8601 UTC. */
  savedAt: string
}

/** A session as recorded. */
export interface SessionRecord {
  id: string
  userId: string
  chatId: string
  language: string
  state: SessionState
  /** The limits asked for at creation; `wallTimeMs` is the default timeout of a cell. */
  limits: Record<string, number>
  warmAfterMs: number
  coldAfterMs: number
  executionCount: number
  savedState: SavedState | null
  lostNames: LostName[]
  /** ISO-8601 UTC. */
  createdAt: string
  /** When the last cell ended (or the session was created), ISO-8601 UTC. */
  lastActiveAt: string
  /** The latest transitions, oldest first (at most `transitionsShown`). */
  transitions: SessionTransition[]
}

/** A new session. */
export interface CreateSessionOptions {
  id: string
  namespace: Namespace
  language: string
  limits: Record<string, number>
  warmAfterMs: number
  coldAfterMs: number
  /** Why it was created (the creation is the first transition). */
  reason: string
}

/** What a transition changes besides the state. */
export interface TransitionChanges {
  savedState?: SavedState | null
  lostNames?: LostName[]
  executionCount?: number
}

/** Which page of a listing to return. */
export interface SessionPageOptions {
  /** Records per page, clamped to 1..100. */
  limit: number
  /** The `nextCursor` of the previous page; absent for the first. */
  cursor?: string
}

/** One page of a listing, newest first. */
export interface SessionPageResult {
  items: SessionRecord[]
  nextCursor: string | null
}

/** Transitions a record carries: the latest ones, enough to see the last few lifecycles. */
export const transitionsShown = 20

const maxPageLimit = 100
const cursorSchema = z.tuple([z.iso.datetime(), z.string().min(1)])

type SessionRow = Selectable<SessionsTable>

/** The records of sessions and their transitions, each visible only within its namespace. */
export class SessionRepository {
  readonly #db: Database
  readonly #clock: () => Date

  constructor(db: Database, clock: () => Date = () => new Date()) {
    this.#db = db
    this.#clock = clock
  }

  /** Records a new HOT session and its creation. */
  async create(options: CreateSessionOptions): Promise<SessionRecord> {
    const at = this.#now()
    await this.#db.kysely.transaction().execute(async (trx) => {
      await trx
        .insertInto('sessions')
        .values({
          id: options.id,
          user_id: options.namespace.userId,
          chat_id: options.namespace.chatId,
          language: options.language,
          state: 'hot',
          created_at: at,
          last_active_at: at,
          limits: JSON.stringify(options.limits),
          warm_after_ms: options.warmAfterMs,
          cold_after_ms: options.coldAfterMs,
          execution_count: 0,
          saved_state: 'null',
          lost_names: '[]',
        })
        .execute()
      await trx
        .insertInto('session_transitions')
        .values({
          session_id: options.id,
          position: 0,
          from_state: null,
          to_state: 'hot',
          reason: options.reason,
          at,
        })
        .execute()
    })
    return await this.#read(options.id)
  }

  /** The session, if it belongs to this namespace and is not deleted; else undefined. */
  async get(namespace: Namespace, id: string): Promise<SessionRecord | undefined> {
    const row = await this.#db.kysely
      .selectFrom('sessions')
      .selectAll()
      .where('id', '=', id)
      .where('user_id', '=', namespace.userId)
      .where('chat_id', '=', namespace.chatId)
      .where('state', '!=', 'deleted')
      .executeTakeFirst()
    return row === undefined ? undefined : await this.#withTransitions(row)
  }

  /** A namespace's sessions that are not deleted, newest first, a page at a time. */
  async list(namespace: Namespace, page: SessionPageOptions): Promise<SessionPageResult> {
    const limit = Math.min(maxPageLimit, Math.max(1, Math.trunc(page.limit) || 1))
    const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor)
    let query = this.#db.kysely
      .selectFrom('sessions')
      .selectAll()
      .where('user_id', '=', namespace.userId)
      .where('chat_id', '=', namespace.chatId)
      .where('state', '!=', 'deleted')
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
    const items: SessionRecord[] = []
    for (const row of rows.slice(0, limit)) items.push(await this.#withTransitions(row))
    const last = items.at(-1)
    return {
      items,
      nextCursor: rows.length > limit && last !== undefined ? encodeCursor(last) : null,
    }
  }

  /** Sessions of a namespace that are not deleted. */
  async count(namespace: Namespace): Promise<number> {
    const row = await this.#db.kysely
      .selectFrom('sessions')
      .select((eb) => eb.fn.countAll<number | string>().as('count'))
      .where('user_id', '=', namespace.userId)
      .where('chat_id', '=', namespace.chatId)
      .where('state', '!=', 'deleted')
      .executeTakeFirstOrThrow()
    return Number(row.count)
  }

  /**
   * Moves a session to `to`, records the transition with its reason, and applies `changes`. A
   * deleted session moves nowhere, and an unknown one is an `internal` AppError.
   */
  async transition(
    id: string,
    to: SessionState,
    reason: string,
    changes: TransitionChanges = {},
  ): Promise<SessionRecord> {
    await this.#db.kysely.transaction().execute(async (trx) => {
      const row = await this.#lock(trx, id)
      if (row.state === 'deleted') {
        throw new AppError('internal', `session ${id} is deleted; it cannot move to ${to}`, {
          sessionId: id,
        })
      }
      await this.#append(trx, id, row.state as SessionState, to, reason)
      await trx
        .updateTable('sessions')
        .set({
          state: to,
          ...(changes.savedState === undefined
            ? {}
            : { saved_state: JSON.stringify(changes.savedState) }),
          ...(changes.lostNames === undefined
            ? {}
            : { lost_names: JSON.stringify(changes.lostNames) }),
          ...(changes.executionCount === undefined
            ? {}
            : { execution_count: changes.executionCount }),
        })
        .where('id', '=', id)
        .execute()
    })
    return await this.#read(id)
  }

  /** Records that a cell ended: the new cell count, and now as the last activity. */
  async touch(id: string, executionCount: number): Promise<string> {
    const at = this.#now()
    await this.#db.kysely
      .updateTable('sessions')
      .set({ execution_count: executionCount, last_active_at: at })
      .where('id', '=', id)
      .execute()
    return at
  }

  /**
   * Moves every HOT or WARM session to COLD with this reason: at start, those are the ones a
   * previous process held in memory, now gone. Their last save (if any) is what remains.
   * Returns how many.
   */
  async coldAllLive(reason: string): Promise<number> {
    return await this.#db.kysely.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom('sessions')
        .select(['id', 'state'])
        .where('state', 'in', ['hot', 'warm'])
        .$if(this.#db.dialect !== 'sqlite', (query) => query.forUpdate())
        .execute()
      for (const row of rows) {
        await this.#append(trx, row.id, row.state as SessionState, 'cold', reason)
        await trx.updateTable('sessions').set({ state: 'cold' }).where('id', '=', row.id).execute()
      }
      return rows.length
    })
  }

  async #read(id: string): Promise<SessionRecord> {
    const row = await this.#db.kysely
      .selectFrom('sessions')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst()
    if (row === undefined) {
      throw new AppError('internal', `no session ${id} in the database`, { sessionId: id })
    }
    return await this.#withTransitions(row)
  }

  async #withTransitions(row: SessionRow): Promise<SessionRecord> {
    const rows = await this.#db.kysely
      .selectFrom('session_transitions')
      .selectAll()
      .where('session_id', '=', row.id)
      .orderBy('position', 'desc')
      .limit(transitionsShown)
      .execute()
    const transitions = rows.reverse().map((transition) => ({
      from: transition.from_state === null ? null : stateOf(transition.from_state),
      to: stateOf(transition.to_state),
      reason: transition.reason,
      at: transition.at,
    }))
    return recordOf(row, transitions)
  }

  /**
   * Reads a session's state, holding its row until the transaction ends so that concurrent moves
   * of one session apply one after the other (SQLite's write transactions hold its one lock).
   */
  async #lock(trx: Transaction<DatabaseSchema>, id: string): Promise<{ state: string }> {
    const row = await trx
      .selectFrom('sessions')
      .select(['state'])
      .where('id', '=', id)
      .$if(this.#db.dialect !== 'sqlite', (query) => query.forUpdate())
      .executeTakeFirst()
    if (row === undefined) {
      throw new AppError('internal', `no session ${id} in the database`, { sessionId: id })
    }
    return row
  }

  async #append(
    trx: Transaction<DatabaseSchema>,
    id: string,
    from: SessionState,
    to: SessionState,
    reason: string,
  ): Promise<void> {
    const last = await trx
      .selectFrom('session_transitions')
      .select((eb) => eb.fn.max('position').as('position'))
      .where('session_id', '=', id)
      .executeTakeFirst()
    const position = last?.position === null || last === undefined ? 0 : Number(last.position) + 1
    await trx
      .insertInto('session_transitions')
      .values({ session_id: id, position, from_state: from, to_state: to, reason, at: this.#now() })
      .execute()
  }

  #now(): string {
    return this.#clock().toISOString()
  }
}

function recordOf(row: SessionRow, transitions: SessionTransition[]): SessionRecord {
  return {
    id: row.id,
    userId: row.user_id,
    chatId: row.chat_id,
    language: row.language,
    state: stateOf(row.state),
    limits: parseJson<Record<string, number>>(row.limits),
    warmAfterMs: Number(row.warm_after_ms),
    coldAfterMs: Number(row.cold_after_ms),
    executionCount: Number(row.execution_count),
    savedState: parseJson<SavedState | null>(row.saved_state),
    lostNames: parseJson<LostName[]>(row.lost_names),
    createdAt: row.created_at,
    lastActiveAt: row.last_active_at,
    transitions,
  }
}

function stateOf(value: string): SessionState {
  const state = sessionStates.find((known) => known === value)
  if (state === undefined) {
    throw new AppError('internal', `unknown session state ${value} in the database`)
  }
  return state
}

// The columns hold JSON this module wrote.
function parseJson<T>(text: string): T {
  return JSON.parse(text) as T
}

function encodeCursor(record: SessionRecord): string {
  return Buffer.from(JSON.stringify([record.createdAt, record.id])).toString('base64url')
}

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  const invalid = (cause?: unknown) =>
    new AppError('invalid_request', 'the cursor is not one hutch returned', {}, { cause })
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid()
  let decoded: unknown
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch (error) {
    throw invalid(error)
  }
  const parsed = cursorSchema.safeParse(decoded)
  if (!parsed.success) throw invalid()
  const [createdAt, id] = parsed.data
  return { createdAt, id }
}
