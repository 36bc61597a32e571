import type { Migration } from 'kysely/migration'
import * as initial from './0001-initial.ts'
import * as skippedFiles from './0002-skipped-files.ts'
import * as sessions from './0003-sessions.ts'

/**
 * Every migration, oldest first. Names sort in this order (kysely applies them by name), and a
 * released migration is never edited or removed.
 */
export const migrations: readonly (readonly [name: string, migration: Migration])[] = [
  ['0001-initial', initial],
  ['0002-skipped-files', skippedFiles],
  ['0003-sessions', sessions],
]
