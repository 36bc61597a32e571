/**
 * Every error code hutch answers with, and the HTTP status each one maps to. A code is a stable
 * name clients may branch on; the message beside it is for people.
 */
export const errorCodes = {
  invalid_request: 400,
  unsupported_language: 400,
  invalid_path: 400,
  invalid_limit: 400,
  file_not_found: 404,
  not_found: 404,
  too_many_sessions: 409,
  unauthorized: 401,
  payload_too_large: 413,
  rate_limit_exceeded: 429,
  backend_unavailable: 503,
  queue_timeout: 503,
  no_sandbox_available: 503,
  server_shutting_down: 503,
  internal: 500,
} as const

/** A stable error code. */
export type ErrorCode = keyof typeof errorCodes

/** What each error code means and what to do about it; the error reference is generated from it. */
export const errorCodeDescriptions: Readonly<Record<ErrorCode, string>> = {
  invalid_request:
    'A field is missing, has the wrong type or an unknown name, or a value is not allowed (an unknown network mode, an id that is not an id). `details` names the fields.',
  unsupported_language: 'The language is not one hutch runs; the message lists the ones it does.',
  invalid_path:
    'A file path is absolute, climbs out with `..`, holds a NUL or control character, or is too long.',
  invalid_limit:
    'A limit is negative, not an integer or not a number. Limits above the maximum are not errors: they are clamped.',
  file_not_found:
    'A file named in `files` is not in the namespace. `details.missing` lists them; upload them first.',
  not_found: 'No such execution, session, file or route in this namespace.',
  too_many_sessions:
    'The namespace has as many sessions as it may have (`details.maxSessions`); delete one first.',
  unauthorized: 'No API key, or one that is not configured.',
  payload_too_large: 'The request body, or an uploaded or produced file, is over its size cap.',
  rate_limit_exceeded:
    'This user sent more requests than the per-minute limit. Retry after the `Retry-After` seconds.',
  backend_unavailable:
    'The host cannot run a sandbox right now (see `hutch doctor`), or storage failed.',
  queue_timeout:
    'Every sandbox stayed busy for the whole queue wait. Retry after the `Retry-After` seconds.',
  no_sandbox_available:
    'Every sandbox is busy and the queue is full, or sandboxes keep failing to start. Retry after `Retry-After`.',
  server_shutting_down: 'The server is stopping; another instance or a retry will serve it.',
  internal:
    'A fault inside hutch. The message is generic; the server log has the details under `requestId`.',
}

/** The HTTP status of an error code. */
export function httpStatusOf(code: ErrorCode): number {
  return errorCodes[code]
}

/** The error body every native route answers with. */
export interface ErrorBody {
  error: {
    code: ErrorCode
    message: string
    details?: Record<string, unknown>
    requestId?: string
  }
}
