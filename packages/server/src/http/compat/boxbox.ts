import { constants } from 'node:os'
import type { ErrorCode } from '@hutch/protocol'
import { defaultCodePaths } from '@hutch/protocol'
import { SandboxError, validateRelativePath } from '@hutch/sandbox'
import { appendNote, statusNote } from './status-note.ts'

/** The error codes boxbox answers with. */
export type BoxboxErrorCode =
  | 'invalid_request'
  | 'bad_request'
  | 'unauthorized'
  | 'rate_limit_exceeded'
  | 'queue_timeout'
  | 'no_sandbox_available'
  | 'server_shutting_down'
  | 'internal_error'
  | 'not_found'

/** A boxbox error body: a stable `error` code and a message for people. */
export interface BoxboxError {
  error: BoxboxErrorCode
  message: string
}

/**
 * One execution as boxbox reports it from `POST /execute` and `GET /executions/{id}`.
 *
 * `status` is `running` while the execution has not finished. `exit_code` is never 0 unless
 * `status` is `completed`. `execution_time_ms` is the wall time of the program itself.
 */
export interface BoxboxExecution {
  execution_id: string
  status: 'completed' | 'failed' | 'timeout' | 'running'
  exit_code: number
  stdout: string
  stderr: string
  execution_time_ms: number
  output_files: { path: string; media_type: string; size: number }[]
}

/** A parsed boxbox request, with paths normalised and the timeout resolved, or the 400 to send. */
export type BoxboxParse =
  | {
      ok: true
      language: 'python' | 'bash'
      path: string
      code: string
      files: string[]
      timeoutMs: number
    }
  | { ok: false; status: 400; body: BoxboxError }

/** Limits for {@link parseBoxboxRequest}. */
export interface BoxboxParseOptions {
  /** The timeout when the request gives none, or 0 or less. */
  defaultTimeoutMs: number
  /** The longest timeout granted; longer requests are clamped to it. */
  maxTimeoutMs: number
  /** The largest `code` accepted, in bytes of UTF-8. */
  maxCodeBytes: number
  /** The most input file names accepted in `files`. */
  maxFiles: number
}

const boxboxLanguages: Readonly<Record<string, 'python' | 'bash'>> = {
  python: 'python',
  bash: 'bash',
  shell: 'bash',
}

/**
 * Parses the body of a boxbox-shaped `POST /execute`:
 * `{language: 'python'|'bash'|'shell', code: string, path?: string, files?: string[],
 * timeout_seconds?: number}`.
 *
 * `shell` means bash. `path` defaults to `main.py` or `script.sh`; it and every name in `files`
 * must be a relative path without `..` (a `bad_request`). A `timeout_seconds` that is missing,
 * null, 0 or negative means `options.defaultTimeoutMs`; any timeout is clamped to
 * `options.maxTimeoutMs`. Every other problem is an `invalid_request`.
 *
 * @param body The JSON-parsed body; `undefined` or a raw string when the body was not JSON.
 */
export function parseBoxboxRequest(body: unknown, options: BoxboxParseOptions): BoxboxParse {
  if (body === undefined || typeof body === 'string') {
    return refuse('bad_request', 'request body must be JSON')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return refuse('bad_request', 'request body must be a JSON object')
  }
  const fields = body as Record<string, unknown>

  const languageName = fields['language']
  if (languageName === undefined || languageName === null || languageName === '') {
    return refuse('invalid_request', 'language is required')
  }
  const language =
    typeof languageName === 'string' && Object.hasOwn(boxboxLanguages, languageName.toLowerCase())
      ? boxboxLanguages[languageName.toLowerCase()]
      : undefined
  if (language === undefined) {
    return refuse('invalid_request', 'language must be one of python, bash, shell')
  }

  const code = fields['code']
  if (code === undefined || code === null || code === '') {
    return refuse('invalid_request', 'code is required')
  }
  if (typeof code !== 'string') return refuse('invalid_request', 'code must be a string')
  if (Buffer.byteLength(code) > options.maxCodeBytes) {
    return refuse('invalid_request', `code must be at most ${options.maxCodeBytes} bytes`)
  }

  const pathField = fields['path']
  let path = defaultCodePaths[language]
  if (pathField !== undefined && pathField !== null && pathField !== '') {
    if (typeof pathField !== 'string') return refuse('invalid_request', 'path must be a string')
    const checked = checkPath(pathField, 'path')
    if (!checked.ok) return checked
    path = checked.path
  }

  const filesField = fields['files']
  const files: string[] = []
  if (filesField !== undefined && filesField !== null) {
    if (!Array.isArray(filesField) || !filesField.every((name) => typeof name === 'string')) {
      return refuse('invalid_request', 'files must be an array of file names')
    }
    if (filesField.length > options.maxFiles) {
      return refuse('invalid_request', `files must name at most ${options.maxFiles} files`)
    }
    for (const name of filesField) {
      const checked = checkPath(name, 'each name in files')
      if (!checked.ok) return checked
      if (!files.includes(checked.path)) files.push(checked.path)
    }
  }

  const timeoutSeconds = fields['timeout_seconds']
  let timeoutMs = options.defaultTimeoutMs
  if (timeoutSeconds !== undefined && timeoutSeconds !== null) {
    if (typeof timeoutSeconds !== 'number') {
      return refuse('invalid_request', 'timeout_seconds must be a number')
    }
    if (timeoutSeconds > 0) timeoutMs = Math.max(1, Math.round(timeoutSeconds * 1000))
  }

  return {
    ok: true,
    language,
    path,
    code,
    files,
    timeoutMs: Math.min(timeoutMs, options.maxTimeoutMs),
  }
}

/** An execution as hutch records it, with what {@link toBoxboxExecution} reads. */
export interface BoxboxExecutionSource {
  id: string
  /** An execution status: `pending`, `syncing_in`, `running`, `syncing_out`, or how it ended. */
  status: string
  exitCode: number | null
  /** The signal that ended the program, by name (`SIGKILL`), when one did. */
  signal: string | null
  stdout: string
  stderr: string
  usage: { wallMs: number } | null
  outputFiles: { path: string; mediaType: string; size: number }[]
}

const unfinishedStatuses = new Set(['pending', 'syncing_in', 'running', 'syncing_out'])

/**
 * An execution in boxbox's shape, without boxbox's bugs: stdout and stderr stay apart, `ok` is
 * `completed`, `timeout` is `timeout`, unfinished is `running`, and any other ending is `failed`.
 *
 * `exit_code` is the program's own when it exited by itself. When it did not, or when a failed
 * execution exited 0: 124 for a timeout, 137 for a memory limit, 128 + the signal number for a
 * death by signal, -1 otherwise. A run stopped by a limit or a signal gets a line at the end of
 * `stderr` saying so. `execution_time_ms` is the wall time rounded to a millisecond, 0 when
 * unknown.
 */
export function toBoxboxExecution(record: BoxboxExecutionSource): BoxboxExecution {
  return {
    execution_id: record.id,
    status: boxboxStatusOf(record.status),
    exit_code: exitCodeOf(record),
    stdout: record.stdout,
    stderr: appendNote(record.stderr, statusNote(record.status, record.signal)),
    execution_time_ms: record.usage === null ? 0 : Math.round(record.usage.wallMs),
    output_files: record.outputFiles.map((file) => ({
      path: file.path,
      media_type: file.mediaType,
      size: file.size,
    })),
  }
}

function boxboxStatusOf(status: string): BoxboxExecution['status'] {
  if (status === 'ok') return 'completed'
  if (status === 'timeout') return 'timeout'
  if (unfinishedStatuses.has(status)) return 'running'
  return 'failed'
}

/** Exit codes as a shell reports them, so `exit_code === 0` always means success. */
function exitCodeOf(record: BoxboxExecutionSource): number {
  if (record.exitCode !== null && (record.exitCode !== 0 || record.status === 'ok')) {
    return record.exitCode
  }
  if (record.status === 'ok') return 0
  if (record.status === 'timeout') return 124
  if (record.status === 'memory_limit') return 137
  const signalNumber = signalNumberOf(record.signal)
  if (signalNumber !== undefined) return 128 + signalNumber
  return -1
}

function signalNumberOf(signal: string | null): number | undefined {
  if (signal === null) return undefined
  const upper = signal.toUpperCase()
  const name = upper.startsWith('SIG') ? upper : `SIG${upper}`
  return Object.hasOwn(constants.signals, name)
    ? constants.signals[name as keyof typeof constants.signals]
    : undefined
}

/**
 * The boxbox answer for each hutch error code. The statuses are hutch's own; boxbox has no code
 * for a body over the size limit, so `payload_too_large` keeps its 413 under `bad_request`, and
 * codes boxbox lacks take its nearest one (an unknown input file is `not_found`).
 */
const boxboxErrors = {
  invalid_request: [400, 'invalid_request'],
  unsupported_language: [400, 'invalid_request'],
  invalid_path: [400, 'bad_request'],
  invalid_limit: [400, 'invalid_request'],
  file_not_found: [404, 'not_found'],
  not_found: [404, 'not_found'],
  // Sessions are native only; the map is total so that every code has an answer.
  too_many_sessions: [409, 'bad_request'],
  unauthorized: [401, 'unauthorized'],
  payload_too_large: [413, 'bad_request'],
  rate_limit_exceeded: [429, 'rate_limit_exceeded'],
  backend_unavailable: [503, 'no_sandbox_available'],
  queue_timeout: [503, 'queue_timeout'],
  no_sandbox_available: [503, 'no_sandbox_available'],
  server_shutting_down: [503, 'server_shutting_down'],
  internal: [500, 'internal_error'],
} as const satisfies Record<ErrorCode, readonly [number, BoxboxErrorCode]>

/**
 * The HTTP status and boxbox body for a hutch error: 400 `invalid_request` (`bad_request` for
 * an invalid path), 401 `unauthorized`, 404 `not_found`, 413 `bad_request`, 429
 * `rate_limit_exceeded`, 503 `queue_timeout`/`no_sandbox_available`/`server_shutting_down`, 500
 * `internal_error`.
 */
export function boxboxErrorFor(
  code: ErrorCode,
  message: string,
): { status: number; body: BoxboxError } {
  const [status, error] = boxboxErrors[code]
  return { status, body: { error, message } }
}

function checkPath(
  path: string,
  label: string,
): { ok: true; path: string } | { ok: false; status: 400; body: BoxboxError } {
  try {
    return { ok: true, path: validateRelativePath(path) }
  } catch (error) {
    if (!(error instanceof SandboxError)) throw error
    return refuse('bad_request', error.message.replace(/^path\b/, label))
  }
}

function refuse(
  error: BoxboxErrorCode,
  message: string,
): { ok: false; status: 400; body: BoxboxError } {
  return { ok: false, status: 400, body: { error, message } }
}
