import type { Generated } from 'kysely'
/**
 * The tables as kysely sees them. Values are stored portably: times as ISO-8601 UTC strings
 * (`2025-01-02T03:04:05.678Z`, which sort as text), booleans as integers 0 or 1, structured values
 * as JSON text. Repositories map rows to their records.
 */
export interface DatabaseSchema {
  executions: ExecutionsTable
  sessions: SessionsTable
  session_transitions: SessionTransitionsTable
  threads: ThreadsTable
  messages: MessagesTable
  files: FilesTable
}

/** One run, from its request to its result. */
export interface ExecutionsTable {
  id: string
  user_id: string
  chat_id: string
  language: string
  path: string
  code: string
  status: string
  /** JSON: `[{status, at}]`, oldest first. */
  status_history: string
  exit_code: number | null
  signal: string | null
  stdout: string
  stderr: string
  /** 0 or 1. */
  stdout_truncated: number
  /** 0 or 1. */
  stderr_truncated: number
  /** JSON `RunError`, or null. */
  error: string | null
  reason: string | null
  /** JSON: names of the namespace's files the run was given. */
  input_files: string
  /** JSON `OutputFile[]`. */
  output_files: string
  /** JSON: `{path, reason}[]`. */
  skipped_files: Generated<string>
  /** JSON `RunUsage`, or null. */
  usage: string | null
  /** JSON `{queueMs, syncInMs, runMs, syncOutMs}`, or null. */
  timings: string | null
  created_at: string
  finished_at: string | null
}

/** A stateful kernel (DESIGN 4): its settings, lifecycle state and where its COLD state is. */
export interface SessionsTable {
  id: string
  user_id: string
  chat_id: string
  language: string
  /** `hot`, `warm`, `cold` or `deleted`. */
  state: string
  created_at: string
  last_active_at: string
  /** JSON: the limits asked for at creation, `wallTimeMs` the default cell timeout. */
  limits: Generated<string>
  warm_after_ms: Generated<number>
  cold_after_ms: Generated<number>
  /** Cells run since creation or the last restart. */
  execution_count: Generated<number>
  /** JSON `{prefix, stateKey, files, savedAt}` of the last COLD save, or `null` (none yet). */
  saved_state: Generated<string>
  /** JSON `[{name, reason}]`: what the last COLD save could not keep. */
  lost_names: Generated<string>
}

/** Every move of a session between states, with why; `from_state` null at creation. */
export interface SessionTransitionsTable {
  session_id: string
  /** 0-based order within the session. */
  position: number
  from_state: string | null
  to_state: string
  reason: string
  at: string
}

/** An agent conversation (DESIGN 7), bound to the session its code runs in. */
export interface ThreadsTable {
  id: string
  user_id: string
  chat_id: string
  session_id: string | null
  created_at: string
  updated_at: string
}

/** One message of a thread; the namespace is the thread's. */
export interface MessagesTable {
  id: string
  thread_id: string
  /** 0-based order within the thread. */
  position: number
  /** `system`, `user`, `assistant` or `tool`. */
  role: string
  content: string
  created_at: string
}

/** The index the storage layer keeps beside the bytes of each namespace's files. */
export interface FilesTable {
  user_id: string
  chat_id: string
  /** Relative path within the namespace, with `/` separators. */
  path: string
  size_bytes: number
  media_type: string
  /** Lowercase hex SHA-256 of the content. */
  sha256: string
  created_at: string
  updated_at: string
}
